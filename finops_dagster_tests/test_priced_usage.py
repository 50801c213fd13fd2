"""Metered usage that cannot be priced or attributed keeps its quantity: a reject with its unit and
quantity, or the unallocated application — never a quantity lost from the source totals."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal, localcontext

import psycopg

from finops_dagster.domains.native.usage_report import UsageReportService
from finops_dagster.domains.private_cloud.usage_api import UsageApi
from finops_dagster.http.client import HttpSource
from finops_dagster.http.settings import HttpSettings
from finops_dagster.priced_usage import PRECISION, MeteredUsage, PricedUsageFold
from finops_dagster.reference.catalog import Product, Rate
from finops_dagster.reference.snapshot import ReferenceSnapshot, read_snapshot
from finops_dagster.releve import UNALLOCATED_APPLICATION, quantize_money, quantize_quantity

MONTH = dt.date(2025, 10, 1)
NOW = dt.datetime(2025, 11, 1, tzinfo=dt.UTC)
SETTINGS = HttpSettings("demo", "http://127.0.0.1:1", 1, 0, 1, None, 5, 60)


def fold(mart: psycopg.Connection, domain: str) -> PricedUsageFold:
    return PricedUsageFold(
        mart,
        domain_id=domain,
        month=MONTH,
        run_id="run",
        snapshot=read_snapshot(mart, domain),
        computed_at=NOW,
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


ADVERSARIAL = [
    "0.0000005",
    "-0.0000005",
    "0.0000015",
    "-0.0000015",
    "0.0000025",
    "2.0000045",
    "2.0000055",
    "0.00000049999999999999999999",
    "0.00000050000000000000000001",
    "123456789012345678901.1234565",
    "123456789012345678901.1234575",
    "99999999999999999999.9999995",
    "1.23456789012345678901234567890123456789",
    "0.1",
    "7",
]
"""Half-unit ties on both parities and signs, near-ties, huge values, many decimals."""


def adversarial_values() -> list[Decimal]:
    rng = random.Random(20251101)
    values = [Decimal(text) for text in ADVERSARIAL]
    values += [Decimal(rng.randrange(-(10**30), 10**30)).scaleb(-rng.randrange(0, 24)) for _ in range(500)]
    values += [Decimal(rng.randrange(-(10**9), 10**9) * 10 + 5).scaleb(-7) for _ in range(200)]
    return values


def test_sql_rounding_is_pythons_half_even(mart: psycopg.Connection) -> None:
    values = adversarial_values()
    rows = mart.execute(
        "SELECT finops.round_half_even(v, 6) FROM unnest(%s::numeric[]) WITH ORDINALITY AS t(v, i) "
        "ORDER BY i",
        (values,),
    ).fetchall()
    with localcontext() as ctx:
        ctx.prec = PRECISION
        assert [row[0] for row in rows] == [quantize_money(value) for value in values]


def test_sql_average_is_pythons_quotient_rounded_half_even(mart: psycopg.Connection) -> None:
    values = adversarial_values()
    with localcontext() as ctx:
        ctx.prec = PRECISION
        for divisor in (1, 2, 3, 7, 28, 30, 31):
            rows = mart.execute(
                "SELECT finops.divide_half_even(v, %s, 6) "
                "FROM unnest(%s::numeric[]) WITH ORDINALITY AS t(v, i) ORDER BY i",
                (divisor, values),
            ).fetchall()
            assert [row[0] for row in rows] == [quantize_quantity(value / divisor) for value in values]


def test_fold_prices_to_the_cent_as_the_python_reference(mart: psycopg.Connection) -> None:
    """Quantities summed per application, rounded, priced at a rate with all six decimals used, and
    rounded again: the SQL path against Decimal arithmetic on the same measures."""
    rate = Decimal("0.123457")
    snapshot = ReferenceSnapshot(
        products={"P": Product("P", "F", "product", "unit")},
        family_domains={"F": "native"},
        rates={"P": (Rate("P", dt.date(2024, 1, 1), None, rate, "EUR", "RC-TEST"),)},
        rules=(),
        applications=frozenset({f"APP-{i}" for i in range(40)}),
    )
    rng = random.Random(7)
    measures: dict[str, list[Decimal]] = {}
    folded = PricedUsageFold(
        mart,
        domain_id="native",
        month=MONTH,
        run_id="run",
        snapshot=snapshot,
        computed_at=dt.datetime.now(dt.UTC),
    )
    for i in range(40):
        application = f"APP-{i}"
        for _ in range(rng.randrange(1, 30)):
            quantity = rng.choice(
                [
                    Decimal(rng.randrange(0, 10**12)).scaleb(-rng.randrange(0, 20)),
                    Decimal(rng.randrange(0, 10**6) * 10 + 5).scaleb(-7),
                    Decimal(rng.randrange(0, 10**20)).scaleb(-7),
                ]
            )
            measures.setdefault(application, []).append(quantity)
            folded.add(MeteredUsage("svc", application.lower(), "P", quantity, application=application))
    load = folded.finish()
    with localcontext() as ctx:
        ctx.prec = PRECISION
        expected = {}
        for application, quantities in measures.items():
            quantity = quantize_quantity(sum(quantities, Decimal(0)))
            expected[application] = (quantity, quantize_money(quantity * rate), len(quantities))
    assert {
        r.application_id: (r.usage_quantity, r.total_cost, r.source_record_count) for r in load.releves
    } == (expected)
    assert [r.application_id for r in load.releves] == sorted(expected)
