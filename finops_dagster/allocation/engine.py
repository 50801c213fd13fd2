"""Applying a month's allocation rules to its direct relevés.

The engine keeps the month's cost per application × product × currency, starting from the direct
relevés. Each rule, in order, takes the cost its source holds in its scope and splits it exactly among
its targets (`split.split_exactly`), each part keeping the product (so family and domain views stay
true) and leaving a `Move` that says where it came from. A rule that finds no target, or targets whose
weights are all zero, moves nothing and says why: the cost stays where it was, never lost.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from finops_dagster.allocation.rules import AllocationRule, Method, TargetKind
from finops_dagster.allocation.split import split_exactly
from finops_dagster.releve import UNALLOCATED_APPLICATION

ZERO = Decimal(0)


@dataclass(frozen=True)
class CostLine:
    """One application's cost of one product in one currency (a direct relevé, or its allocated state)."""

    application_id: str
    product_id: str
    family_id: str
    domain_id: str
    currency: str
    amount: Decimal
    quantity: Decimal = ZERO


@dataclass(frozen=True)
class Move:
    """A part of a source's cost given to a target by a rule."""

    rule: AllocationRule
    source_application: str
    target_application: str
    product_id: str
    family_id: str
    domain_id: str
    currency: str
    amount: Decimal


@dataclass(frozen=True)
class Skipped:
    """A rule that moved nothing, and why."""

    rule: AllocationRule
    reason: str


@dataclass
class MonthAllocation:
    moves: list[Move] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    lines: list[CostLine] = field(default_factory=list)


@dataclass(frozen=True)
class _Product:
    family_id: str
    domain_id: str


Key = tuple[str, str, str]  # application, product, currency


class _State:
    """The month's cost as the rules applied so far left it, with each application's keys indexed so
    that weighing a target reads its own lines, not the month's."""

    def __init__(self, lines: Iterable[CostLine]) -> None:
        self.amount: dict[Key, Decimal] = {}
        self.keys_of: dict[str, list[Key]] = defaultdict(list)
        self.quantity: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        self.products: dict[str, _Product] = {}
        for line in lines:
            self.add((line.application_id, line.product_id, line.currency), line.amount)
            self.quantity[(line.application_id, line.product_id)] += line.quantity
            self.products[line.product_id] = _Product(line.family_id, line.domain_id)

    def add(self, key: Key, amount: Decimal) -> None:
        if key not in self.amount:
            self.amount[key] = ZERO
            self.keys_of[key[0]].append(key)
        self.amount[key] += amount

    def in_scope(self, rule: AllocationRule, product_id: str) -> bool:
        product = self.products[product_id]
        return (
            (rule.source_domain is None or product.domain_id == rule.source_domain)
            and (rule.source_family is None or product.family_id == rule.source_family)
            and (rule.source_product is None or product_id == rule.source_product)
        )

    def has_cost_in(self, application: str, kind: TargetKind, value: str) -> bool:
        return any(
            self.amount[key] > 0
            and value
            == (
                self.products[key[1]].domain_id
                if kind is TargetKind.DOMAIN
                else self.products[key[1]].family_id
            )
            for key in self.keys_of.get(application, ())
        )

    def line(self, key: Key, amount: Decimal) -> CostLine:
        application, product_id, currency = key
        product = self.products[product_id]
        return CostLine(application, product_id, product.family_id, product.domain_id, currency, amount)


def allocate_month(
    lines: Sequence[CostLine], rules: Sequence[AllocationRule], groups: Mapping[str, str]
) -> MonthAllocation:
    """The month's moves and allocated cost; `rules` are the month's, in order; `groups` maps each
    application to its group."""
    state = _State(lines)
    result = MonthAllocation()
    for rule in rules:
        _apply(rule, state, groups, result)
    result.lines = [state.line(key, amount) for key, amount in sorted(state.amount.items()) if amount != 0]
    return result


def _apply(rule: AllocationRule, state: _State, groups: Mapping[str, str], result: MonthAllocation) -> None:
    sources = sorted(
        key
        for key, amount in state.amount.items()
        if key[0] == rule.source_application and amount != 0 and state.in_scope(rule, key[1])
    )
    if not sources:
        return
    targets = _targets(rule, state, groups)
    if not targets:
        result.skipped.append(
            Skipped(rule, f"no target application for {rule.target_kind} {', '.join(rule.targets)}")
        )
        return
    for key in sources:
        _, product_id, currency = key
        weights = {
            target: weight
            for target, weight in _weights(rule, state, targets, currency).items()
            if weight > 0
        }
        if not weights:
            result.skipped.append(Skipped(rule, f"the targets have no {_basis(rule)} in {currency}"))
            continue
        amount = state.amount[key]
        product = state.products[product_id]
        for target, part in split_exactly(amount, weights).items():
            if part == 0:
                continue
            result.moves.append(
                Move(
                    rule,
                    rule.source_application,
                    target,
                    product_id,
                    product.family_id,
                    product.domain_id,
                    currency,
                    part,
                )
            )
            state.add((target, product_id, currency), part)
        state.amount[key] = ZERO


def _targets(rule: AllocationRule, state: _State, groups: Mapping[str, str]) -> list[str]:
    if rule.target_kind is TargetKind.APPLICATIONS:
        candidates: Iterable[str] = rule.targets
    elif rule.target_kind is TargetKind.GROUP:
        candidates = (application for application, group in groups.items() if group == rule.targets[0])
    else:
        applications = {key[0] for key in state.amount}
        candidates = (
            app for app in applications if state.has_cost_in(app, rule.target_kind, rule.targets[0])
        )
    return sorted(
        {app for app in candidates if app not in (rule.source_application, UNALLOCATED_APPLICATION)}
    )


def _weights(rule: AllocationRule, state: _State, targets: list[str], currency: str) -> dict[str, Decimal]:
    if rule.method is Method.EVEN:
        return dict.fromkeys(targets, Decimal(1))
    if rule.method is Method.FIXED:
        return dict(rule.percentages)
    if rule.method is Method.QUANTITY:
        return {target: state.quantity.get((target, rule.basis_product or ""), ZERO) for target in targets}
    return {target: _own_cost(rule, state, target, currency) for target in targets}


def _own_cost(rule: AllocationRule, state: _State, target: str, currency: str) -> Decimal:
    """The target's cost in the currency, within the rule's scope (its source filters, else its target
    domain or family, else everything)."""
    total = ZERO
    for key in state.keys_of.get(target, ()):
        _, product_id, line_currency = key
        if line_currency != currency:
            continue
        amount = state.amount[key]
        product = state.products[product_id]
        if rule.target_kind is TargetKind.DOMAIN and product.domain_id != rule.targets[0]:
            continue
        if rule.target_kind is TargetKind.FAMILY and product.family_id != rule.targets[0]:
            continue
        if state.in_scope(rule, product_id):
            total += amount
    return total


def _basis(rule: AllocationRule) -> str:
    if rule.method is Method.QUANTITY:
        return f"quantity of {rule.basis_product}"
    return "cost of their own" if rule.method is Method.PROPORTIONAL else "weight"
