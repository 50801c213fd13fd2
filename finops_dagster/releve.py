"""The relevé contract: one record per application × product × month, whatever the domain.

Every domain produces `Releve` rows and `Reject` rows; the mart only ever sees these two shapes.
Money and quantities are `Decimal` end to end and are quantized once, here, so every domain
rounds the same way and the reconciliation tolerance is known.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

UNALLOCATED_APPLICATION = "UNALLOCATED"
UNALLOCATED_GROUP = "UNALLOCATED"

QUANTITY_SCALE = Decimal("0.000001")
MONEY_SCALE = Decimal("0.000001")

RELEVE_COLUMNS: tuple[str, ...] = (
    "period_month",
    "application_id",
    "product_id",
    "family_id",
    "domain_id",
    "usage_quantity",
    "usage_unit",
    "unit_cost",
    "total_cost",
    "currency",
    "source",
    "run_id",
    "rate_card_version",
    "source_record_count",
    "computed_at",
    "billed_cost",
    "billed_currency",
)

REJECT_COLUMNS: tuple[str, ...] = (
    "domain_id",
    "period_month",
    "run_id",
    "source",
    "source_ref",
    "reason",
    "usage_unit",
    "usage_quantity",
    "cost",
    "currency",
    "raw_payload",
)


def quantize_quantity(value: Decimal) -> Decimal:
    """Round a usage quantity to the mart's scale (numeric(28, 6)), banker's rounding."""
    return value.quantize(QUANTITY_SCALE, rounding=ROUND_HALF_EVEN)


def quantize_money(value: Decimal) -> Decimal:
    """Round an amount to the mart's scale (numeric(24, 6)), banker's rounding."""
    return value.quantize(MONEY_SCALE, rounding=ROUND_HALF_EVEN)


def utc_now() -> dt.datetime:
    """The clock of the pipeline (UTC), in one place so tests can set it."""
    return dt.datetime.now(dt.UTC)


def month_start(day: dt.date | dt.datetime) -> dt.date:
    """First day of the month holding `day`: the key of a relevé's period."""
    return dt.date(day.year, day.month, 1)


def next_month(month: dt.date) -> dt.date:
    """First day of the month after `month`."""
    return dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)


@dataclass(frozen=True)
class Releve:
    """One application's consumption of one product over one month, priced."""

    period_month: dt.date
    application_id: str
    product_id: str
    family_id: str
    domain_id: str
    usage_quantity: Decimal
    usage_unit: str
    unit_cost: Decimal
    total_cost: Decimal
    currency: str
    source: str
    run_id: str
    rate_card_version: str | None
    source_record_count: int
    computed_at: dt.datetime
    billed_cost: Decimal | None = None
    """What the provider billed, in `billed_currency`, where the source is a bill in another currency
    than the relevé's; None where `total_cost` is the amount as the source priced it."""
    billed_currency: str | None = None

    def as_row(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in RELEVE_COLUMNS)


@dataclass(frozen=True)
class Reject:
    """What could not become a relevé, why, and what it carried, so nothing is silently lost."""

    domain_id: str
    period_month: dt.date
    run_id: str
    source: str
    source_ref: str
    reason: str
    usage_unit: str | None = None
    usage_quantity: Decimal | None = None
    cost: Decimal | None = None
    currency: str | None = None
    raw_payload: dict[str, Any] | None = field(default=None, hash=False)

    def as_row(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in REJECT_COLUMNS)


@dataclass
class DomainLoad:
    """Everything a domain produced for one month: what the staging write and the checks need.

    `source_totals` is what was read from the source before any allocation, per usage unit
    (and `source_costs` per billing currency where the source carries cost): the reconciliation
    check proves relevés + rejects add back up to it.
    """

    domain_id: str
    period_month: dt.date
    releves: list[Releve]
    rejects: list[Reject]
    source_totals: dict[str, Decimal]
    source_record_count: int
    source_costs: dict[str, Decimal] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def total_cost(self) -> Decimal:
        return sum((releve.total_cost for releve in self.releves), Decimal(0))
