"""A child command run in the foreground until it ends, stopped as Ctrl-C stops it.

`finops-dagster dev` runs `dagster dev`, which starts the webserver, the daemon and a code server
and stops them all on SIGINT. Ctrl-C in a terminal sends SIGINT to every process of the foreground
group; a SIGTERM (a process manager, `kill`, a container stopping) reaches only this process. It is
forwarded to the child as SIGINT, and this process waits for the child to stop its own children before
it closes what it serves itself, so nothing is left running.
"""

import signal
import subprocess
from collections.abc import Mapping, Sequence
from types import FrameType


def run_in_foreground(command: Sequence[str], env: Mapping[str, str]) -> int:
    """The child's exit status (130 when it was interrupted by Ctrl-C or SIGTERM)."""
    child = subprocess.Popen(list(command), env=dict(env))
    interrupted = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal interrupted
        interrupted = True
        if child.poll() is None:
            child.send_signal(signal.SIGINT)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        while True:
            try:
                status = child.wait()
                break
            except KeyboardInterrupt:
                interrupted = True  # the child got the terminal's SIGINT too: wait for it to stop
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 130 if interrupted else status
