"""Months open and closed: what finance signs is a closed month, which nothing rewrites silently.

A month is OPEN from its first publish; every publish records its run and the fingerprints of its
inputs (month_inputs.py). Closing it (`finops-dagster close`, the job close_month) freezes it at its
version: the nightly skips it (mart/publish.py), and it changes only when a restatement computed by
an explicit run over it is approved (mart/restatement.py), which bumps the version. Closing takes the
mart's publish lock, so it never lands in the middle of a publish of the same month.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from finops_dagster.mart.locks import MART_NAMESPACE, PUBLISH_KEY
from finops_dagster.mart.month_inputs import month_inputs

OPEN = "OPEN"
CLOSED = "CLOSED"

RECORD_PUBLISH = """
INSERT INTO finops.month_status (period_month, published_run_id, published_at, inputs)
VALUES (%(month)s, %(run_id)s, now(), %(inputs)s)
ON CONFLICT (period_month) DO UPDATE
SET published_run_id = EXCLUDED.published_run_id, published_at = EXCLUDED.published_at,
    inputs = EXCLUDED.inputs
"""

STATUS_QUERY = (
    "SELECT period_month, status, version, published_run_id, published_at, inputs, closed_by, closed_at, "
    "note, approved_by, approved_at FROM finops.month_status WHERE period_month = %s"
)


class MonthCloseError(RuntimeError):
    """The month cannot be closed (never published, already closed); the message says why."""


@dataclass(frozen=True)
class MonthStatus:
    period_month: dt.date
    status: str
    version: int
    published_run_id: str | None
    published_at: dt.datetime | None
    inputs: dict[str, Any]
    closed_by: str | None
    closed_at: dt.datetime | None
    note: str | None
    approved_by: str | None
    approved_at: dt.datetime | None

    @property
    def closed(self) -> bool:
        return self.status == CLOSED

    def describe(self) -> str:
        if not self.closed:
            return f"{self.period_month:%Y-%m} is open (version {self.version})"
        closed_at = f"{self.closed_at:%Y-%m-%d %H:%M} UTC" if self.closed_at else "?"
        return (
            f"{self.period_month:%Y-%m} is closed at version {self.version} "
            f"(by {self.closed_by}, {closed_at})"
        )


def month_status(conn: psycopg.Connection, month: dt.date, *, lock: bool = False) -> MonthStatus | None:
    """The month's status (None: never published); `lock` holds its row until the transaction ends."""
    row = conn.execute(STATUS_QUERY + (" FOR UPDATE" if lock else ""), (month,)).fetchone()
    return MonthStatus(*row) if row else None


def closed_months(conn: psycopg.Connection, months: list[dt.date]) -> dict[dt.date, MonthStatus]:
    """The closed months among `months`, their rows locked until the (publish) transaction ends, so a
    month cannot be closed between this look and the publish."""
    found = {}
    for month in sorted(months):
        status = month_status(conn, month, lock=True)
        if status is not None and status.closed:
            found[month] = status
    return found


def record_publish(conn: psycopg.Connection, month: dt.date, run_id: str) -> None:
    """The open month's current version is what `run_id` just published, from these inputs."""
    conn.execute(
        RECORD_PUBLISH, {"month": month, "run_id": run_id, "inputs": Jsonb(month_inputs(conn, month))}
    )


def close_month(conn: psycopg.Connection, month: dt.date, *, by: str, note: str | None = None) -> MonthStatus:
    """Close a published, open month, in one transaction under the publish lock."""
    if not by.strip():
        raise MonthCloseError("closing a month needs the name of who closes it (--by)")
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (MART_NAMESPACE, PUBLISH_KEY))
        status = month_status(conn, month, lock=True)
        if status is None:
            raise MonthCloseError(f"{month:%Y-%m} was never published: there is nothing to close")
        if status.closed:
            raise MonthCloseError(f"{status.describe()}: already closed")
        conn.execute(
            "UPDATE finops.month_status SET status = 'CLOSED', closed_by = %s, closed_at = now(), note = %s, "
            "changed_at = now() WHERE period_month = %s",
            (by.strip(), note, month),
        )
        closed = month_status(conn, month)
    assert closed is not None
    return closed
