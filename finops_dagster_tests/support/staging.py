"""Staging a domain-month of hand-priced relevés, as a domain run would, for the publish tests.

The publish and aggregate tests both start from staged loads; building them one way keeps their
figures comparable.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import psycopg

from finops_dagster.mart.staging import stage_domain_load
from finops_dagster.releve import DomainLoad, Releve

DOMAIN = "open_legacy"
COMPUTED_AT = dt.datetime(2025, 5, 2, 2, 0, tzinfo=dt.UTC)


def make_load(month: dt.date, run_id: str, costs: dict[str, str]) -> DomainLoad:
    """One domain-month: one vCPU relevé per application, priced 10 EUR per vCPU-month."""
    releves = [
        Releve(
            period_month=month,
            application_id=application,
            product_id="OL_VCPU",
            family_id="OL_COMPUTE",
            domain_id=DOMAIN,
            usage_quantity=Decimal(cost) / 10,
            usage_unit="vCPU-month",
            unit_cost=Decimal("10"),
            total_cost=Decimal(cost),
            currency="EUR",
            source="cmdb",
            run_id=run_id,
            rate_card_version="test-v1",
            source_record_count=3,
            computed_at=COMPUTED_AT,
        )
        for application, cost in costs.items()
    ]
    quantity = sum((releve.usage_quantity for releve in releves), Decimal(0))
    return DomainLoad(DOMAIN, month, releves, [], {"vCPU-month": quantity}, 3 * len(releves))


def stage(conn: psycopg.Connection, month: dt.date, run_id: str, costs: dict[str, str]) -> None:
    stage_domain_load(conn, make_load(month, run_id, costs), run_id)
