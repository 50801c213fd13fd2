"""The full rebuild of the aggregates, as a Dagster job (the CLI's `rebuild-aggregates` runs the same).

The nightly maintains the aggregates month by month; after a change that rewrites history (a rate
card or a mapping applied to past months, a migration) or on a new mart, every row is recomputed
from fact_releve in one transaction, and each aggregate is recorded as materialized. Then every
month of both views is compared with fact_releve (a nightly's check reads only the months its run
published): a difference fails the rebuild, naming the aggregate, period and currency.
"""

import datetime as dt
from collections.abc import Iterator

import psycopg
from dagster import AssetMaterialization, Failure, MetadataValue, OpExecutionContext, Output, job, op
from psycopg import sql

from finops_dagster.checks.views import every_mismatch
from finops_dagster.mart.aggregates import AGGREGATES, rebuild_aggregates
from finops_dagster.resources.postgres import PostgresResource
from finops_dagster.settings import anomaly_min_cost

SHOWN = 10


class RebuildMismatch(RuntimeError):
    """The rebuilt aggregates do not add up to fact_releve."""


def rebuild_and_check(conn: psycopg.Connection) -> dict[str, float]:
    """Rebuild every aggregate, then compare every month of both views with fact_releve; the
    rebuild's seconds per aggregate, or RebuildMismatch naming the first differences."""
    timings = rebuild_aggregates(conn, today=dt.datetime.now(dt.UTC).date(), min_cost=anomaly_min_cost())
    mismatches = every_mismatch(conn)
    if mismatches:
        raise RebuildMismatch(
            f"the rebuilt aggregates differ from fact_releve in {len(mismatches)} period/currency total(s): "
            + "; ".join(mismatches[:SHOWN])
        )
    return timings


@op
def rebuild_all_aggregates(context: OpExecutionContext, postgres: PostgresResource) -> Iterator[object]:
    """Recompute every aggregate row from fact_releve (readers keep the old rows until COMMIT), then
    check every month of both views against it."""
    with postgres.connect() as conn:
        try:
            timings = rebuild_and_check(conn)
        except RebuildMismatch as mismatch:
            raise Failure(str(mismatch)) from None
        for name in AGGREGATES:
            row = conn.execute(
                sql.SQL("SELECT count(*) FROM finops.{}").format(sql.Identifier(name))
            ).fetchone()
            yield AssetMaterialization(
                asset_key=name,
                metadata={
                    "rows": MetadataValue.int(row[0] if row else 0),
                    "rebuild_seconds": MetadataValue.float(timings.get(name, 0.0)),
                },
            )
    context.log.info(
        f"aggregates rebuilt in {sum(timings.values()):.1f} s; every month of both views matches fact_releve"
    )
    yield Output(None)


@job(description="Recompute every aggregate (finops.mv_*) from fact_releve, then check every month of them.")
def rebuild_aggregates_job() -> None:
    rebuild_all_aggregates()
