"""The native domain's assets: tonight's snapshots of the services, and the monthly relevés from them."""

import datetime as dt

import psycopg
from dagster import AssetExecutionContext, BackfillPolicy, MaterializeResult, MetadataValue, asset

from finops_dagster.domains.native import DOMAIN_ID
from finops_dagster.domains.native.resource import NativeServicesResource
from finops_dagster.domains.native.snapshots import (
    MONTH_MEASURES,
    month_nights,
    month_problems,
    month_records_received,
    save_snapshot,
)
from finops_dagster.mart.etl_runs import RunLedger
from finops_dagster.month_loader import MonthToLoad, load_months
from finops_dagster.partitions import RUNS_WITH_MONTHS, monthly_partitions
from finops_dagster.priced_usage import PricedUsageFold
from finops_dagster.reference.snapshot import ReferenceSnapshot
from finops_dagster.releve import DomainLoad, month_start, utc_now
from finops_dagster.resources.postgres import PostgresResource


class MissingSnapshots(RuntimeError):
    """A past month has no persisted snapshot: the services cannot tell it any more."""


@asset(group_name=DOMAIN_ID, kinds={"api", "postgres"}, backfill_policy=RUNS_WITH_MONTHS)
def native_snapshots(
    context: AssetExecutionContext,
    postgres: PostgresResource,
    native: NativeServicesResource,
    run_ledger: RunLedger,
) -> MaterializeResult:
    """What GitLab, Artifactory and the usage-report services say tonight, persisted per night:
    they only know their current state, so this is the only history there will ever be."""
    night = utc_now().date()
    counts: dict[str, MetadataValue] = {}
    with postgres.connect() as conn, native.connected() as sources:
        for source in sources:
            for snapshot in source.snapshot(night):
                save_snapshot(conn, snapshot, context.run_id)
                counts[f"{snapshot.source}_{snapshot.period_month:%Y_%m}_readings"] = MetadataValue.int(
                    len(snapshot.readings)
                )
                context.log.info(
                    f"{snapshot.source} {snapshot.period_month:%Y-%m} night {night}: "
                    f"{len(snapshot.readings)} readings, {len(snapshot.problems)} problems"
                )
    return MaterializeResult(metadata={"night": MetadataValue.text(night.isoformat()), **counts})


def read_month(
    conn: psycopg.Connection, snapshot: ReferenceSnapshot, month: dt.date, run_id: str, now: dt.datetime
) -> DomainLoad:
    """Price one month from its persisted nights only (never the APIs)."""
    fold = PricedUsageFold(
        conn, domain_id=DOMAIN_ID, month=month, run_id=run_id, snapshot=snapshot, computed_at=now
    )
    fold.add_rows(MONTH_MEASURES, {"month": month})
    for problem in month_problems(conn, month):
        reason = f"{problem.reason} ({problem.nights} night(s))"
        fold.reject(problem.source, problem.ref, reason, problem.raw, records=problem.records)
    nights = month_nights(conn, month)
    details: dict[str, object] = {f"nights_{source}": count for source, count in nights.items()}
    details["record_ledger"] = month_records_received(conn, month)
    return fold.finish(details)


@asset(
    name=f"{DOMAIN_ID}_releves",
    partitions_def=monthly_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    deps=["applications", "reference_data", native_snapshots],
    group_name=DOMAIN_ID,
    kinds={"postgres"},
)
def native_releves(
    context: AssetExecutionContext, postgres: PostgresResource, run_ledger: RunLedger
) -> MaterializeResult:
    """Native-service consumption as monthly relevés from the month's persisted snapshots: storage
    averaged over the month's nights (GB-month), month-to-date counters at the month's last night,
    priced with the rate card valid for the month (see domains/native/snapshots.py)."""
    with postgres.connect() as conn:
        metadata = load_months(
            context,
            conn,
            DOMAIN_ID,
            read_persisted_month,
            lambda load: f", nights {load.details}",
        )
    return MaterializeResult(metadata=metadata)


def read_persisted_month(target: MonthToLoad) -> DomainLoad:
    """A month from its persisted nights; a past month without any cannot be computed any more."""
    conn, month = target.conn, target.month
    if not month_nights(conn, month) and month < month_start(target.now):
        raise MissingSnapshots(
            f"no native-service snapshot was persisted for {month:%Y-%m}: GitLab, Artifactory and "
            "the usage-report services only show their current state, so that month cannot be "
            "computed. "
            "Leave it out of the run."
        )
    return read_month(conn, target.snapshot, month, target.run_id, target.now)
