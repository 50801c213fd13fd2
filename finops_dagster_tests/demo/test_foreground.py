"""`finops-dagster dev` stopped by SIGTERM stops its child and the child's own children, as Ctrl-C does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

# Stands in for `dagster dev`: starts a child of its own and stops it on SIGINT, only on SIGINT.
CHILD = """
import signal, subprocess, sys, time
from pathlib import Path
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
def stop(signum, frame):
    grandchild.terminate()
    grandchild.wait()
    Path(sys.argv[1], "stopped").write_text("SIGINT")
    sys.exit(0)
signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
Path(sys.argv[1], "pids").write_text(f"{grandchild.pid}")
while True:
    time.sleep(0.1)
"""

PARENT = """
import os, sys
from finops_dagster.demo.foreground import run_in_foreground
sys.exit(run_in_foreground([sys.executable, "-c", sys.argv[1], sys.argv[2]], os.environ))
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(path: Path) -> str:
    deadline = time.monotonic() + 30
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)
    return path.read_text()


def test_sigterm_is_passed_on_as_ctrl_c_and_waited_for(tmp_path: Path) -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, CHILD, str(tmp_path)])
    grandchild = int(wait_for(tmp_path / "pids"))
    assert alive(grandchild)

    parent.send_signal(signal.SIGTERM)

    assert parent.wait(timeout=30) == 130
    assert (tmp_path / "stopped").read_text() == "SIGINT"
    assert not alive(grandchild)


def test_the_child_s_own_exit_status_is_returned(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PARENT, "import sys; sys.exit(3)", str(tmp_path)], timeout=60, check=False
    )
    assert done.returncode == 3
