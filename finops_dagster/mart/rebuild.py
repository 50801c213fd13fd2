"""The full rebuild of the aggregates, as a Dagster job (the CLI's `rebuild-aggregates` runs the same).

The nightly maintains the aggregates month by month; after a change that rewrites history (a rate
card or a mapping applied to past months, a migration) or on a new mart, every row is recomputed
from fact_releve in one transaction, and each aggregate is recorded as materialized.
"""

import datetime as dt
from collections.abc import Iterator

from dagster import AssetMaterialization, MetadataValue, OpExecutionContext, Output, job, op
from psycopg import sql

from finops_dagster.mart.aggregates import AGGREGATES, rebuild_aggregates
from finops_dagster.resources.postgres import PostgresResource
from finops_dagster.settings import anomaly_min_cost


@op
def rebuild_all_aggregates(context: OpExecutionContext, postgres: PostgresResource) -> Iterator[object]:
    """Recompute every aggregate row from fact_releve; readers keep the old rows until COMMIT."""
    with postgres.connect() as conn:
        timings = rebuild_aggregates(conn, today=dt.datetime.now(dt.UTC).date(), min_cost=anomaly_min_cost())
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
    context.log.info(f"aggregates rebuilt in {sum(timings.values()):.1f} s")
    yield Output(None)


@job(description="Recompute every aggregate (finops.mv_*) from fact_releve.")
def rebuild_aggregates_job() -> None:
    rebuild_all_aggregates()
