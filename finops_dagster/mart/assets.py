"""The mart's assets: fact_releve (the publish, with the aggregates of its months) and the aggregates."""

import datetime as dt
from collections.abc import Iterator, Sequence

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

from finops_dagster.mart.aggregates import AGGREGATES
from finops_dagster.mart.etl_runs import RunLedger
from finops_dagster.mart.metadata import month_metadata, published_month_figures
from finops_dagster.mart.publish import (
    CLOSED_MONTHS_TAG,
    RESTATE,
    RESTATED,
    SKIP,
    PublishedMonth,
    publish_run,
)
from finops_dagster.mart.restatement import skipped_announcement
from finops_dagster.mart.run_selection import refuse_without_domains
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
        loaded replace the previous ones in one transaction under the mart's advisory lock, with
        every aggregate row that depends on those months. Each month's partition records what the
        month now holds (every domain), per currency, with its published rejects.

        Publish months with the job publish_months (or select '*fact_releve'): selected alone,
        fact_releve has nothing of this run to publish and refuses at once, changing nothing.

        A closed month is skipped (and said so), unless the run restates closed months (the job
        restate_months, `finops-dagster nightly --months`, `finops-dagster restate`): then its
        restatement is computed, to be approved."""
        refuse_without_domains(context.run.asset_selection, domain_assets)
        months = [dt.date.fromisoformat(key) for key in context.partition_keys]
        policy = RESTATE if context.run.tags.get(CLOSED_MONTHS_TAG) == RESTATE else SKIP
        with postgres.connect() as conn:
            published = publish_run(conn, context.run_id, months, closed_months_policy=policy)
            for month in published:
                _say_closed(context, month)
                figures = published_month_figures(conn, month.period_month)
                context.add_asset_metadata(
                    {
                        **month_metadata(figures),
                        "outcome": MetadataValue.text(month.outcome),
                        "domains_published": MetadataValue.text(", ".join(month.domains)),
                        "releves_published": MetadataValue.int(month.releves),
                    },
                    partition_key=month.period_month.isoformat(),
                )
        return MaterializeResult()

    return fact_releve


def _say_closed(context: AssetExecutionContext, month: PublishedMonth) -> None:
    """A closed month in the run log: skipped, or its restatement and how to approve it."""
    if month.closed is None:
        return
    if month.outcome == RESTATED and month.restatement is not None:
        context.log.warning(month.restatement.announcement(month.closed.describe()))
        return
    context.log.warning(skipped_announcement(month.closed.describe(), month.period_month))


@multi_asset(
    specs=[
        AssetSpec(name, deps=[FACT_RELEVE], group_name=VIEWS_GROUP, kinds={"postgres"}, skippable=True)
        for name in AGGREGATES
    ],
    can_subset=True,
    pool=MART_POOL,
    backfill_policy=RUNS_WITH_MONTHS,
)
def materialized_views(
    context: AssetExecutionContext, postgres: PostgresResource, run_ledger: RunLedger
) -> Iterator[MaterializeResult]:
    """The aggregates the read API serves. fact_releve's publish already replaced their rows for
    the run's months in its own transaction (mart/aggregates.py), so this step only records what
    they hold: the planner's row estimate per aggregate, whatever the history's length. A full
    recomputation is the rebuild_aggregates job."""
    selected = [name for name in AGGREGATES if name in {key.path[-1] for key in context.selected_asset_keys}]
    with postgres.connect() as conn:
        estimates = dict(conn.execute(ROW_ESTIMATES, (selected,)).fetchall())
    for name in selected:
        yield MaterializeResult(
            asset_key=name, metadata={"rows_estimate": MetadataValue.int(estimates.get(name, 0))}
        )


# The planner's row counts (as of the last ANALYZE or autovacuum): a count(*) would cost as much as
# the history holds, which is what this step no longer does. A table partitioned by month counts
# its partitions' rows (pg_partition_tree lists nothing for a plain table: the table itself counts).
ROW_ESTIMATES = """
SELECT t.name, sum(greatest(c.reltuples, 0))::bigint
FROM unnest(%s::text[]) AS t(name)
JOIN pg_class AS parent ON parent.oid = to_regclass(format('finops.%%I', t.name))
LEFT JOIN LATERAL pg_partition_tree(parent.oid) AS p ON p.isleaf
JOIN pg_class AS c ON c.oid = coalesce(p.relid, parent.oid)
GROUP BY t.name
"""
