"""The allocation engine on random months and rules: nothing created or lost per currency, nothing
negative where the source was positive, every allocated amount traced to its rule and source; and each
method on a month small enough to check by hand."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from finops_dagster.allocation.engine import CostLine, allocate_month
from finops_dagster.allocation.rules import AllocationRule, Method, TargetKind

MONTH = dt.date(2026, 11, 1)
APPS = ["APP_A", "APP_B", "APP_C", "APP_D", "PLATFORM", "UNALLOCATED"]
PRODUCTS = {
    "PC_VCPU": ("PC_COMPUTE", "private_cloud"),
    "PC_RAM": ("PC_COMPUTE", "private_cloud"),
    "GL_RUNNER": ("NA_CI", "native"),
}
GROUPS = {"APP_A": "G1", "APP_B": "G1", "APP_C": "G2", "APP_D": "G2", "PLATFORM": "G2"}


def rule(
    rule_id: str,
    source: str,
    kind: TargetKind,
    targets: tuple[str, ...],
    method: Method,
    *,
    sequence: int = 10,
    percentages: tuple[tuple[str, Decimal], ...] = (),
    basis: str | None = None,
    source_family: str | None = None,
) -> AllocationRule:
    return AllocationRule(
        rule_id=rule_id,
        version="v1",
        sequence=sequence,
        valid_from=dt.date(2026, 1, 1),
        valid_to=None,
        source_application=source,
        source_domain=None,
        source_family=source_family,
        source_product=None,
        target_kind=kind,
        targets=targets,
        method=method,
        percentages=percentages,
        basis_product=basis,
    )


def line(app: str, product: str, amount: str, quantity: str = "0", currency: str = "EUR") -> CostLine:
    family, domain = PRODUCTS[product]
    return CostLine(app, product, family, domain, currency, Decimal(amount), Decimal(quantity))


lines_strategy = st.lists(
    st.builds(
        line,
        st.sampled_from(APPS),
        st.sampled_from(list(PRODUCTS)),
        st.decimals(min_value=Decimal("-500"), max_value=Decimal("1e7"), places=6, allow_nan=False).map(str),
        st.decimals(min_value=0, max_value=Decimal("1e4"), places=3, allow_nan=False).map(str),
        st.sampled_from(["EUR", "USD"]),
    ),
    max_size=30,
)


@st.composite
def rules_strategy(draw: st.DrawFn) -> list[AllocationRule]:
    rules = []
    for index in range(draw(st.integers(min_value=0, max_value=5))):
        source = draw(st.sampled_from(APPS))
        method = draw(st.sampled_from(list(Method)))
        others = [app for app in APPS if app not in (source, "UNALLOCATED")]
        if method is Method.FIXED:
            chosen = draw(st.lists(st.sampled_from(others), min_size=1, max_size=3, unique=True))
            cuts = sorted(
                draw(
                    st.lists(
                        st.integers(1, 99), min_size=len(chosen) - 1, max_size=len(chosen) - 1, unique=True
                    )
                )
            )
            bounds = [0, *cuts, 100]
            shares = tuple((app, Decimal(bounds[i + 1] - bounds[i])) for i, app in enumerate(chosen))
            rules.append(
                rule(
                    f"R{index}",
                    source,
                    TargetKind.APPLICATIONS,
                    tuple(chosen),
                    method,
                    sequence=index,
                    percentages=shares,
                )
            )
            continue
        kind = draw(st.sampled_from(list(TargetKind)))
        targets = {
            TargetKind.APPLICATIONS: tuple(
                draw(st.lists(st.sampled_from(others), min_size=1, max_size=3, unique=True))
            ),
            TargetKind.GROUP: (draw(st.sampled_from(["G1", "G2", "G3"])),),
            TargetKind.DOMAIN: (draw(st.sampled_from(["private_cloud", "native"])),),
            TargetKind.FAMILY: (draw(st.sampled_from(["PC_COMPUTE", "NA_CI"])),),
        }[kind]
        basis = draw(st.sampled_from(list(PRODUCTS))) if method is Method.QUANTITY else None
        rules.append(rule(f"R{index}", source, kind, targets, method, sequence=index, basis=basis))
    return rules


def totals(lines: list[CostLine]) -> dict[str, Decimal]:
    found: dict[str, Decimal] = defaultdict(Decimal)
    for item in lines:
        found[item.currency] += item.amount
    return {currency: amount for currency, amount in found.items() if amount != 0}


@settings(max_examples=300, deadline=None)
@given(lines_strategy, rules_strategy())
def test_allocation_creates_and_loses_nothing_per_currency(
    lines: list[CostLine], rules: list[AllocationRule]
) -> None:
    result = allocate_month(lines, rules, GROUPS)
    assert totals(result.lines) == totals(lines)
    for move in result.moves:
        assert move.source_application == move.rule.source_application
        assert move.target_application not in (move.source_application, "UNALLOCATED")


@settings(max_examples=300, deadline=None)
@given(lines_strategy, rules_strategy())
def test_the_moves_explain_every_difference_from_the_direct_cost(
    lines: list[CostLine], rules: list[AllocationRule]
) -> None:
    result = allocate_month(lines, rules, GROUPS)
    expected: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for item in lines:
        expected[(item.application_id, item.product_id, item.currency)] += item.amount
    for move in result.moves:
        expected[(move.source_application, move.product_id, move.currency)] -= move.amount
        expected[(move.target_application, move.product_id, move.currency)] += move.amount
    allocated = {(item.application_id, item.product_id, item.currency): item.amount for item in result.lines}
    assert allocated == {key: amount for key, amount in expected.items() if amount != 0}


@settings(max_examples=300, deadline=None)
@given(lines_strategy.map(lambda found: [item for item in found if item.amount >= 0]), rules_strategy())
def test_positive_costs_stay_positive(lines: list[CostLine], rules: list[AllocationRule]) -> None:
    result = allocate_month(lines, rules, GROUPS)
    assert all(move.amount > 0 for move in result.moves)
    assert all(item.amount > 0 for item in result.lines)


def test_each_method_on_a_month_checked_by_hand() -> None:
    lines = [
        line("PLATFORM", "PC_VCPU", "100.00"),
        line("APP_A", "PC_VCPU", "300.00", quantity="3"),
        line("APP_B", "PC_VCPU", "100.00", quantity="1"),
        line("APP_C", "GL_RUNNER", "50.00", quantity="10"),
    ]
    cases = {
        Method.EVEN: {"APP_A": Decimal("50.000000"), "APP_B": Decimal("50.000000")},
        Method.PROPORTIONAL: {"APP_A": Decimal("75.000000"), "APP_B": Decimal("25.000000")},
        Method.QUANTITY: {"APP_A": Decimal("75.000000"), "APP_B": Decimal("25.000000")},
    }
    for method, expected in cases.items():
        basis = "PC_VCPU" if method is Method.QUANTITY else None
        chosen = rule("SHARE", "PLATFORM", TargetKind.GROUP, ("G1",), method, basis=basis)
        result = allocate_month(lines, [chosen], GROUPS)
        assert {move.target_application: move.amount for move in result.moves} == expected, method
    fixed = rule(
        "FIXED",
        "PLATFORM",
        TargetKind.APPLICATIONS,
        ("APP_A", "APP_C"),
        Method.FIXED,
        percentages=(("APP_A", Decimal(60)), ("APP_C", Decimal(40))),
    )
    moves = allocate_month(lines, [fixed], GROUPS).moves
    assert {(m.target_application, m.product_id, m.amount) for m in moves} == {
        ("APP_A", "PC_VCPU", Decimal("60.000000")),
        ("APP_C", "PC_VCPU", Decimal("40.000000")),
    }


def test_rules_apply_in_order_each_on_what_the_previous_left() -> None:
    lines = [
        line("UNALLOCATED", "PC_VCPU", "90"),
        line("APP_A", "PC_VCPU", "10"),
        line("APP_C", "PC_VCPU", "10"),
    ]
    first = rule("FIRST", "UNALLOCATED", TargetKind.APPLICATIONS, ("PLATFORM",), Method.EVEN, sequence=1)
    second = rule("SECOND", "PLATFORM", TargetKind.DOMAIN, ("private_cloud",), Method.EVEN, sequence=2)
    result = allocate_month(lines, [first, second], GROUPS)
    assert [(m.rule.rule_id, m.target_application, m.amount) for m in result.moves] == [
        ("FIRST", "PLATFORM", Decimal("90.000000")),
        ("SECOND", "APP_A", Decimal("45.000000")),
        ("SECOND", "APP_C", Decimal("45.000000")),
    ]


def test_a_rule_without_weights_moves_nothing_and_says_why() -> None:
    lines = [line("PLATFORM", "PC_VCPU", "100"), line("APP_A", "GL_RUNNER", "5", quantity="0")]
    by_quantity = rule(
        "Q", "PLATFORM", TargetKind.APPLICATIONS, ("APP_A",), Method.QUANTITY, basis="GL_RUNNER"
    )
    empty_group = rule("G", "PLATFORM", TargetKind.GROUP, ("G3",), Method.EVEN)
    result = allocate_month(lines, [by_quantity, empty_group], GROUPS)
    assert result.moves == []
    assert [skipped.reason for skipped in result.skipped] == [
        "the targets have no quantity of GL_RUNNER in EUR",
        "no target application for group G3",
    ]
    assert totals(result.lines) == {"EUR": Decimal("105")}


def test_a_family_narrowed_rule_leaves_the_sources_other_costs() -> None:
    lines = [
        line("PLATFORM", "PC_VCPU", "100"),
        line("PLATFORM", "GL_RUNNER", "40"),
        line("APP_A", "PC_VCPU", "1"),
    ]
    narrowed = rule("N", "PLATFORM", TargetKind.APPLICATIONS, ("APP_A",), Method.EVEN, source_family="NA_CI")
    result = allocate_month(lines, [narrowed], GROUPS)
    remaining = {(item.application_id, item.product_id): item.amount for item in result.lines}
    assert remaining == {
        ("PLATFORM", "PC_VCPU"): Decimal("100"),
        ("APP_A", "GL_RUNNER"): Decimal("40.000000"),
        ("APP_A", "PC_VCPU"): Decimal("1"),
    }
