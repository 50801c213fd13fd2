"""The private_cloud_releves asset: usage from the private clouds' APIs, priced with the rate cards."""

import datetime as dt

from dagster import AssetExecutionContext, BackfillPolicy, MaterializeResult, MetadataValue, asset

from finops_dagster.domains.private_cloud.problems import UsageProblem
from finops_dagster.domains.private_cloud.resource import PrivateCloudResource, PrivateCloudSources
from finops_dagster.domains.private_cloud.usage_api import UnmappedQuantity
from finops_dagster.mart.etl_runs import RunLedger, utc_now
from finops_dagster.mart.metadata import load_metadata
from finops_dagster.mart.staging import stage_domain_load
from finops_dagster.partitions import monthly_partitions
from finops_dagster.priced_usage import MeteredUsage, PricedUsageFold
from finops_dagster.reference.snapshot import ReferenceSnapshot, read_snapshot
from finops_dagster.releve import DomainLoad
from finops_dagster.resources.postgres import PostgresResource

DOMAIN_ID = "private_cloud"


def read_month(
    sources: PrivateCloudSources,
    conn_snapshot: tuple[object, ReferenceSnapshot],
    month: dt.date,
    run_id: str,
    now: dt.datetime,
    opencost_refused: list[UsageProblem] | None = None,
) -> DomainLoad:
    """Meter and price one month from every enabled source (plus OpenCost entries refused when read)."""
    conn, snapshot = conn_snapshot
    fold = PricedUsageFold(
        domain_id=DOMAIN_ID, month=month, run_id=run_id, snapshot=snapshot, computed_at=now
    )
    details: dict[str, object] = {}
    if sources.openstack is not None:
        _fold_items(fold, "openstack", sources.openstack.metered(month, now))
    if sources.opencost is not None:
        _fold_items(fold, "opencost", [*(opencost_refused or []), *sources.opencost.metered(conn, month)])  # type: ignore[arg-type]
        details["opencost_days"] = sources.opencost.persisted_days(conn, month)  # type: ignore[arg-type]
    if sources.usage_api is not None:
        _fold_items(fold, sources.usage_api.client.name, sources.usage_api.metered(month))
    return fold.finish(details)


def _fold_items(fold: PricedUsageFold, source: str, items: object) -> None:
    for item in items:  # type: ignore[attr-defined]
        if isinstance(item, MeteredUsage):
            fold.add(item)
        elif isinstance(item, UnmappedQuantity):
            fold.reject(source, item.ref, item.reason, item.raw, unit=item.unit, quantity=item.quantity)
        elif isinstance(item, UsageProblem):
            fold.reject(source, item.ref, item.reason, item.raw)


def _problem_month(problem: UsageProblem, fallback: dt.date) -> dt.date:
    """The month of the OpenCost window an unusable entry belongs to (the run's last month if unknown)."""
    window = problem.raw.get("window") if isinstance(problem.raw.get("window"), dict) else {}
    start = window.get("start") if window else problem.raw.get("start")
    try:
        day = dt.datetime.fromisoformat(str(start).replace("Z", "+00:00")).date()
    except ValueError:
        return fallback
    return dt.date(day.year, day.month, 1)


@asset(
    name=f"{DOMAIN_ID}_releves",
    partitions_def=monthly_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    deps=["applications", "reference_data"],
    group_name=DOMAIN_ID,
    kinds={"api", "postgres"},
)
def private_cloud_releves(
    context: AssetExecutionContext,
    postgres: PostgresResource,
    private_cloud: PrivateCloudResource,
    run_ledger: RunLedger,
) -> MaterializeResult:
    """Private-cloud usage (OpenStack Nova, OpenCost, in-house usage APIs) as monthly relevés,
    priced with the rate card valid for the month. OpenCost days are persisted on every run, and a
    month is computed from the days persisted for it (see domains/private_cloud/opencost.py)."""
    months = [dt.date.fromisoformat(key) for key in context.partition_keys]
    now = utc_now()
    staged = []
    extra: dict[str, MetadataValue] = {}
    refused: dict[dt.date, list[UsageProblem]] = {}
    with postgres.connect() as conn, private_cloud.connected() as sources:
        snapshot = read_snapshot(conn, DOMAIN_ID)
        if sources.opencost is not None:
            days, problems = sources.opencost.persist_recent_days(conn, context.run_id, now.date())
            extra["opencost_days_persisted"] = MetadataValue.int(days)
            for problem in problems:
                context.log.warning(
                    f"OpenCost entry skipped for persistence: {problem.ref}: {problem.reason}"
                )
                # a reject of the month its window belongs to, when this run computes that month
                refused.setdefault(_problem_month(problem, months[-1]), []).append(problem)
        for month in months:
            load = read_month(sources, (conn, snapshot), month, context.run_id, now, refused.get(month))
            staged.append(stage_domain_load(conn, load, context.run_id))
            context.log.info(
                f"{DOMAIN_ID} {month:%Y-%m}: {len(load.releves)} relevés, total {load.total_cost}, "
                f"{len(load.rejects)} rejects from {load.source_record_count} source records"
            )
    return MaterializeResult(metadata={**load_metadata(staged), **extra})
