"""The private_cloud_releves asset: usage from the private clouds' APIs, priced with the rate cards."""

import datetime as dt
from collections.abc import Iterable

import psycopg
from dagster import AssetExecutionContext, BackfillPolicy, MaterializeResult, MetadataValue, asset

from finops_dagster.domains.private_cloud import DOMAIN_ID
from finops_dagster.domains.private_cloud.openstack import SOURCE as OPENSTACK
from finops_dagster.domains.private_cloud.problems import UsageProblem
from finops_dagster.domains.private_cloud.resource import PrivateCloudResource, PrivateCloudSources
from finops_dagster.domains.private_cloud.usage_api_payloads import UnmappedQuantity
from finops_dagster.mart.etl_runs import RunLedger
from finops_dagster.month_loader import load_months
from finops_dagster.partitions import monthly_partitions
from finops_dagster.priced_usage import MeteredUsage, PricedUsageFold
from finops_dagster.reference.snapshot import ReferenceSnapshot
from finops_dagster.releve import DomainLoad, utc_now
from finops_dagster.resources.postgres import PostgresResource


def read_month(
    sources: PrivateCloudSources,
    conn: psycopg.Connection,
    snapshot: ReferenceSnapshot,
    month: dt.date,
    run_id: str,
    now: dt.datetime,
) -> DomainLoad:
    """Meter and price one month from every enabled source; OpenCost's from its persisted days, the
    entries refused when read included (rejects of the month of their day). The live APIs (Nova,
    the usage API) count what their pages held before any parsing: the record ledger the
    reconciliation balances against the relevés' and rejects' records."""
    fold = PricedUsageFold(
        conn,
        domain_id=DOMAIN_ID, month=month, run_id=run_id, snapshot=snapshot, computed_at=now
    )
    details: dict[str, object] = {}
    ledger: dict[str, int] = {}
    if sources.openstack is not None:
        _fold_items(fold, OPENSTACK, sources.openstack.metered(month, now))
        ledger[OPENSTACK] = sources.openstack.records_received(month)
    if sources.opencost is not None:
        refused = sources.opencost.refused(conn, month)
        _fold_items(fold, "opencost", [*refused, *sources.opencost.metered(conn, month)])
        details["opencost_days"] = sources.opencost.persisted_days(conn, month)
    if sources.usage_api is not None:
        _fold_items(fold, sources.usage_api.client.name, sources.usage_api.metered(month))
        ledger[sources.usage_api.client.name] = sources.usage_api.records_received(month)
    details["record_ledger"] = ledger
    return fold.finish(details)


def _fold_items(
    fold: PricedUsageFold, source: str, items: Iterable[MeteredUsage | UnmappedQuantity | UsageProblem]
) -> None:
    for item in items:
        if isinstance(item, MeteredUsage):
            fold.add(item)
        elif isinstance(item, UnmappedQuantity):
            fold.reject(source, item.ref, item.reason, item.raw, unit=item.unit, quantity=item.quantity)
        elif isinstance(item, UsageProblem):
            fold.reject(source, item.ref, item.reason, item.raw, records=item.records)


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
    extra: dict[str, MetadataValue] = {}
    with postgres.connect() as conn, private_cloud.connected() as sources:
        if sources.opencost is not None:
            days, refused = sources.opencost.persist_recent_days(conn, context.run_id, utc_now().date())
            extra["opencost_days_persisted"] = MetadataValue.int(days)
            extra["opencost_entries_refused"] = MetadataValue.int(len(refused))
            for day, problem in refused:
                context.log.warning(
                    f"OpenCost entry refused, a reject of {day:%Y-%m}: {problem.ref}: {problem.reason}"
                )
        metadata = load_months(
            context,
            conn,
            DOMAIN_ID,
            lambda target: read_month(
                sources, target.conn, target.snapshot, target.month, target.run_id, target.now
            ),
            lambda load: f" from {load.source_record_count} source records",
        )
    return MaterializeResult(metadata={**metadata, **extra})
