"""One run at a time per month: a run holds its months from start to end, and a second waits.

Two runs computing the same month at once would each stage it, and the first publish would
discard the other's staged rows: the second run would then fail, at best as "superseded". So a
run takes an advisory lock per month on its ledger connection before any step runs, in month
order (two runs over overlapping ranges cannot deadlock), and keeps them until it ends; they
vanish with its session if it dies. A run that finds a month taken says which run holds it,
waits, and goes on when the holder ends, however it ends. Runs over other months are not held up.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence

import psycopg

from finops_dagster.mart.locks import MONTH_NAMESPACE

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
REPORT_EVERY_SECONDS = 60.0


class MonthsBusy(RuntimeError):
    """The run waited for its months longer than allowed; the message names the holder."""


def month_key(month: str) -> int:
    """A partition key (2026-10-01) as the lock's int4 key (202610)."""
    day = dt.date.fromisoformat(month)
    return day.year * 100 + day.month


HOLDERS = """
SELECT run_id, to_char(started_at, 'YYYY-MM-DD HH24:MI:SS TZ') FROM finops.etl_runs
WHERE status = 'RUNNING' AND run_id <> %s AND periods ? %s ORDER BY started_at
"""


def holders(conn: psycopg.Connection, month: str, run_id: str) -> str:
    """The RUNNING runs recorded over a month, for a message: 'run X (started …)'."""
    rows = conn.execute(HOLDERS, (run_id, month)).fetchall()
    if not rows:
        return "another run"
    return ", ".join(f"run {other} (started {started})" for other, started in rows)


def take_months(
    conn: psycopg.Connection,
    months: Sequence[str],
    run_id: str,
    *,
    timeout: float,
    report: Callable[[str], None] = log.info,
) -> None:
    """Hold every month of the run, waiting for each one another run holds (at most `timeout` s);
    `report` says who is waited for (the run's own log, so the UI shows why it does not start)."""
    deadline = time.monotonic() + timeout
    for month in sorted(set(months)):
        _take(conn, month, run_id, deadline, report)


def _take(
    conn: psycopg.Connection, month: str, run_id: str, deadline: float, report: Callable[[str], None]
) -> None:
    key = month_key(month)
    next_report = 0.0
    while not _try_lock(conn, key):
        now = time.monotonic()
        if now >= deadline:
            raise MonthsBusy(
                f"{month[:7]} is being computed by {holders(conn, month, run_id)}; this run waited for it "
                "past FINOPS_RUN_WAIT_SECONDS and stops without computing anything"
            )
        if now >= next_report:
            report(f"Waiting for {holders(conn, month, run_id)}, which is computing {month[:7]}")
            next_report = now + REPORT_EVERY_SECONDS
        time.sleep(POLL_SECONDS)


def try_month(conn: psycopg.Connection, month: str) -> bool:
    """Take a month's lock if it is free (a ledger reconnecting after its session was dropped)."""
    return _try_lock(conn, month_key(month))


def _try_lock(conn: psycopg.Connection, key: int) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (MONTH_NAMESPACE, key)).fetchone()
    return bool(row and row[0])
