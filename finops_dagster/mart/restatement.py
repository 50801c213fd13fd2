"""Restating a closed month: the new version a run computes, what it changes and why, until approved.

A run over a closed month (an explicit one: `finops-dagster nightly --months`, `finops-dagster
restate`, the job restate_months) does not publish it. Inside the publish transaction it replaces the
month's facts and allocation under a savepoint, reads the month as it would be, rolls the savepoint
back, and keeps the difference: per application × product × currency, the direct and allocated cost
before and after, and which inputs changed (their fingerprints against those recorded when the
current version was published: month_inputs.py). The run's staged relevés stay staged; approving the
restatement publishes them (mart/publish.py, `approve_restatement`) and must reproduce exactly the
lines that were reviewed (`after_fingerprint`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import psycopg
from psycopg.types.json import Jsonb

from finops_dagster.mart.month_close import MonthStatus
from finops_dagster.mart.month_inputs import ALLOCATION_RULE, DIRECT_INPUTS, changed_inputs, month_inputs

PENDING = "PENDING"
APPROVED = "APPROVED"
SUPERSEDED = "SUPERSEDED"
UNIDENTIFIED = "unidentified"
"""A line changed although no recorded input did (an input the fingerprints do not cover, such as the
application referential of the CMDB)."""

ZERO = Decimal(0)
Key = tuple[str, str, str]  # application, product, currency
Lines = dict[Key, tuple[Decimal, Decimal]]  # direct cost, allocated cost

MONTH_LINES = """
SELECT application_id, product_id, currency, direct_cost, total_cost
FROM finops.fact_releve_allocated WHERE period_month = %s
"""


class RestatementError(RuntimeError):
    """A restatement cannot be approved (unknown, not pending, stale); the message says why."""


@dataclass(frozen=True)
class Restatement:
    period_month: dt.date
    run_id: str
    base_version: int
    changed_inputs: tuple[str, ...]
    lines_changed: int
    direct_before: Decimal
    direct_after: Decimal

    def announcement(self, closed: str) -> str:
        """What a run says of the closed month it computed this restatement for (`closed`: how the
        month was closed): what changes, why, where to review it and how to approve it."""
        month = f"{self.period_month:%Y-%m}"
        return (
            f"{closed}: restatement computed, not published — {self.lines_changed} line(s) change, direct "
            f"total {self.direct_before:f} → {self.direct_after:f}, changed inputs: "
            f"{', '.join(self.changed_inputs) or 'none'}. Review it (GET /api/v1/months/{month}/restatements/"
            f"{self.run_id}), then approve it: finops-dagster restate {month} --approve {self.run_id} "
            "--by NAME (or the job approve_restatement)"
        )


def skipped_announcement(closed: str, month: dt.date) -> str:
    """What a run says of a closed month it left alone (`closed`: how the month was closed)."""
    return (
        f"{closed}: skipped, not rewritten. A restatement is computed by an explicit run over it: "
        f"finops-dagster restate {month:%Y-%m} (or the job restate_months)"
    )


def month_lines(conn: psycopg.Connection, month: dt.date) -> Lines:
    """The month's direct and allocated cost per application × product × currency, as stored."""
    return {
        (application, product, currency): (direct, allocated)
        for application, product, currency, direct, allocated in conn.execute(MONTH_LINES, (month,))
    }


def lines_fingerprint(lines: Lines) -> str:
    """An md5 of the lines in a fixed order: what an approval must publish, exactly."""
    text = "\n".join(
        f"{application}|{product}|{currency}|{direct:f}|{allocated:f}"
        for (application, product, currency), (direct, allocated) in sorted(lines.items())
    )
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def compute_restatement(
    conn: psycopg.Connection,
    run_id: str,
    month: dt.date,
    status: MonthStatus,
    recompute: Callable[[], None],
) -> Restatement:
    """What publishing `run_id`'s staged loads would change in the closed month; stored as PENDING.
    `recompute` replaces the month's facts and allocation; it runs under a savepoint rolled back here."""
    before = month_lines(conn, month)
    with conn.transaction() as savepoint:
        recompute()
        after = month_lines(conn, month)
        inputs = month_inputs(conn, month)
        raise psycopg.Rollback(savepoint)
    changed = changed_inputs(status.inputs, inputs)
    differences = _differences(before, after, changed)
    restatement = Restatement(
        month,
        run_id,
        status.version,
        tuple(changed),
        len(differences),
        sum((direct for direct, _ in before.values()), ZERO),
        sum((direct for direct, _ in after.values()), ZERO),
    )
    _store(conn, restatement, inputs, lines_fingerprint(after), differences)
    return restatement


def _differences(
    before: Lines, after: Lines, changed: list[str]
) -> list[tuple[Key, tuple[Decimal, ...], list[str]]]:
    direct_changed = any(
        before.get(key, (ZERO, ZERO))[0] != after.get(key, (ZERO, ZERO))[0]
        for key in before.keys() | after.keys()
    )
    direct_causes = [name for name in changed if name in DIRECT_INPUTS]
    found: list[tuple[Key, tuple[Decimal, ...], list[str]]] = []
    for key in sorted(before.keys() | after.keys()):
        direct_before, allocated_before = before.get(key, (ZERO, ZERO))
        direct_after, allocated_after = after.get(key, (ZERO, ZERO))
        if (direct_before, allocated_before) == (direct_after, allocated_after):
            continue
        if direct_before != direct_after:
            causes = list(direct_causes)
        else:  # only the allocated cost moved: the rules, or other lines' cost that weighs in them
            causes = [
                name
                for name in changed
                if name == ALLOCATION_RULE or (direct_changed and name in DIRECT_INPUTS)
            ]
        found.append(
            (key, (direct_before, direct_after, allocated_before, allocated_after), causes or [UNIDENTIFIED])
        )
    return found


def _store(
    conn: psycopg.Connection,
    restatement: Restatement,
    inputs: dict[str, str],
    after_fingerprint: str,
    differences: list[tuple[Key, tuple[Decimal, ...], list[str]]],
) -> None:
    month, run_id = restatement.period_month, restatement.run_id
    conn.execute(
        "DELETE FROM finops.month_restatement WHERE period_month = %s AND run_id = %s", (month, run_id)
    )
    conn.execute(
        "INSERT INTO finops.month_restatement (period_month, run_id, base_version, inputs, changed_inputs, "
        "after_fingerprint, lines_changed, direct_before, direct_after) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            month,
            run_id,
            restatement.base_version,
            Jsonb(inputs),
            list(restatement.changed_inputs),
            after_fingerprint,
            restatement.lines_changed,
            restatement.direct_before,
            restatement.direct_after,
        ),
    )
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY finops.month_restatement_line (period_month, run_id, application_id, product_id, currency, "
            "direct_before, direct_after, allocated_before, allocated_after, changed_inputs) FROM STDIN"
        ) as copy,
    ):
        for (application, product, currency), amounts, causes in differences:
            copy.write_row((month, run_id, application, product, currency, *amounts, causes))


def pending_restatement(conn: psycopg.Connection, month: dt.date, run_id: str) -> tuple[int, str]:
    """(base version, after fingerprint) of the month's pending restatement by `run_id`, locked."""
    row = conn.execute(
        "SELECT status, base_version, after_fingerprint FROM finops.month_restatement "
        "WHERE period_month = %s AND run_id = %s FOR UPDATE",
        (month, run_id),
    ).fetchone()
    if row is None:
        raise RestatementError(f"{month:%Y-%m}: no restatement by run {run_id}")
    status, base_version, fingerprint = row
    if status != PENDING:
        raise RestatementError(f"{month:%Y-%m}: the restatement by run {run_id} is {status}, not pending")
    return base_version, fingerprint


def mark_approved(conn: psycopg.Connection, month: dt.date, run_id: str, by: str, version: int) -> None:
    """This restatement approved (the month's new version); the month's other pending ones superseded."""
    conn.execute(
        "UPDATE finops.month_restatement SET status = 'APPROVED', approved_by = %s, approved_at = now(), "
        "new_version = %s WHERE period_month = %s AND run_id = %s",
        (by, version, month, run_id),
    )
    conn.execute(
        "UPDATE finops.month_restatement SET status = 'SUPERSEDED' "
        "WHERE period_month = %s AND run_id <> %s AND status = 'PENDING'",
        (month, run_id),
    )
