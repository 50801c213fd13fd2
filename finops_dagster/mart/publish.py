"""Publishing staged domain loads into fact_releve, month by month, atomically.

One transaction under the mart's advisory lock replaces, for each month of the run, the rows of
the domains this run loaded: readers see the previous complete month until COMMIT, then the new
one, never a mix. The aggregates that depend on those months (mart/aggregates.py) are recomputed in
the same transaction, so facts and aggregates switch together; so is each month's allocation of
shared costs (mart/allocation.py), recomputed whole from the month's facts, and the allocated view of
the aggregates. Two runs publishing at once queue on the lock instead of interleaving, which also
means the later one computes its months' neighbours from the earlier one's committed facts.

A closed month (mart/month_close.py) is never rewritten here: the nightly skips it (its staged rows
of this run are dropped) and says so; a run asked to restate closed months (`CLOSED_MONTHS_TAG`)
computes a restatement of it instead (mart/restatement.py), published only by
`approve_restatement`, atomically (facts, allocation and aggregates together), bumping its version.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from decimal import Decimal

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from finops_dagster.mart.aggregates import maintain_aggregates
from finops_dagster.mart.allocation import AllocatedMonth, AllocationError, allocate_published_month
from finops_dagster.mart.locks import MART_NAMESPACE, PUBLISH_KEY
from finops_dagster.mart.month_close import MonthStatus, closed_months, month_status, record_publish
from finops_dagster.mart.month_inputs import month_inputs
from finops_dagster.mart.month_partitions import ensure_month_partitions
from finops_dagster.mart.restatement import (
    Restatement,
    RestatementError,
    compute_restatement,
    lines_fingerprint,
    mark_approved,
    month_lines,
    pending_restatement,
)
from finops_dagster.mart.staging import domain_table
from finops_dagster.releve import RELEVE_COLUMNS
from finops_dagster.settings import anomaly_min_cost


class PublishError(RuntimeError):
    """The publish found staged data it cannot trust; nothing of the run was published."""


CLOSED_MONTHS_TAG = "finops/closed_months"
"""Run tag: `restate` computes a restatement of the run's closed months; without it (the nightly, the
schedule) they are skipped."""
SKIP = "skip"
RESTATE = "restate"

PUBLISHED = "published"
SKIPPED_CLOSED = "skipped (closed)"
RESTATED = "restatement computed"


@dataclass(frozen=True)
class PublishedMonth:
    period_month: dt.date
    domains: tuple[str, ...]
    releves: int
    total_cost: Decimal
    allocation: AllocatedMonth | None = None
    outcome: str = PUBLISHED
    closed: MonthStatus | None = None
    restatement: Restatement | None = None


def publish_run(
    conn: psycopg.Connection,
    run_id: str,
    months: list[dt.date],
    *,
    today: dt.date | None = None,
    closed_months_policy: str = SKIP,
) -> list[PublishedMonth]:
    """Publish every open month's staged loads of `run_id` and their aggregates, all months in one
    transaction. `today` places the month in progress (the anomalies leave it out). Closed months are
    skipped, or restated when `closed_months_policy` is RESTATE."""
    ensure_month_partitions(conn, months)
    published = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (MART_NAMESPACE, PUBLISH_KEY))
        _refuse_if_declared_dead(conn, run_id)
        closed = closed_months(conn, months)
        for month in sorted(months):
            if month in closed:
                published.append(_closed_month(conn, run_id, month, closed[month], closed_months_policy))
                continue
            facts = _publish_month(conn, run_id, month)
            published.append(replace(facts, allocation=_allocate(conn, month, run_id)))
            record_publish(conn, month, run_id)
        maintain_aggregates(
            conn,
            sorted(set(months) - set(closed)),
            today=today or dt.datetime.now(dt.UTC).date(),
            min_cost=anomaly_min_cost(),
        )
        conn.execute(
            "UPDATE finops.etl_runs SET records_inserted = records_inserted + %s, "
            "heartbeat_at = clock_timestamp() WHERE run_id = %s",
            (sum(month.releves for month in published), run_id),
        )
    return published


def _closed_month(
    conn: psycopg.Connection, run_id: str, month: dt.date, status: MonthStatus, policy: str
) -> PublishedMonth:
    """A closed month of the run: a restatement computed, or skipped (this run's staged rows dropped)."""
    if policy == RESTATE:

        def recompute() -> None:
            _publish_month(conn, run_id, month)
            _allocate(conn, month, run_id)

        restatement = compute_restatement(conn, run_id, month, status, recompute)
        return PublishedMonth(
            month, (), 0, Decimal(0), outcome=RESTATED, closed=status, restatement=restatement
        )
    _drop_staged(conn, run_id, month)
    return PublishedMonth(month, (), 0, Decimal(0), outcome=SKIPPED_CLOSED, closed=status)


def _drop_staged(conn: psycopg.Connection, run_id: str, month: dt.date) -> None:
    """This run's staged relevés and rejects of a month it will not publish (its manifest stays)."""
    domains = [
        row[0]
        for row in conn.execute(
            "SELECT domain_id FROM finops.domain_load WHERE run_id = %s AND period_month = %s",
            (run_id, month),
        )
    ]
    for domain_id in domains:
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE period_month = %s AND run_id = %s").format(domain_table(domain_id)),
            (month, run_id),
        )
    conn.execute("DELETE FROM finops.releve_reject WHERE period_month = %s AND run_id = %s", (month, run_id))


def month_differences(conn: psycopg.Connection, month: dt.date) -> list[str]:
    """What the nightly's blocking checks would find in `month` (allocation imbalances, aggregates
    differing from fact_releve): an approved restatement publishes a closed month that no later
    nightly publishes, so it is checked here, before it commits."""
    # imported here: the checks' modules declare checks on fact_releve, whose module imports this one
    from finops_dagster.checks.allocation import imbalances
    from finops_dagster.checks.checked_months import CheckedMonths
    from finops_dagster.checks.views import every_mismatch

    months = CheckedMonths([month])
    return [imbalance.shown() for imbalance in imbalances(conn, months=months)] + every_mismatch(conn, months)


def approve_restatement(
    conn: psycopg.Connection, month: dt.date, run_id: str, *, by: str, today: dt.date | None = None
) -> MonthStatus:
    """Publish the month's pending restatement by `run_id`: its staged relevés, the allocation and the
    aggregates, in one transaction under the publish lock, exactly as reviewed; the version goes up."""
    if not by.strip():
        raise RestatementError("approving a restatement needs the name of who approves it (--by)")
    ensure_month_partitions(conn, [month])
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (MART_NAMESPACE, PUBLISH_KEY))
        status = month_status(conn, month, lock=True)
        base_version, expected = pending_restatement(conn, month, run_id)
        if status is None or not status.closed:
            raise RestatementError(
                f"{month:%Y-%m} is not closed: the nightly publishes it, it is not restated"
            )
        if status.version != base_version:
            raise RestatementError(
                f"{month:%Y-%m} is at version {status.version} since this restatement was computed on "
                f"version {base_version}: run the month again to compute a new one"
            )
        outcome = conn.execute("SELECT status FROM finops.etl_runs WHERE run_id = %s", (run_id,)).fetchone()
        if outcome is None or outcome[0] != "SUCCESS":
            raise RestatementError(
                f"run {run_id} did not succeed ({outcome[0] if outcome else 'no record'}): its checks did "
                "not pass, so its restatement cannot be approved"
            )
        try:
            _publish_month(conn, run_id, month)
        except PublishError as error:
            raise RestatementError(str(error)) from None
        _allocate(conn, month, run_id)
        if lines_fingerprint(month_lines(conn, month)) != expected:
            raise RestatementError(
                f"{month:%Y-%m}: publishing run {run_id} now would not give the lines of its restatement "
                "(the allocation rules changed since): run the month again to compute a new one"
            )
        maintain_aggregates(
            conn, [month], today=today or dt.datetime.now(dt.UTC).date(), min_cost=anomaly_min_cost()
        )
        differences = month_differences(conn, month)
        if differences:
            raise RestatementError(
                f"{month:%Y-%m}: the restated month does not add up, nothing was published: "
                + "; ".join(differences[:10])
            )
        version = status.version + 1
        conn.execute(
            "UPDATE finops.month_status SET version = %s, published_run_id = %s, published_at = now(), "
            "inputs = %s, approved_by = %s, approved_at = now(), changed_at = now() WHERE period_month = %s",
            (version, run_id, Jsonb(month_inputs(conn, month)), by.strip(), month),
        )
        mark_approved(conn, month, run_id, by.strip(), version)
        approved = month_status(conn, month)
    assert approved is not None
    return approved


def _allocate(conn: psycopg.Connection, month: dt.date, run_id: str) -> AllocatedMonth:
    try:
        return allocate_published_month(conn, month, run_id)
    except AllocationError as error:
        raise PublishError(str(error)) from None


def _refuse_if_declared_dead(conn: psycopg.Connection, run_id: str) -> None:
    """A run recorded as ended (declared dead while its ledger could not reach the mart) publishes
    nothing: its record would otherwise say ABORTED over a month it changed. The row stays locked
    until COMMIT, so no reaper can declare it dead halfway through the publish."""
    row = conn.execute(
        "SELECT status, error_summary FROM finops.etl_runs WHERE run_id = %s FOR UPDATE", (run_id,)
    ).fetchone()
    if row is not None and row[0] != "RUNNING":
        raise PublishError(f"etl_runs records this run as {row[0]} ({row[1]}); nothing published")


def _publish_month(conn: psycopg.Connection, run_id: str, month: dt.date) -> PublishedMonth:
    loads = conn.execute(
        "SELECT domain_id, releve_count, total_cost FROM finops.domain_load "
        "WHERE run_id = %s AND period_month = %s ORDER BY domain_id",
        (run_id, month),
    ).fetchall()
    if not loads:
        raise PublishError(
            f"no domain relevés were loaded for {month:%Y-%m} in this run: fact_releve publishes what the "
            "domain assets of the same run produced, so materialize them together "
            "(for example --select '*fact_releve')"
        )
    releves = 0
    total = Decimal(0)
    for domain_id, expected_rows, expected_cost in loads:
        winner = _superseded_by(conn, run_id, month, domain_id)
        if winner is not None:
            raise PublishError(
                f"{domain_id} {month:%Y-%m}: run {winner} published this month after this run loaded it, "
                "which discarded this run's staged relevés; nothing published. Run the month again "
                "to publish fresh data"
            )
        inserted, cost = _replace_domain_month(conn, run_id, month, domain_id)
        if inserted != expected_rows or cost != expected_cost:
            raise PublishError(
                f"{domain_id} {month:%Y-%m}: staged relevés of this run changed since they were loaded "
                f"({inserted} rows / {cost} instead of {expected_rows} / {expected_cost}); nothing published"
            )
        _discard_superseded(conn, run_id, month, domain_id)
        releves += inserted
        total += cost
    return PublishedMonth(month, tuple(load[0] for load in loads), releves, total)


def _superseded_by(conn: psycopg.Connection, run_id: str, month: dt.date, domain_id: str) -> str | None:
    """The run whose publish discarded this run's staged load of the domain-month, if any.

    Checked by marker, not by row counts: an empty load (a month with nothing yet, or everything
    rejected) discarded by a newer publish still has "0 rows as expected".
    """
    row = conn.execute(
        "SELECT superseded_by FROM finops.domain_load "
        "WHERE run_id = %s AND domain_id = %s AND period_month = %s",
        (run_id, domain_id, month),
    ).fetchone()
    return row[0] if row else None


def _replace_domain_month(
    conn: psycopg.Connection, run_id: str, month: dt.date, domain_id: str
) -> tuple[int, Decimal]:
    conn.execute(
        "DELETE FROM finops.fact_releve WHERE period_month = %s AND domain_id = %s", (month, domain_id)
    )
    columns = sql.SQL(", ").join(map(sql.Identifier, RELEVE_COLUMNS))
    cursor = conn.execute(
        sql.SQL(
            "INSERT INTO finops.fact_releve ({cols}) SELECT {cols} FROM {table} "
            "WHERE period_month = %s AND run_id = %s AND domain_id = %s"
        ).format(cols=columns, table=domain_table(domain_id)),
        (month, run_id, domain_id),
    )
    inserted = cursor.rowcount
    row = conn.execute(
        "SELECT coalesce(sum(total_cost), 0) FROM finops.fact_releve "
        "WHERE period_month = %s AND domain_id = %s",
        (month, domain_id),
    ).fetchone()
    return inserted, row[0] if row else Decimal(0)


def _discard_superseded(conn: psycopg.Connection, run_id: str, month: dt.date, domain_id: str) -> None:
    """Staged rows and rejects of other runs for this domain-month are now history: drop them."""
    conn.execute(
        sql.SQL("DELETE FROM {} WHERE period_month = %s AND run_id <> %s").format(domain_table(domain_id)),
        (month, run_id),
    )
    conn.execute(
        "DELETE FROM finops.releve_reject WHERE domain_id = %s AND period_month = %s AND run_id <> %s",
        (domain_id, month, run_id),
    )
    conn.execute(
        "UPDATE finops.domain_load SET published_at = now() "
        "WHERE domain_id = %s AND period_month = %s AND run_id = %s",
        (domain_id, month, run_id),
    )
    conn.execute(
        "UPDATE finops.domain_load SET superseded_by = %s WHERE domain_id = %s AND period_month = %s "
        "AND run_id <> %s AND published_at IS NULL AND superseded_by IS NULL",
        (run_id, domain_id, month, run_id),
    )
