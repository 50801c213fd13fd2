"""The public_cloud_releves asset: provider bills as monthly relevés, converted to the reporting currency."""

import csv
import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from dagster import AssetExecutionContext, BackfillPolicy, MaterializeResult, MetadataValue, asset

from finops_dagster.domains.public_cloud import DOMAIN_ID
from finops_dagster.domains.public_cloud.fold import ChargeFold, FoldSettings
from finops_dagster.domains.public_cloud.resource import PublicCloudResource, PublicCloudSources
from finops_dagster.mart.etl_runs import RunLedger
from finops_dagster.month_loader import MonthToLoad, load_months
from finops_dagster.partitions import monthly_partitions
from finops_dagster.reference.loader import upsert_products
from finops_dagster.reference.snapshot import ReferenceSnapshot
from finops_dagster.releve import DomainLoad
from finops_dagster.resources.postgres import PostgresResource

SERVICE_CATEGORIES = Path(__file__).resolve().parent / "service_categories.csv"


def families_by_service_category() -> dict[str, str]:
    """FOCUS ServiceCategory → product family, from service_categories.csv (data, not code)."""
    with SERVICE_CATEGORIES.open(encoding="utf-8", newline="") as handle:
        return {row["service_category"]: row["family_id"] for row in csv.DictReader(handle)}


def exchange_rates(conn: psycopg.Connection, month: dt.date, to_currency: str) -> dict[str, Decimal]:
    """The month's rates into the reporting currency, by billed currency."""
    return {currency: rate for currency, (rate, _) in rates_with_sources(conn, month, to_currency).items()}


def rates_with_sources(
    conn: psycopg.Connection, month: dt.date, to_currency: str
) -> dict[str, tuple[Decimal, str]]:
    rows = conn.execute(
        "SELECT from_currency, rate, source FROM finops.exchange_rate "
        "WHERE period_month = %s AND to_currency = %s",
        (month, to_currency),
    ).fetchall()
    return {currency.strip(): (rate, source) for currency, rate, source in rows}


def converted_at(
    context: AssetExecutionContext, load: DomainLoad, rates: dict[str, tuple[Decimal, str]], reporting: str
) -> dict[str, str]:
    """The rates this month's bills were converted at, with where each comes from; a rate the
    reference file marks indicative is said aloud, so a deployment that kept the shipped rates knows."""
    used = {currency for currency in load.source_costs if currency != reporting and currency in rates}
    for currency in sorted(used):
        rate, source = rates[currency]
        if "indicative" in source.lower():
            context.log.warning(
                f"{load.period_month:%Y-%m}: {currency} converted at an indicative rate "
                f"({rate.normalize():f}, {source}); "
                "replace reference/data/exchange_rates.csv with the treasury's monthly rates"
            )
    return {
        currency: f"{rates[currency][0].normalize():f} ({rates[currency][1]})" for currency in sorted(used)
    }


def read_month(
    context: AssetExecutionContext,
    sources: PublicCloudSources,
    conn: psycopg.Connection,
    snapshot: ReferenceSnapshot,
    month: dt.date,
    now: dt.datetime,
) -> tuple[DomainLoad, ChargeFold]:
    """Every enabled source's charges of the month, allocated and converted."""
    settings = sources.settings
    rates = rates_with_sources(conn, month, settings.reporting_currency)
    fold = ChargeFold(
        month=month,
        run_id=context.run_id,
        computed_at=now,
        snapshot=snapshot,
        exchange_rates={currency: rate for currency, (rate, _) in rates.items()},
        settings=FoldSettings(
            tag_keys=settings.tag_keys,
            reporting_currency=settings.reporting_currency,
            product_by_sku=settings.product_by_sku,
            families_by_category=families_by_service_category(),
        ),
    )
    try:
        details = _read_sources(context, sources, fold, month, now)
        load = fold.finish(details)
    finally:
        fold.close()
    load.details["exchange_rates"] = converted_at(context, load, rates, settings.reporting_currency)
    return load, fold


def _read_sources(
    context: AssetExecutionContext,
    sources: PublicCloudSources,
    fold: ChargeFold,
    month: dt.date,
    now: dt.datetime,
) -> dict[str, Any]:
    """Each enabled source's month into the fold; what each read, for the load's details."""
    details: dict[str, Any] = {}
    for name, reader in sources.readers.items():
        read = reader.read_month(month, now, fold.table)
        fold.add_source(read)
        for skipped in read.skipped_files:
            context.log.info(f"{name} {month:%Y-%m}: skipped {skipped.path}: {skipped.reason}")
        charge_groups = len(read.groups) + read.inserted_groups
        details[name] = {
            "files_read": read.files_read,
            "line_items": read.line_items,
            "charge_groups": charge_groups,
            "unreadable_rows": len(read.problems),
            "skipped_files": [{"path": s.path, "reason": s.reason} for s in read.skipped_files],
            "manifest": read.manifest,
            "ledger": read.ledger,
        }
        context.log.info(
            f"{name} {month:%Y-%m}: {read.line_items} line items from {read.files_read} file(s) or "
            f"responses, {charge_groups} charge groups, "
            f"{len(read.problems)} unreadable rows"
        )
    return details


@asset(
    name=f"{DOMAIN_ID}_releves",
    partitions_def=monthly_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    deps=["applications", "reference_data"],
    group_name=DOMAIN_ID,
    kinds={"duckdb", "postgres"},
)
def public_cloud_releves(
    context: AssetExecutionContext,
    postgres: PostgresResource,
    public_cloud: PublicCloudResource,
    run_ledger: RunLedger,
) -> MaterializeResult:
    """Public-cloud bills (FOCUS exports of any provider, the GCP billing export, the providers' cost
    APIs) as monthly relevés: each charge allocated by its application tag, then the mapping rules,
    else to the unallocated application, and converted to the reporting currency with the month's
    exchange rate, the billed amount kept (see domains/public_cloud/fold.py)."""
    loads: list[DomainLoad] = []
    with postgres.connect() as conn, public_cloud.connected() as sources:

        def read_bills(target: MonthToLoad) -> DomainLoad:
            load, fold = read_month(context, sources, target.conn, target.snapshot, target.month, target.now)
            upsert_products(target.conn, fold.products.values())
            loads.append(load)
            return load

        metadata = load_months(
            context,
            conn,
            DOMAIN_ID,
            read_bills,
            lambda load: f" from {load.source_record_count} line items",
        )
    return MaterializeResult(metadata={**metadata, **_bill_metadata(loads)})


def _bill_metadata(loads: list[DomainLoad]) -> dict[str, MetadataValue]:
    rows = [
        "| month | source | files | line items | unreadable rows | skipped files |",
        "|---|---|---:|---:|---:|---|",
    ]
    skipped_count = 0
    for load in loads:
        for name, read in load.details.items():
            if not isinstance(read, dict) or "line_items" not in read:
                continue
            skipped = read["skipped_files"]
            skipped_count += len(skipped)
            listed = "; ".join(f"{Path(s['path']).name}: {s['reason']}" for s in skipped[:10])
            more = f" (+{len(skipped) - 10} more)" if len(skipped) > 10 else ""
            rows.append(
                f"| {load.period_month:%Y-%m} | {name} | {read['files_read']} | {read['line_items']} "
                f"| {read['unreadable_rows']} | {listed}{more} |"
            )
    billed: dict[str, Decimal] = {}
    for load in loads:
        for currency, cost in load.source_costs.items():
            billed[currency] = billed.get(currency, Decimal(0)) + cost
    return {
        "line_items": MetadataValue.int(sum(load.source_record_count for load in loads)),
        "skipped_files": MetadataValue.int(skipped_count),
        "sources": MetadataValue.md("\n".join(rows)),
        "billed_by_currency": MetadataValue.json(
            {currency: str(cost) for currency, cost in sorted(billed.items())}
        ),
        "manifest": MetadataValue.md(_manifest_table(loads)),
    }


MANIFEST_ROWS = 200
"""Files listed in the metadata's table (all of them stay in the load's details)."""


def _manifest_table(loads: list[DomainLoad]) -> str:
    """Every file read, once per month and source: where it is, how it was reached, what it is, and
    its ledger (rows counted independently = in relevés + rejected + other months)."""
    rows = [
        "| month | source | file | routes | size | modified | sha256 | rows | in relevés | rejected "
        "| other months |",
        "|---|---|---|---|---:|---|---|---:|---:|---:|---:|",
    ]
    listed = 0
    for load in loads:
        for name, read in load.details.items():
            if not isinstance(read, dict) or "manifest" not in read:
                continue
            ledgers = {entry["path"]: entry for entry in read.get("ledger", [])}
            for entry in read["manifest"]:
                listed += 1
                if listed > MANIFEST_ROWS:
                    continue
                ledger = ledgers.get(entry["path"])
                figures = "| | | |"
                if ledger is not None:
                    others = sum(share["rows"] for share in ledger["other_months"].values())
                    figures = f"| {ledger['placed']['rows']} | {ledger['rejected']['rows']} | {others} |"
                counted = ledger["counted"]["rows"] if ledger is not None else ""
                routes = "<br>".join(entry["routes"])
                rows.append(
                    f"| {load.period_month:%Y-%m} | {name} | {entry['path']} | {routes} | {entry['size']} "
                    f"| {entry['mtime']} | `{entry['sha256'][:16]}…` | {counted} {figures}"
                )
    if listed > MANIFEST_ROWS:
        rows.append(f"| | | (+{listed - MANIFEST_ROWS} more files, in the load's details) | | | | | | | | |")
    return "\n".join(rows)
