"""Metered usage → priced relevés, for the domains priced internally with the rate cards.

A source says "tenant/namespace X used Q of product P this month"; this fold resolves X to an
application (the source's own application field if it names a known one, else the domain's mapping
rules, else the unallocated application), sums per application × product, prices with the rate
card valid for the month, and keeps, per unit, what the source said before any of that: the
reconciliation check compares it with relevés + rejects.

Records: a relevé's `source_record_count` sums the `records` of its measures, and a reject counts
the records it stands for, so where a source keeps a record ledger (records counted where the
client receives them) every record is in exactly one of them.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field, replace
from decimal import Decimal, localcontext
from typing import Any

from finops_dagster.pricing import PricingRun, price
from finops_dagster.reference.snapshot import ReferenceSnapshot
from finops_dagster.releve import (
    UNALLOCATED_APPLICATION,
    DomainLoad,
    Reject,
    Releve,
    quantize_quantity,
)

PRECISION = 60


@dataclass(frozen=True)
class MeteredUsage:
    """One source's measure of one product for one consumer over the month, in the product's unit."""

    source: str
    consumer: str
    product_id: str
    quantity: Decimal
    application: str | None = None
    fields: dict[str, str] = field(default_factory=dict, hash=False)
    records: int = 1
    """Source records this measure stands for (a tenant Nova split over two pages is two)."""


@dataclass
class _Group:
    quantity: Decimal = Decimal(0)
    records: int = 0
    sources: set[str] = field(default_factory=set)


class PricedUsageFold:
    """Streaming: memory grows with applications × products × sources and with rejects."""

    def __init__(
        self,
        *,
        domain_id: str,
        month: dt.date,
        run_id: str,
        snapshot: ReferenceSnapshot,
        computed_at: dt.datetime,
    ) -> None:
        self.domain_id = domain_id
        self.month = month
        self.run_id = run_id
        self.snapshot = snapshot
        self.pricing = PricingRun(snapshot, domain_id, month, run_id, computed_at)
        self.computed_at = computed_at
        self.groups: dict[tuple[str, str, str], _Group] = {}
        self.source_totals: dict[str, Decimal] = {}
        self.rejects: list[Reject] = []
        self.counters: Counter[str] = Counter()
        self.unknown_applications: Counter[str] = Counter()
        self.records = 0

    def add(self, usage: MeteredUsage) -> None:
        """Count one measure; an unknown product is a reject with its quantity, never a silent drop."""
        product = self.snapshot.products.get(usage.product_id)
        if product is None:
            unit = usage.fields.get("unit")
            name = usage.product_id.removeprefix("unmapped:")
            self.reject(
                usage.source,
                usage.consumer,
                f"unknown product {name} ({usage.quantity} {unit or ''}): "
                "not in the product catalog or the source's product mapping",
                usage.fields,
                unit=unit,
                quantity=usage.quantity if unit else None,
                records=usage.records,
            )
            return
        self.records += 1
        with localcontext() as ctx:
            ctx.prec = PRECISION
            unit = product.usage_unit
            self.source_totals[unit] = self.source_totals.get(unit, Decimal(0)) + usage.quantity
            application, method = self._resolve(usage)
            self.counters[f"resolved_by_{method}"] += 1
            group = self.groups.setdefault((application, usage.product_id, usage.source), _Group())
            group.quantity += usage.quantity
            group.records += usage.records

    def reject(
        self,
        source: str,
        ref: str,
        reason: str,
        raw: dict[str, Any] | None,
        *,
        unit: str | None = None,
        quantity: Decimal | None = None,
        records: int = 1,
    ) -> None:
        """Record what could not be metered; a quantity with its unit also counts in the source totals.
        `records`: the source records it stands for."""
        self.records += 1
        if unit is not None and quantity is not None:
            with localcontext() as ctx:
                ctx.prec = PRECISION
                self.source_totals[unit] = self.source_totals.get(unit, Decimal(0)) + quantity
        self.rejects.append(
            Reject(
                domain_id=self.domain_id,
                period_month=self.month,
                run_id=self.run_id,
                source=source,
                source_ref=ref,
                reason=reason,
                usage_unit=unit,
                usage_quantity=None if quantity is None else quantize_quantity(quantity),
                raw_payload=raw,
                source_record_count=records,
            )
        )

    def _resolve(self, usage: MeteredUsage) -> tuple[str, str]:
        if usage.application:
            code = usage.application.strip().upper()
            if code in self.snapshot.applications:
                return code, "source"
            self.unknown_applications[code] += 1
        fields = {"consumer": usage.consumer, **usage.fields}
        by_rule = self.snapshot.application_by_rules(fields.get)
        if by_rule is not None:
            return by_rule, "rule"
        return UNALLOCATED_APPLICATION, "unallocated"

    def finish(self, details: dict[str, Any] | None = None) -> DomainLoad:
        with localcontext() as ctx:
            ctx.prec = PRECISION
            releves = [r for key in sorted(self.groups) if (r := self._price(*key)) is not None]
            totals = {unit: quantize_quantity(total) for unit, total in sorted(self.source_totals.items())}
        summary: dict[str, Any] = {**dict(sorted(self.counters.items())), **(details or {})}
        summary["unknown_application_refs"] = sum(self.unknown_applications.values())
        summary["unknown_application_examples"] = [c for c, _ in self.unknown_applications.most_common(5)]
        return DomainLoad(
            domain_id=self.domain_id,
            period_month=self.month,
            releves=releves,
            rejects=self.rejects,
            source_totals=totals,
            source_record_count=self.records,
            details=summary,
        )

    def _price(self, application: str, product_id: str, source: str) -> Releve | None:
        group = self.groups[(application, product_id, source)]
        priced = price(
            self.pricing,
            application=application,
            product_id=product_id,
            source=source,
            quantity=quantize_quantity(group.quantity),
            records=group.records,
        )
        if isinstance(priced, Reject):
            self.rejects.append(replace(priced, source_record_count=group.records))
            return None
        return priced
