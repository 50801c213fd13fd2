"""The command line a newcomer types: the UI's port, the demo's hints, and stopping the demo's server."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from finops_dagster.cli import main, parse
from finops_dagster.demo.embedded_postgres import embedded_running, start_embedded, stop_embedded
from finops_dagster.demo.run import command


@pytest.mark.parametrize(
    ("argv", "port", "passed_on"),
    [
        (["dev"], 3000, []),
        (["dev", "--port", "3005"], 3005, []),
        (["dev", "-p", "3006"], 3006, []),
        (["dev", "-p", "3007", "--log-level", "debug"], 3007, ["--log-level", "debug"]),
        (["dev", "--port", "3008", "--", "--log-level", "debug"], 3008, ["--log-level", "debug"]),
    ],
)
def test_dev_takes_the_ui_port(argv: list[str], port: int, passed_on: list[str]) -> None:
    args = parse(argv)
    assert (args.port, args.dagster_args) == (port, passed_on)


def test_other_commands_refuse_unknown_options() -> None:
    with pytest.raises(SystemExit):
        parse(["migrate", "--port", "3000"])


def test_the_hints_name_this_environment_s_scripts(monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = Path(sys.executable).parent
    monkeypatch.chdir(bin_dir.parent.parent)
    hint = command("finops-dagster")
    assert hint == str(Path(bin_dir.parent.name) / bin_dir.name / "finops-dagster")
    assert os.access(hint, os.X_OK)


def test_stop_without_a_server_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FINOPS_DEMO_DIR", str(tmp_path))
    assert main(["demo", "--stop"]) == 0
    assert capsys.readouterr().out.strip() == f"no embedded PostgreSQL runs on {tmp_path / 'pgdata'}"


def test_a_kept_embedded_server_is_stopped_by_demo_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FINOPS_DEMO_DIR", str(tmp_path))
    pgdata = tmp_path / "pgdata"
    start_embedded(pgdata, keep=True)
    assert embedded_running(pgdata)

    try:
        assert main(["demo", "--stop"]) == 0
    finally:
        stop_embedded(pgdata)

    assert capsys.readouterr().out.strip() == f"stopped the embedded PostgreSQL of {pgdata}"
    assert not embedded_running(pgdata)
    assert stop_embedded(pgdata) == f"no embedded PostgreSQL runs on {pgdata}"
