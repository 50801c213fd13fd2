"""Test helpers: staging a month of relevés, and the mart's allocation rules, as the pipeline would."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import psycopg

from finops_dagster.allocation.rules import COLUMNS
from finops_dagster.mart.allocation import store_rules
from finops_dagster.mart.staging import stage_domain_load
from finops_dagster.releve import DomainLoad, Releve

DOMAIN = "open_legacy"
COMPUTED_AT = dt.datetime(2025, 5, 2, 2, 0, tzinfo=dt.UTC)
PRODUCTS = {"OL_VCPU": ("OL_COMPUTE", "vCPU-month"), "OL_RAM_GB": ("OL_COMPUTE", "GB-month")}


def releve(month: dt.date, run_id: str, application: str, product: str, cost: str) -> Releve:
    family, unit = PRODUCTS[product]
    return Releve(
        period_month=month,
        application_id=application,
        product_id=product,
        family_id=family,
        domain_id=DOMAIN,
        usage_quantity=Decimal(cost) / 10,
        usage_unit=unit,
        unit_cost=Decimal("10"),
        total_cost=Decimal(cost),
        currency="EUR",
        source="cmdb",
        run_id=run_id,
        rate_card_version="test-v1",
        source_record_count=1,
        computed_at=COMPUTED_AT,
    )


def stage(conn: psycopg.Connection, month: dt.date, run_id: str, costs: dict[tuple[str, str], str]) -> None:
    """One open_legacy domain-month: a relevé per (application, product), 10 EUR per unit."""
    releves = [releve(month, run_id, app, product, cost) for (app, product), cost in costs.items()]
    totals: dict[str, Decimal] = {}
    for item in releves:
        totals[item.usage_unit] = totals.get(item.usage_unit, Decimal(0)) + item.usage_quantity
    stage_domain_load(conn, DomainLoad(DOMAIN, month, releves, [], totals, len(releves)), run_id)


def add_applications(conn: psycopg.Connection, groups: dict[str, str]) -> None:
    for group in sorted(set(groups.values())):
        conn.execute(
            "INSERT INTO finops.dim_application_group (group_id, label) VALUES (%s, %s) "
            "ON CONFLICT DO NOTHING",
            (group, group),
        )
    for application, group in groups.items():
        conn.execute(
            "INSERT INTO finops.dim_application (application_id, label, group_id, source) "
            "VALUES (%s, %s, %s, 'test') "
            "ON CONFLICT (application_id) DO UPDATE SET group_id = EXCLUDED.group_id",
            (application, application, group),
        )


def set_rules(conn: psycopg.Connection, *lines: str) -> None:
    """The mart's rules, given as rows of the rule file (without its header)."""
    rows = [
        (number, dict(zip(COLUMNS, text.split(","), strict=True))) for number, text in enumerate(lines, 2)
    ]
    with conn.transaction():
        store_rules(conn, rows)
