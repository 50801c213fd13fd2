"""`finops-dagster nightly`, the headless CronJob's command, run for real in a subprocess."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from finops_dagster.nightly import MonthRange, parse_months, tonight
from finops_dagster.settings import SettingError

FINOPS_CLI = str(Path(sys.executable).parent / "finops-dagster")
CMDB = "demo://?cis=120&months=3&today=2026-12-05&applications=20"


def _nightly(mart_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "POSTGRES_URL": mart_url,
        "MONGO_URL": CMDB,
        "FINOPS_DOMAINS_ENABLED": "open_legacy",
        **env,
    }
    environment.pop("DAGSTER_HOME", None)
    return subprocess.run(
        [FINOPS_CLI, "nightly", *args], env=environment, capture_output=True, text=True, timeout=300
    )


def test_nightly_publishes_the_months_and_records_a_cron_run(mart_url: str, mart: psycopg.Connection) -> None:
    done = _nightly(mart_url, "--months", "2026-10:2026-11")

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1].endswith(": SUCCESS")
    assert "open_legacy   2026-10" in done.stdout and "open_legacy   2026-11" in done.stdout
    status, trigger, periods = (
        mart.execute("SELECT status, trigger_type, periods FROM finops.etl_runs").fetchone() or ()
    )
    assert (status, trigger, periods) == ("SUCCESS", "CRON", ["2026-10-01", "2026-11-01"])
    published = mart.execute(
        "SELECT DISTINCT to_char(period_month, 'YYYY-MM') FROM finops.fact_releve ORDER BY 1"
    ).fetchall()
    assert published == [("2026-10",), ("2026-11",)]


def test_nightly_exits_1_with_the_error_summary_last(mart_url: str, mart: psycopg.Connection) -> None:
    done = _nightly(
        mart_url, "--months", "2026-11", MONGO_URL="mongodb://127.0.0.1:9/cmdb?serverSelectionTimeoutMS=200"
    )

    assert done.returncode == 1, done.stdout + done.stderr
    last = done.stdout.strip().splitlines()[-1]
    summary = mart.execute("SELECT error_summary FROM finops.etl_runs WHERE status = 'FAILED'").fetchone()
    assert summary is not None and summary[0]
    assert last == f"FAILED: {summary[0]}"
    assert mart.execute("SELECT count(*) FROM finops.fact_releve").fetchone() == (0,)


def test_nightly_refuses_a_malformed_month_naming_it(mart_url: str) -> None:
    done = _nightly(mart_url, "--months", "2026-13")
    assert done.returncode == 2
    assert "--months 2026-13: expected YYYY-MM or YYYY-MM:YYYY-MM" in done.stderr


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-10", MonthRange("2026-10-01", "2026-10-01")),
        ("2026-09:2026-11", MonthRange("2026-09-01", "2026-11-01")),
        (" 2025-01 : 2025-02 ", MonthRange("2025-01-01", "2025-02-01")),
    ],
)
def test_months_option(value: str, expected: MonthRange) -> None:
    assert parse_months(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2026-11:2026-10", "the last month is before the first"),
        ("2026-1", "expected YYYY-MM"),
        ("november", "expected YYYY-MM"),
        ("2026-10:", "expected YYYY-MM"),
        ("1999-01", "not a month the pipeline computes"),
        ("2099-01", "not a month the pipeline computes"),
    ],
)
def test_months_option_refused(value: str, message: str) -> None:
    with pytest.raises(SettingError, match=message):
        parse_months(value)


def test_tonight_follows_the_recalc_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    night = dt.datetime(2026, 12, 5, 2, 0, tzinfo=dt.UTC)
    assert tonight(night) == MonthRange("2026-11-01", "2026-12-01")
    monkeypatch.setenv("FINOPS_RECALC_PREVIOUS_MONTH", "false")
    assert tonight(night) == MonthRange("2026-12-01", "2026-12-01")
