"""The public-cloud fold's arithmetic, which runs in DuckDB: every figure checked against Python's
own Decimal, computed here with more precision than the mart keeps and rounded half to even."""

from __future__ import annotations

import datetime as dt
import random
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

import pytest

from finops_dagster.domains.public_cloud.charges import ChargeGroup
from finops_dagster.domains.public_cloud.fold import LINE_ITEMS_UNIT, ChargeFold, FoldError, FoldSettings
from finops_dagster.reference.catalog import Product
from finops_dagster.reference.snapshot import ReferenceSnapshot
from finops_dagster.releve import Releve, ReleveBatch

MONTH = dt.date(2026, 10, 1)
NOW = dt.datetime(2026, 11, 2, 3, 4, 5, tzinfo=dt.UTC)
MICRO = Decimal("0.000001")


def fold(
    rates: dict[str, Decimal] | None = None,
    *,
    product_by_sku: bool = False,
    known_products: dict[str, Product] | None = None,
) -> ChargeFold:
    snapshot = ReferenceSnapshot(
        products=known_products or {},
        family_domains={},
        rates={},
        rules=(),
        applications=frozenset({"PAY", "HR"}),
    )
    return ChargeFold(
        month=MONTH,
        run_id="run-1",
        computed_at=NOW,
        snapshot=snapshot,
        exchange_rates=rates if rates is not None else {"USD": Decimal("0.5")},
        settings=FoldSettings(("app-id",), "EUR", product_by_sku, {"Compute": "PUB_COMPUTE"}),
    )


def group(
    cost: str,
    *,
    application: str = "PAY",
    currency: str = "USD",
    service: str | None = "EC2",
    category: str | None = "Compute",
    charge: str = "Usage",
    quantity: str | None = "1",
    unit: str | None = "Hours",
    sku: str | None = None,
    line_items: int = 1,
) -> ChargeGroup:
    return ChargeGroup(
        source="focus",
        provider="AWS",
        service_name=service,
        service_category=category,
        charge_category=charge,
        billing_currency=currency,
        cost=Decimal(cost),
        line_items=line_items,
        sku_id=sku,
        pricing_quantity=None if quantity is None else Decimal(quantity),
        pricing_unit=unit,
        application=application,
    )


def releves_of(*groups: ChargeGroup, charge_fold: ChargeFold | None = None) -> list[Releve]:
    charge_fold = charge_fold or fold()
    for one in groups:
        charge_fold.add(one)
    load = charge_fold.finish({})
    assert isinstance(load.releves, ReleveBatch)
    return sorted(load.releves, key=lambda r: (r.application_id, r.product_id, r.source))


def half_even(value: Decimal) -> Decimal:
    return value.quantize(MICRO, rounding=ROUND_HALF_EVEN)


@pytest.mark.parametrize(
    ("billed", "total"),
    [
        ("0.000001", "0.000000"),  # 0.0000005: the tie goes to the even micro-unit, 0
        ("0.000003", "0.000002"),  # 0.0000015 → 2
        ("-0.000003", "-0.000002"),  # a credit rounds the same way
        ("0.000005", "0.000002"),  # 0.0000025 → 2
        ("12345678.123456789", "6172839.061728"),
        ("0.000002999999999999", "0.000001"),  # 0.0000014999999999995: rounded once, from every decimal
        ("1999999999.999999999", "1000000000.000000"),
    ],
)
def test_conversion_rounds_half_to_even(billed: str, total: str) -> None:
    (releve,) = releves_of(group(billed))

    assert releve.total_cost == Decimal(total)
    assert releve.billed_cost == half_even(Decimal(billed))
    assert (releve.billed_currency, releve.currency, releve.source) == ("USD", "EUR", "focus:USD")


@pytest.mark.parametrize(
    ("cost", "quantity", "unit_cost"),
    [
        ("0.000002", "4", "0.000000"),  # 0.0000005 → 0
        ("0.000006", "4", "0.000002"),  # 0.0000015 → 2
        ("-0.000006", "4", "-0.000002"),
        ("0.000006", "-4", "-0.000002"),
        ("10", "3", "3.333333"),
        ("20", "3", "6.666667"),
        ("5", "0", "0"),
    ],
)
def test_unit_cost_is_total_over_quantity_rounded_half_to_even(
    cost: str, quantity: str, unit_cost: str
) -> None:
    (releve,) = releves_of(group(cost, currency="EUR", quantity=quantity))

    assert releve.total_cost == Decimal(cost)
    assert releve.usage_quantity == Decimal(quantity)
    assert releve.unit_cost == Decimal(unit_cost)
    assert releve.billed_cost is None and releve.billed_currency is None and releve.source == "focus"


@pytest.mark.parametrize(
    ("cost", "total"),
    [
        ("1.0000014999999999", "1.000001"),
        ("0.000001499999999999", "0.000001"),
        ("0.000000500000000001", "0.000001"),
        ("0.0000005", "0.000000"),
    ],
)
def test_an_amount_in_the_reporting_currency_is_rounded_once(cost: str, total: str) -> None:
    (releve,) = releves_of(group(cost, currency="EUR"))

    assert releve.total_cost == Decimal(total)


def test_random_charges_match_python_decimal() -> None:
    """Hundreds of relevés of random amounts, rates and quantities, each checked exactly."""
    generator = random.Random(20261002)
    rate = Decimal("0.8614236771")
    groups = []
    for index in range(600):
        amount = Decimal(generator.randint(-(10**9), 10**9)).scaleb(-generator.randint(0, 12))
        quantity = Decimal(generator.randint(0, 10**9)).scaleb(-generator.randint(0, 6))
        groups.append(
            group(
                str(amount),
                application=f"APP{index}",
                currency=generator.choice(["USD", "EUR"]),
                quantity=str(quantity),
            )
        )
    charge_fold = fold({"USD": rate})
    by_application = {r.application_id: r for r in releves_of(*groups, charge_fold=charge_fold)}

    with localcontext() as exact:
        exact.prec = 80
        for one in groups:
            releve = by_application[one.application or ""]
            total = half_even(one.cost * (rate if one.billing_currency == "USD" else 1))
            quantity = half_even(one.pricing_quantity or Decimal(0))
            assert releve.total_cost == total, one
            assert releve.usage_quantity == quantity, one
            assert releve.unit_cost == (half_even(total / quantity) if quantity else 0), one


def test_a_quantity_is_kept_only_when_every_line_item_has_one() -> None:
    """However the charges were grouped before the fold, one line item without a quantity makes the
    relevé count line items."""
    releves = releves_of(
        group("1", quantity="5", line_items=1),
        group("1", quantity=None, line_items=1),
        group("2", application="HR", quantity="5", line_items=2),
    )

    hr, pay = releves
    assert (pay.usage_quantity, pay.usage_unit) == (Decimal(2), LINE_ITEMS_UNIT)
    assert (hr.usage_quantity, hr.usage_unit) == (Decimal(5), "Hours")


def test_a_relevé_sums_its_charges_and_keeps_a_quantity_only_in_one_unit() -> None:
    releves = releves_of(
        group("1.5", quantity="2", line_items=3),
        group("2.5", quantity="5", line_items=4),
        group("1", application="HR", quantity="2", unit="Hours"),
        group("1", application="HR", quantity="7", unit="GB-Months", line_items=5),
        group("4", application="UNALLOCATED", quantity=None, line_items=2),
    )

    hr, pay, unallocated = releves
    assert (pay.total_cost, pay.usage_quantity, pay.usage_unit, pay.source_record_count) == (
        Decimal("2.000000"),
        Decimal("7.000000"),
        "Hours",
        7,
    )
    assert (hr.usage_quantity, hr.usage_unit, hr.source_record_count) == (Decimal(6), LINE_ITEMS_UNIT, 6)
    assert (unallocated.usage_quantity, unallocated.usage_unit) == (Decimal(2), LINE_ITEMS_UNIT)
    assert all(r.period_month == MONTH and r.run_id == "run-1" and r.computed_at == NOW for r in releves)


def test_products_and_their_families() -> None:
    known = {"AWS:Support": Product("AWS:Support", "PUB_MANAGEMENT", "AWS Support", "line items")}
    charge_fold = fold(product_by_sku=True, known_products=known)
    releves = releves_of(
        group("1", service="EC2", sku="m5.large"),
        group("1", service=None, category=None, charge="Tax"),
        group("1", service="Support", category=None),
        group("1", service="Lambda", category="Serverless"),
        charge_fold=charge_fold,
    )

    assert {r.product_id: r.family_id for r in releves} == {
        "AWS:EC2:m5.large": "PUB_COMPUTE",
        "AWS:Tax": "PUB_OTHER",
        "AWS:Support": "PUB_MANAGEMENT",
        "AWS:Lambda": "PUB_OTHER",
    }
    assert charge_fold.products["AWS:EC2:m5.large"].label == "AWS EC2 (m5.large)"
    assert charge_fold.products["AWS:EC2:m5.large"].usage_unit == "Hours"


def test_an_amount_too_large_to_convert_exactly_fails_saying_so() -> None:
    charge_fold = fold()
    charge_fold.add(group("30000000000"))

    with pytest.raises(FoldError, match=r"2026-10: a relevé is beyond .* converted total up to 10\^10 EUR"):
        charge_fold.finish({})


def test_a_currency_without_rate_becomes_a_reject_not_a_relevé() -> None:
    charge_fold = fold({})
    charge_fold.add(group("12.5", currency="CHF"))
    charge_fold.add(group("3", currency="EUR"))

    load = charge_fold.finish({})

    assert [(r.currency, r.total_cost) for r in load.releves] == [("EUR", Decimal("3.000000"))]
    (reject,) = load.rejects
    assert (reject.cost, reject.currency, reject.source) == (Decimal("12.500000"), "CHF", "focus")
    assert reject.reason == "no exchange rate CHF→EUR for 2026-10 (reference/data/exchange_rates.csv)"
    assert load.source_costs == {"CHF": Decimal("12.5"), "EUR": Decimal("3")}
    assert load.total_cost == Decimal(3)
