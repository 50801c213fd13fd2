"""Published and staged rejects written straight into a test's mart, for the readers of rejects."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import psycopg

OCTOBER = dt.date(2026, 10, 1)
NOVEMBER = dt.date(2026, 11, 1)

REJECTS: list[
    tuple[
        str,
        dt.date,
        str,
        str,
        str,
        str,
        str,
        int | None,
        Decimal | None,
        str | None,
        Decimal | None,
        str | None,
    ]
] = [
    # domain, month, run, code, details, source, ref, records, quantity, unit, cost, currency
    (
        "open_legacy",
        OCTOBER,
        "run-a",
        "UNKNOWN_CI_CLASS",
        "unknown CI class 'cmdb_ci_ups' in 31 document(s): not billable",
        "servicenow_cmdb",
        "ups-1 (ups-1)",
        31,
        None,
        None,
        None,
        None,
    ),
    (
        "open_legacy",
        OCTOBER,
        "run-a",
        "UNKNOWN_CI_CLASS",
        "unknown CI class 'cmdb_ci_printer' in 2 document(s): not billable",
        "servicenow_cmdb",
        "prn-1 (prn-1)",
        2,
        None,
        None,
        None,
        None,
    ),
    (
        "open_legacy",
        OCTOBER,
        "run-a",
        "NO_RATE",
        "no rate card for OL_VCPU valid in 2026-10",
        "servicenow_cmdb",
        "PAYMENTS / OL_VCPU",
        3,
        Decimal("4.000000"),
        "vCPU-month",
        None,
        None,
    ),
    (
        "public_cloud",
        OCTOBER,
        "run-b",
        "NO_EXCHANGE_RATE",
        "no exchange rate USD→EUR for 2026-10 (reference/data/exchange_rates.csv)",
        "focus",
        "aws:AmazonEC2:PAYMENTS",
        None,
        None,
        None,
        Decimal("123.450000"),
        "USD",
    ),
    (
        "public_cloud",
        OCTOBER,
        "run-b",
        "INVALID_CURRENCY",
        "billing currency US Dollar is not an ISO 4217 code",
        "focus",
        "/exports/bill.csv#row 7",
        None,
        None,
        None,
        Decimal("7.000000"),
        None,
    ),
    (
        "public_cloud",
        OCTOBER,
        "run-b",
        "MALFORMED_ROW",
        "the row has fewer columns than the header (a ragged or cut row)",
        "focus",
        "/exports/bill.csv#row 9",
        None,
        None,
        None,
        None,
        None,
    ),
    (
        "public_cloud",
        OCTOBER,
        "run-b",
        "INVALID_AMOUNT",
        "EffectiveCost 1_000 is not a number",
        "focus",
        "/exports/bill.csv#row 12",
        None,
        None,
        None,
        Decimal("5.500000"),
        "EUR",
    ),
    # staged by a later run that has not published: not shown
    (
        "public_cloud",
        OCTOBER,
        "run-c",
        "MALFORMED_ROW",
        "the row holds a NUL byte",
        "focus",
        "/exports/other.csv#row 1",
        None,
        None,
        None,
        None,
        None,
    ),
    (
        "native",
        NOVEMBER,
        "run-a",
        "MALFORMED_RECORD",
        "name: missing (and no project.fullPath) (1 night(s))",
        "gitlab",
        "project 7",
        1,
        None,
        None,
        None,
        None,
    ),
]
PUBLISHED = {
    ("open_legacy", OCTOBER, "run-a"),
    ("public_cloud", OCTOBER, "run-b"),
    ("native", NOVEMBER, "run-a"),
}


def write_rejects(conn: psycopg.Connection) -> None:
    """The rejects above, each with its domain's load (published or not, as PUBLISHED says)."""
    loads = {(domain, month, run) for domain, month, run, *_ in REJECTS}
    for domain, month, run in sorted(loads):
        conn.execute(
            "INSERT INTO finops.domain_load (domain_id, period_month, run_id, releve_count, reject_count, "
            "total_cost, source_record_count, source_totals, published_at) "
            "VALUES (%s, %s, %s, 0, 0, 0, 0, '{}', CASE WHEN %s THEN now() END)",
            (domain, month, run, (domain, month, run) in PUBLISHED),
        )
    for domain, month, run, code, details, source, ref, records, quantity, unit, cost, currency in REJECTS:
        conn.execute(
            "INSERT INTO finops.releve_reject (domain_id, period_month, run_id, reason_code, reason, source, "
            "source_ref, source_record_count, usage_quantity, usage_unit, cost, currency, raw_payload) "
            'VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, \'{"secret": "payload"}\')',
            (domain, month, run, code, details, source, ref, records, quantity, unit, cost, currency),
        )
