"""The relevé contract: one record per application × product × month, whatever the domain.

Every domain produces `Releve` rows and `Reject` rows; the mart only ever sees these two shapes.
A domain that computes its relevés outside Python (DuckDB, for bills of tens of millions of line
items) hands them over as a `ReleveBatch`: the CSV the mart's COPY loads as it is, which still
reads back as `Releve` objects for whoever wants them.
Money and quantities are `Decimal` end to end and are quantized once, here, so every domain
rounds the same way and the reconciliation tolerance is known.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from functools import cached_property
from typing import Any, overload

from finops_dagster.reject_reasons import RejectReason

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
    "reason_code",
    "reason",
    "usage_unit",
    "usage_quantity",
    "cost",
    "currency",
    "raw_payload",
    "source_record_count",
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
class ReleveBatch(Sequence[Releve]):
    """`length` relevés as CSV rows in RELEVE_COLUMNS order (no header; an empty unquoted field is
    NULL), with the totals that were summed with them."""

    rows_csv: bytes
    length: int
    total_cost: Decimal
    unallocated_cost: Decimal

    def __len__(self) -> int:
        return self.length

    @overload
    def __getitem__(self, index: int) -> Releve: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Releve]: ...

    def __getitem__(self, index: int | slice) -> Releve | Sequence[Releve]:
        return self.releves[index]

    def __iter__(self) -> Iterator[Releve]:
        return iter(self.releves)

    @cached_property
    def releves(self) -> list[Releve]:
        """The rows read back as `Releve` objects, once, for whoever wants objects."""
        reader = csv.reader(io.StringIO(self.rows_csv.decode("utf-8")))
        return [_releve(dict(zip(RELEVE_COLUMNS, row, strict=True))) for row in reader]


def _releve(row: dict[str, str]) -> Releve:
    def optional(name: str) -> str | None:
        return row[name] or None

    billed = optional("billed_cost")
    return Releve(
        period_month=dt.date.fromisoformat(row["period_month"]),
        application_id=row["application_id"],
        product_id=row["product_id"],
        family_id=row["family_id"],
        domain_id=row["domain_id"],
        usage_quantity=Decimal(row["usage_quantity"]),
        usage_unit=row["usage_unit"],
        unit_cost=Decimal(row["unit_cost"]),
        total_cost=Decimal(row["total_cost"]),
        currency=row["currency"],
        source=row["source"],
        run_id=row["run_id"],
        rate_card_version=optional("rate_card_version"),
        source_record_count=int(row["source_record_count"]),
        computed_at=dt.datetime.fromisoformat(row["computed_at"]),
        billed_cost=None if billed is None else Decimal(billed),
        billed_currency=optional("billed_currency"),
    )


@dataclass(frozen=True)
class Reject:
    """What could not become a relevé, why, and what it carried, so nothing is silently lost.

    `reason_code` is the cause (reject_reasons.py), the same for every reject of that cause;
    `reason` its details: what, where, the value as written."""

    domain_id: str
    period_month: dt.date
    run_id: str
    source: str
    source_ref: str
    reason_code: RejectReason
    reason: str
    usage_unit: str | None = None
    usage_quantity: Decimal | None = None
    cost: Decimal | None = None
    currency: str | None = None
    raw_payload: dict[str, Any] | None = field(default=None, hash=False)
    source_record_count: int | None = None
    """How many source records the reject accounts for, where the domain keeps a record ledger
    (records read = relevés' source_record_count + rejects' source_record_count)."""

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
    releves: Sequence[Releve]
    rejects: list[Reject]
    source_totals: dict[str, Decimal]
    source_record_count: int
    source_costs: dict[str, Decimal] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def total_cost(self) -> Decimal:
        if isinstance(self.releves, ReleveBatch):
            return self.releves.total_cost
        return sum((releve.total_cost for releve in self.releves), Decimal(0))

    @property
    def unallocated_cost(self) -> Decimal:
        if isinstance(self.releves, ReleveBatch):
            return self.releves.unallocated_cost
        return sum(
            (r.total_cost for r in self.releves if r.application_id == UNALLOCATED_APPLICATION), Decimal(0)
        )
