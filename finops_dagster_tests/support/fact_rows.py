"""Published relevés written straight into `finops.fact_releve`, for checks and rebuilds that read the mart.

The volume and view checks and the aggregate rebuild only read published facts, so their tests
write them directly rather than running a domain.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import psycopg

from finops_dagster.mart.month_partitions import ensure_month_partitions

DOMAIN = "open_legacy"


def insert_fact(
    conn: psycopg.Connection,
    month: dt.date,
    rows: int,
    total: str,
    *,
    domain: str = DOMAIN,
    application: str = "APP-A",
    currency: str = "EUR",
) -> None:
    """`rows` relevés of one application (one product each) adding up to `total`."""
    ensure_month_partitions(conn, [month])
    each = Decimal(total) / rows
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO finops.fact_releve (period_month, application_id, product_id, family_id, domain_id, "
            "usage_quantity, usage_unit, unit_cost, total_cost, currency, source, run_id, rate_card_version, "
            "source_record_count, computed_at) "
            "VALUES (%s, %s, %s, 'FAM', %s, 1, 'unit', %s, %s, %s, 'test', 'history', NULL, 1, now())",
            [
                (month, application, f"P{index:03d}-{domain}", domain, each, each, currency)
                for index in range(rows)
            ],
        )


def allocate_nothing(conn: psycopg.Connection) -> None:
    """The allocated view of every fact written so far, with no rule applied (each line its direct
    cost), as migration 017 gives the months published before it."""
    conn.execute(
        "INSERT INTO finops.fact_releve_allocated "
        "SELECT period_month, application_id, product_id, family_id, domain_id, min(usage_unit), currency, "
        "sum(usage_quantity), sum(total_cost), 0, 0, sum(total_cost), max(run_id) "
        "FROM finops.fact_releve "
        "GROUP BY period_month, application_id, product_id, family_id, domain_id, currency"
    )
