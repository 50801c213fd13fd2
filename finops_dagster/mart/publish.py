"""Publishing staged domain loads into fact_releve, month by month, atomically.

One transaction under the mart's advisory lock replaces, for each month of the run, the rows of
the domains this run loaded: readers see the previous complete month until COMMIT, then the new
one, never a mix. The aggregates that depend on those months (mart/aggregates.py) are recomputed in
the same transaction, so facts and aggregates switch together; so is each month's allocation of shared
costs (mart/allocation.py), recomputed whole from the month's facts, and the allocated view of the
aggregates. Two runs publishing at once queue on
the lock instead of interleaving, which also means the later one computes its months' neighbours
from the earlier one's committed facts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from decimal import Decimal

import psycopg
from psycopg import sql

from finops_dagster.mart.aggregates import maintain_aggregates
from finops_dagster.mart.allocation import AllocatedMonth, AllocationError, allocate_published_month
from finops_dagster.mart.locks import MART_NAMESPACE, PUBLISH_KEY
from finops_dagster.mart.staging import domain_table
from finops_dagster.releve import RELEVE_COLUMNS, next_month
from finops_dagster.settings import anomaly_min_cost


class PublishError(RuntimeError):
    """The publish found staged data it cannot trust; nothing of the run was published."""


@dataclass(frozen=True)
class PublishedMonth:
    period_month: dt.date
    domains: tuple[str, ...]
    releves: int
    total_cost: Decimal
    allocation: AllocatedMonth | None = None


def ensure_month_partition(conn: psycopg.Connection, month: dt.date) -> None:
    """Create fact_releve's partition for a month in its own short transaction.

    Done before the publish transaction because creating a partition locks the parent table;
    inside the publish it would block readers for the whole publish.
    """
    name = sql.Identifier(f"fact_releve_{month:%Y_%m}")
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (MART_NAMESPACE, PUBLISH_KEY))
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS finops.{} PARTITION OF finops.fact_releve "
                "FOR VALUES FROM ({}) TO ({})"
            ).format(name, sql.Literal(month), sql.Literal(next_month(month)))
        )


def publish_run(
    conn: psycopg.Connection, run_id: str, months: list[dt.date], *, today: dt.date | None = None
) -> list[PublishedMonth]:
    """Publish every month's staged loads of `run_id` and their aggregates, all months in one
    transaction. `today` places the month in progress (the anomalies leave it out)."""
    for month in months:
        ensure_month_partition(conn, month)
    published = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (MART_NAMESPACE, PUBLISH_KEY))
        _refuse_if_declared_dead(conn, run_id)
        for month in sorted(months):
            facts = _publish_month(conn, run_id, month)
            published.append(replace(facts, allocation=_allocate(conn, month, run_id)))
        maintain_aggregates(
            conn, sorted(months), today=today or dt.datetime.now(dt.UTC).date(), min_cost=anomaly_min_cost()
        )
        conn.execute(
            "UPDATE finops.etl_runs SET records_inserted = records_inserted + %s, "
            "heartbeat_at = clock_timestamp() WHERE run_id = %s",
            (sum(month.releves for month in published), run_id),
        )
    return published


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
