"""The mart's assets: fact_releve (the publish) and the materialized views (one refresh per run)."""

import datetime as dt
from collections.abc import Iterator, Sequence
from decimal import Decimal

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    asset,
    multi_asset,
)
from psycopg import sql

from finops_dagster.mart.etl_runs import RunLedger
from finops_dagster.mart.publish import publish_run
from finops_dagster.mart.run_selection import refuse_without_domains
from finops_dagster.mart.views import REFRESH_ORDER, refresh_views
from finops_dagster.partitions import RUNS_WITH_MONTHS, monthly_partitions
from finops_dagster.resources.postgres import PostgresResource

MART_POOL = "finops_mart"
MART_GROUP = "mart"
VIEWS_GROUP = "views"
FACT_RELEVE = AssetKey("fact_releve")


def build_fact_releve(domain_assets: Sequence[AssetKey]) -> AssetsDefinition:
    """fact_releve depends on the enabled domains' assets: if any fails, it does not run (strict policy)."""

    @asset(
        key=FACT_RELEVE,
        partitions_def=monthly_partitions,
        backfill_policy=BackfillPolicy.single_run(),
        deps=list(domain_assets),
        group_name=MART_GROUP,
        kinds={"postgres"},
        pool=MART_POOL,
    )
    def fact_releve(
        context: AssetExecutionContext, postgres: PostgresResource, run_ledger: RunLedger
    ) -> MaterializeResult:
        """The published relevés: for each month of the run, the rows of the domains this run
        loaded replace the previous ones in one transaction under the mart's advisory lock.

        Publish months with the job publish_months (or select '*fact_releve'): selected alone,
        fact_releve has nothing of this run to publish and refuses at once, changing nothing."""
        refuse_without_domains(context.run.asset_selection, domain_assets)
        months = [dt.date.fromisoformat(key) for key in context.partition_keys]
        with postgres.connect() as conn:
            published = publish_run(conn, context.run_id, months)
        rows = sum(month.releves for month in published)
        total = sum((month.total_cost for month in published), Decimal(0))
        table = ["| month | domains | relevés | total cost |", "|---|---|---:|---:|"] + [
            f"| {m.period_month:%Y-%m} | {', '.join(m.domains)} | {m.releves} | {m.total_cost} |"
            for m in published
        ]
        return MaterializeResult(
            metadata={
                "releves": MetadataValue.int(rows),
                "total_cost": MetadataValue.float(float(total)),
                "total_cost_exact": MetadataValue.text(str(total)),
                "months": MetadataValue.md("\n".join(table)),
            }
        )

    return fact_releve


@multi_asset(
    specs=[
        AssetSpec(name, deps=[FACT_RELEVE], group_name=VIEWS_GROUP, kinds={"postgres"}, skippable=True)
        for name in REFRESH_ORDER
    ],
    can_subset=True,
    pool=MART_POOL,
    backfill_policy=RUNS_WITH_MONTHS,
)
def materialized_views(
    context: AssetExecutionContext, postgres: PostgresResource, run_ledger: RunLedger
) -> Iterator[MaterializeResult]:
    """The views the read API serves, refreshed once per run whatever the number of months, in
    the fixed order of mart/views.py, in one transaction (readers switch at once)."""
    selected = {key.path[-1] for key in context.selected_asset_keys}
    with postgres.connect() as conn:
        timings = refresh_views(conn, selected)
        for name, seconds in timings.items():
            count = conn.execute(
                sql.SQL("SELECT count(*) FROM finops.{}").format(sql.Identifier(name))
            ).fetchone()
            yield MaterializeResult(
                asset_key=name,
                metadata={
                    "rows": MetadataValue.int(count[0] if count else 0),
                    "refresh_seconds": MetadataValue.float(seconds),
                },
            )
