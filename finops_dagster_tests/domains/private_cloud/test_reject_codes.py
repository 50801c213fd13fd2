"""Every kind of private_cloud reject gets its stable reason code, priced in the real mart.

Nova entries (the parser tests' bad entries), an usage-API item of an unknown metric and measures
the catalog or the month's rate card cannot price go through the domain's own fold into a month's
load; each reject's code is the cause, its details the entry's own words.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import psycopg

from finops_dagster.domains.private_cloud.assets import _fold_items
from finops_dagster.domains.private_cloud.openstack_payloads import parse_tenant_usages
from finops_dagster.domains.private_cloud.usage_api import UnmappedQuantity
from finops_dagster.priced_usage import MeteredUsage, PricedUsageFold
from finops_dagster.reference.snapshot import read_snapshot
from finops_dagster.reject_reasons import RejectReason as R
from finops_dagster.releve import DomainLoad
from finops_dagster_tests.support.openstack_usages import tenant_entry

NOW = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)


def load_of(mart: psycopg.Connection, month: dt.date, items: list[Any]) -> DomainLoad:
    fold = PricedUsageFold(
        mart,
        domain_id="private_cloud",
        month=month,
        run_id="run-1",
        snapshot=read_snapshot(mart, "private_cloud"),
        computed_at=NOW,
    )
    _fold_items(fold, "openstack", items)
    return fold.finish()


def test_each_kind_of_private_cloud_reject_has_its_code(mart: psycopg.Connection) -> None:
    _, problems = parse_tenant_usages(
        {
            "tenant_usages": [
                tenant_entry("negative", total_vcpus_usage=-1.0),
                tenant_entry("two-negatives", total_vcpus_usage=-1.0, total_hours=-2),
                tenant_entry("text", total_memory_mb_usage="abc"),
                tenant_entry("many", total_vcpus_usage=-2, total_memory_mb_usage="abc"),
                tenant_entry("bad-start", start="yesterday"),
            ]
        }
    )
    unmapped = UnmappedQuantity(
        "t / gpu (item 0)", "unknown metric 'gpu' in unit 'hour'", "hour", Decimal(3), {}
    )
    unknown = MeteredUsage("openstack", "tenant-x", "NOT_A_PRODUCT", Decimal(5), fields={"unit": "hour"})
    load = load_of(mart, dt.date(2026, 10, 1), [*problems, unmapped, unknown])
    assert [(reject.source_ref, reject.reason_code, reject.reason) for reject in load.rejects] == [
        ("negative", R.NEGATIVE_QUANTITY, "total_vcpus_usage: negative (-1.0)"),
        (
            "two-negatives",
            R.NEGATIVE_QUANTITY,
            "total_vcpus_usage: negative (-1.0); total_hours: negative (-2)",
        ),
        ("text", R.MALFORMED_RECORD, "total_memory_mb_usage: not a number ('abc')"),
        (
            "many",
            R.MALFORMED_RECORD,
            "total_vcpus_usage: negative (-2); total_memory_mb_usage: not a number ('abc')",
        ),
        ("bad-start", R.MALFORMED_RECORD, "start: not an ISO 8601 timestamp ('yesterday')"),
        ("t / gpu (item 0)", R.UNKNOWN_PRODUCT, "unknown metric 'gpu' in unit 'hour'"),
        (
            "tenant-x",
            R.UNKNOWN_PRODUCT,
            "unknown product NOT_A_PRODUCT (5 hour): not in the product catalog or the source's "
            "product mapping",
        ),
    ]


def test_a_month_before_any_rate_card_rejects_with_no_rate(mart: psycopg.Connection) -> None:
    usage = MeteredUsage("openstack", "tenant-x", "PC_VCPU_HOUR", Decimal(10))
    load = load_of(mart, dt.date(2023, 12, 1), [usage])
    assert [(reject.reason_code, reject.reason) for reject in load.rejects] == [
        (R.NO_RATE, "no rate card for PC_VCPU_HOUR valid in 2023-12"),
    ]
    assert load.releves == []
