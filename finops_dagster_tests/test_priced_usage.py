"""Metered usage that cannot be priced or attributed keeps its quantity: a reject with its unit and
quantity, or the unallocated application — never a quantity lost from the source totals."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import psycopg

from finops_dagster.domains.native.usage_report import UsageReportService
from finops_dagster.domains.private_cloud.usage_api import UsageApi
from finops_dagster.http.client import HttpSource
from finops_dagster.http.settings import HttpSettings
from finops_dagster.priced_usage import MeteredUsage, PricedUsageFold
from finops_dagster.reference.snapshot import read_snapshot
from finops_dagster.releve import UNALLOCATED_APPLICATION

MONTH = dt.date(2025, 10, 1)
SETTINGS = HttpSettings("demo", "http://127.0.0.1:1", 1, 0, 1, None, 5, 60)


def fold(mart: psycopg.Connection, domain: str) -> PricedUsageFold:
    return PricedUsageFold(
        mart,
        domain_id=domain,
        month=MONTH,
        run_id="run",
        snapshot=read_snapshot(mart, domain),
        computed_at=dt.datetime(2025, 11, 1, tzinfo=dt.UTC),
    )


def test_usage_api_item_without_tenant_or_application_is_unallocated(mart: psycopg.Connection) -> None:
    api = UsageApi(HttpSource(SETTINGS), page_size=10)
    metered = api._meter(0, {"metric": "vcpu_hours", "unit": "vCPU-hour", "quantity": "1200"})
    assert isinstance(metered, MeteredUsage)
    folded = fold(mart, "private_cloud")
    folded.add(metered)
    load = folded.finish()
    assert [(r.application_id, r.usage_quantity) for r in load.releves] == [
        (UNALLOCATED_APPLICATION, Decimal("1200.000000"))
    ]
    assert load.source_totals == {"vCPU-hour": Decimal("1200.000000")}


def test_usage_report_unknown_product_is_a_reject_carrying_quantity_and_unit(
    mart: psycopg.Connection,
) -> None:
    service = UsageReportService(
        "cube", HttpSource(SETTINGS), 10, {("cube_query_hours", "hour"): "NT_CUBE_QUERY_HOURS"}
    )
    reading = service._reading(
        0, {"consumer": "pay-team", "product": "cube_gpu_hours", "unit": "GPU-hour", "quantity": "7.5"}
    )
    folded = fold(mart, "native")
    folded.add(
        MeteredUsage(
            "cube",
            reading.consumer,
            reading.product_id,
            reading.quantity,  # type: ignore[union-attr]
            fields=reading.attributes,
        )
    )  # type: ignore[union-attr]
    load = folded.finish()
    assert load.releves == []
    assert [(r.usage_unit, r.usage_quantity) for r in load.rejects] == [("GPU-hour", Decimal("7.500000"))]
    assert "unknown product cube_gpu_hours" in load.rejects[0].reason
    assert load.source_totals == {"GPU-hour": Decimal("7.500000")}
