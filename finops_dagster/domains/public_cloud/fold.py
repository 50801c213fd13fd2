"""Charge groups → relevés: allocate each charge to an application, name its product, convert its cost.

Application: the value of the first configured application tag (keys compared without case or
spaces) when it names a known application; else the public_cloud mapping rules on the charge's
sub-account id and name, resource group, provider, service and tag value; else the unallocated
application. Product: provider + service (+ SKU when FINOPS_PUBLIC_CLOUD_PRODUCT_BY_SKU), family
from the FOCUS ServiceCategory. A charge without a service (a tax line, an account-level credit)
is the product `<provider>:<ChargeCategory>`: every charge category is kept, summed into its
product, credits as negative amounts.

Currency: a relevé keeps what was billed (`billed_cost`, `billed_currency`) and its total in the
reporting currency at the month's exchange rate; a currency without a rate for the month makes
its charges rejects (their billed cost kept), so nothing is converted with a guess.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from finops_dagster.domains.public_cloud.charges import (
    RULE_FIELDS,
    Allocation,
    ChargeGroup,
    ChargeProblem,
    SourceMonth,
)
from finops_dagster.domains.public_cloud.tags import tag_value
from finops_dagster.reference.catalog import Product
from finops_dagster.reference.snapshot import ReferenceSnapshot
from finops_dagster.releve import (
    UNALLOCATED_APPLICATION,
    DomainLoad,
    Reject,
    Releve,
    quantize_money,
    quantize_quantity,
)

DOMAIN_ID = "public_cloud"
LINE_ITEMS_UNIT = "line items"
"""The unit of a relevé whose charges have several pricing units: the quantity counts line items."""
OTHER_FAMILY = "PUB_OTHER"


@dataclass(frozen=True)
class FoldSettings:
    tag_keys: tuple[str, ...]
    reporting_currency: str
    product_by_sku: bool
    families_by_category: Mapping[str, str]


@dataclass
class _Sum:
    billed: Decimal = Decimal(0)
    line_items: int = 0
    quantity: Decimal = Decimal(0)
    units: set[str | None] = field(default_factory=set)


class ChargeFold:
    """Sums charge groups per application × product × billing currency; memory grows with those,
    never with line items."""

    def __init__(
        self,
        *,
        month: dt.date,
        run_id: str,
        computed_at: dt.datetime,
        snapshot: ReferenceSnapshot,
        exchange_rates: Mapping[str, Decimal],
        settings: FoldSettings,
    ) -> None:
        self.month = month
        self.run_id = run_id
        self.computed_at = computed_at
        self.snapshot = snapshot
        self.exchange_rates = exchange_rates
        self.settings = settings
        self.allocation = Allocation(settings.tag_keys, snapshot.applications, snapshot.application_by_rules)
        self.sums: dict[tuple[str, str, str, str], _Sum] = {}
        self.products: dict[str, Product] = {}
        self.rejects: list[Reject] = []
        self.source_costs: dict[str, Decimal] = {}
        self.line_items = 0
        self.unknown_tag_values: Counter[str] = Counter()
        self.charge_categories: Counter[str] = Counter()

    def add_source(self, read: SourceMonth) -> None:
        """Everything a source said of the month: its charge groups, its unreadable rows."""
        counted = read.source_costs is not None
        for group in read.groups:
            self.add(group, counted=counted)
        for problem in read.problems:
            self.reject(problem, counted=counted)
        if read.source_costs is not None:
            self.line_items += read.line_items
            for currency, cost in read.source_costs.items():
                self.source_costs[currency] = self.source_costs.get(currency, Decimal(0)) + cost
        self.unknown_tag_values.update(read.unknown_application_tags)
        if read.line_items_by_category is not None:
            self.charge_categories.update(read.line_items_by_category)
        else:
            for group in read.groups:
                self.charge_categories[group.charge_category or "(none)"] += group.line_items

    def add(self, group: ChargeGroup, *, counted: bool = False) -> None:
        """One charge group; `counted` when its source already counted its cost (`source_costs`)."""
        if not counted:
            self._count_source(group.billing_currency, group.cost, group.line_items)
        rate = self._rate(group.billing_currency)
        if rate is None:
            self.rejects.append(self._no_rate_reject(group))
            return
        product = self._product(group)
        key = (self._application(group), product.product_id, group.source, group.billing_currency)
        total = self.sums.setdefault(key, _Sum())
        total.billed += group.cost
        total.line_items += group.line_items
        total.units.add(group.pricing_unit if group.pricing_quantity is not None else None)
        total.quantity += group.pricing_quantity or Decimal(0)

    def reject(self, problem: ChargeProblem, *, counted: bool = False) -> None:
        """A row a source could not read: kept with its reason, its cost counted where it was readable."""
        if not counted:
            self._count_source(problem.currency, problem.cost, problem.line_items)
        self.rejects.append(
            Reject(
                domain_id=DOMAIN_ID,
                period_month=self.month,
                run_id=self.run_id,
                source=problem.source,
                source_ref=problem.ref,
                reason=problem.reason,
                cost=None if problem.cost is None else quantize_money(problem.cost),
                currency=problem.currency if problem.cost is not None else None,
                raw_payload=problem.raw,
            )
        )

    def finish(self, details: dict[str, Any]) -> DomainLoad:
        releves = [self._releve(key, total) for key, total in sorted(self.sums.items())]
        details = {
            **details,
            "charge_categories": dict(sorted(self.charge_categories.items())),
            "unknown_application_tags": dict(self.unknown_tag_values.most_common(20)),
        }
        return DomainLoad(
            domain_id=DOMAIN_ID,
            period_month=self.month,
            releves=releves,
            rejects=self.rejects,
            source_totals={},
            source_record_count=self.line_items,
            source_costs=dict(sorted(self.source_costs.items())),
            details=details,
        )

    def _count_source(self, currency: str | None, cost: Decimal | None, line_items: int) -> None:
        self.line_items += line_items
        if currency is not None and cost is not None:
            self.source_costs[currency] = self.source_costs.get(currency, Decimal(0)) + cost

    def _rate(self, currency: str) -> Decimal | None:
        if currency == self.settings.reporting_currency:
            return Decimal(1)
        return self.exchange_rates.get(currency)

    def _application(self, group: ChargeGroup) -> str:
        if group.application is not None:
            return group.application
        tagged = group.tag_value or tag_value(group.tags, self.settings.tag_keys)
        fields = {name: getattr(group, name) for name in RULE_FIELDS}
        application = self.allocation.resolve(tagged, fields)
        if application is not None:
            return application
        if tagged is not None:
            self.unknown_tag_values[tagged] += group.line_items
        return UNALLOCATED_APPLICATION

    def _product(self, group: ChargeGroup) -> Product:
        service = group.service_name or group.charge_category or "Other"
        parts = [group.provider, service]
        if self.settings.product_by_sku and group.sku_id:
            parts.append(group.sku_id)
        product_id = ":".join(parts)
        product = self.products.get(product_id)
        if product is None:
            known = self.snapshot.products.get(product_id)
            family = (
                self.settings.families_by_category.get(group.service_category or "")
                or (known.family_id if known else None)
                or OTHER_FAMILY
            )
            label = f"{group.provider} {service}" + (f" ({group.sku_id})" if len(parts) == 3 else "")
            product = Product(product_id, family, label, group.pricing_unit or LINE_ITEMS_UNIT)
            self.products[product_id] = product
        return product

    def _releve(self, key: tuple[str, str, str, str], sums: _Sum) -> Releve:
        application, product_id, source, currency = key
        converted = currency != self.settings.reporting_currency
        rate = self._rate(currency) or Decimal(1)
        total = quantize_money(sums.billed * rate)
        units = sums.units
        if len(units) == 1 and None not in units:
            unit = next(iter(units)) or LINE_ITEMS_UNIT
            quantity = quantize_quantity(sums.quantity)
        else:
            unit, quantity = LINE_ITEMS_UNIT, Decimal(sums.line_items)
        return Releve(
            period_month=self.month,
            application_id=application,
            product_id=product_id,
            family_id=self.products[product_id].family_id,
            domain_id=DOMAIN_ID,
            usage_quantity=quantity,
            usage_unit=unit,
            unit_cost=quantize_money(total / quantity) if quantity else Decimal(0),
            total_cost=total,
            currency=self.settings.reporting_currency,
            source=f"{source}:{currency}" if converted else source,
            run_id=self.run_id,
            rate_card_version=None,
            source_record_count=sums.line_items,
            computed_at=self.computed_at,
            billed_cost=quantize_money(sums.billed) if converted else None,
            billed_currency=currency if converted else None,
        )

    def _no_rate_reject(self, group: ChargeGroup) -> Reject:
        return Reject(
            domain_id=DOMAIN_ID,
            period_month=self.month,
            run_id=self.run_id,
            source=group.source,
            source_ref=":".join(
                part or "-" for part in (group.provider, group.service_name, group.sub_account_id)
            ),
            reason=(
                f"no exchange rate {group.billing_currency}→{self.settings.reporting_currency} for "
                f"{self.month:%Y-%m} (reference/data/exchange_rates.csv)"
            ),
            cost=quantize_money(group.cost),
            currency=group.billing_currency,
            raw_payload={
                "provider": group.provider,
                "service_name": group.service_name,
                "sub_account_id": group.sub_account_id,
                "charge_category": group.charge_category,
                "line_items": group.line_items,
                "tags": dict(group.tags),
            },
        )
