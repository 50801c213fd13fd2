"""The open_legacy_releves asset: the CMDB's month turned into priced relevés, staged in the mart."""

import datetime as dt

import psycopg
from dagster import AssetExecutionContext, BackfillPolicy, MaterializeResult, asset

from finops_dagster.domains.open_legacy import DOMAIN_ID
from finops_dagster.domains.open_legacy.cmdb import CmdbClient, layout_from_env
from finops_dagster.domains.open_legacy.ledger import count_month
from finops_dagster.domains.open_legacy.mapping import (
    SOURCE,
    OpenLegacyFold,
    load_class_catalog,
    measured_fields,
)
from finops_dagster.mart.etl_runs import RunLedger
from finops_dagster.month_loader import MonthToLoad, load_months
from finops_dagster.partitions import monthly_partitions
from finops_dagster.reference.snapshot import ReferenceSnapshot
from finops_dagster.releve import DomainLoad, month_start, utc_now
from finops_dagster.resources.mongo import MongoResource
from finops_dagster.resources.postgres import PostgresResource


def read_month(
    client: CmdbClient, snapshot: ReferenceSnapshot, month: dt.date, run_id: str, conn: psycopg.Connection
) -> DomainLoad:
    """Map and price one month of CMDB dumps (summarised per CI by MongoDB, priced in `conn`'s
    session), with the month's ledger counted apart from the reading (`details.record_ledger`),
    which the reconciliation balances the load's records against."""
    classes = load_class_catalog()
    rule_fields = [rule.field for rule in snapshot.rules if rule.field != "name"]
    measured = measured_fields(classes)
    fold = OpenLegacyFold(
        conn,
        month=month,
        run_id=run_id,
        classes=classes,
        snapshot=snapshot,
        application_sys_ids=client.application_sys_ids(month),
        application_field=client.layout.application_field,
        computed_at=utc_now(),
    )
    fold.add_dump_days(client.dump_days(month))
    fold.add_all(client.ci_summaries(month, sorted({*measured, *rule_fields}), measured))
    load = fold.finish()
    products = {cls: len(measures) for cls, measures in classes.items()}
    ledger = count_month(client.db, client.layout, products, month)
    load.details["record_ledger"] = {SOURCE: ledger.readings}
    load.details["ledger_documents"] = ledger.documents
    return load


class MissingDumps(RuntimeError):
    """A past month has no CMDB dump at all: computing it would publish an empty month."""


def _no_dumps(context: AssetExecutionContext, cmdb: MongoResource, month: dt.date) -> None:
    """The current month may not have its first dump yet (the night's run can precede it); a past
    month without any dump means the raw zone is missing data, which must not become zero costs."""
    if month == month_start(utc_now()):
        context.log.warning(f"{cmdb.describe()} holds no dump for {month:%Y-%m} yet: staging an empty month")
        return
    raise MissingDumps(
        f"{cmdb.describe()} holds no CMDB dump ingested in {month:%Y-%m}: the month cannot be computed. "
        "Check that the nightly dumps of that month were loaded into the raw zone, or leave the month "
        "out of the run."
    )


@asset(
    name=f"{DOMAIN_ID}_releves",
    partitions_def=monthly_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    deps=["applications", "reference_data"],
    group_name=DOMAIN_ID,
    kinds={"mongodb", "postgres"},
)
def open_legacy_releves(
    context: AssetExecutionContext, postgres: PostgresResource, cmdb: MongoResource, run_ledger: RunLedger
) -> MaterializeResult:
    """Legacy CMDB configuration items (servers, VMs, disks, storage volumes) as monthly relevés:
    average of the month's nightly dumps, priced with the rate card valid for the month.
    See domains/open_legacy/mapping.py for the averaging, resolution and reject rules."""
    client = CmdbClient(cmdb.db(), layout_from_env())

    def read_dumps(target: MonthToLoad) -> DomainLoad:
        load = read_month(client, target.snapshot, target.month, target.run_id, target.conn)
        if not load.details.get("dumps"):
            _no_dumps(context, cmdb, target.month)
        return load

    with postgres.connect() as conn:
        load_months(
            context,
            conn,
            DOMAIN_ID,
            read_dumps,
            lambda load: (
                f" from {load.details.get('documents', 0)} documents in {load.details.get('dumps', 0)} dumps"
            ),
        )
    return MaterializeResult()
