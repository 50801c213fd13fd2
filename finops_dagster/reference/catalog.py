"""Reading and validating the versioned reference files in `reference/data/`.

They are data, not code: a FinOps analyst changes a price or a mapping rule by editing a CSV.
Every error names the file and line so the fix is obvious.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TypeVar

DATA_DIR = Path(__file__).resolve().parent / "data"

T = TypeVar("T")


class ReferenceDataError(ValueError):
    """A reference file is malformed; the message names the file and line."""


@dataclass(frozen=True)
class Domain:
    domain_id: str
    label: str


@dataclass(frozen=True)
class Family:
    family_id: str
    domain_id: str
    label: str


@dataclass(frozen=True)
class Product:
    product_id: str
    family_id: str
    label: str
    usage_unit: str


@dataclass(frozen=True)
class Rate:
    product_id: str
    valid_from: dt.date
    valid_to: dt.date | None
    unit_cost: Decimal
    currency: str
    version: str

    def covers(self, month: dt.date) -> bool:
        return self.valid_from <= month and (self.valid_to is None or month < self.valid_to)


@dataclass(frozen=True)
class MappingRule:
    rule_id: str
    domain_id: str
    field: str
    pattern: str
    application_id: str
    priority: int


@dataclass(frozen=True)
class ExchangeRate:
    """How many units of `to_currency` one unit of `from_currency` is worth over a month."""

    period_month: dt.date
    from_currency: str
    to_currency: str
    rate: Decimal
    source: str


@dataclass(frozen=True)
class Catalog:
    domains: tuple[Domain, ...]
    families: tuple[Family, ...]
    products: tuple[Product, ...]
    rates: tuple[Rate, ...]
    rules: tuple[MappingRule, ...]
    checksums: dict[str, str]
    exchange_rates: tuple[ExchangeRate, ...] = ()


def csv_rows(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """The file's rows (line number, column → stripped text); a missing column names the file."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [column for column in columns if column not in (reader.fieldnames or [])]
        if missing:
            raise ReferenceDataError(f"{path.name}: missing column(s) {', '.join(missing)}")
        for line, row in enumerate(reader, start=2):
            yield line, {key: (value or "").strip() for key, value in row.items() if key}


def parse_csv(path: Path, columns: tuple[str, ...], build: Callable[[dict[str, str]], T]) -> tuple[T, ...]:
    items = []
    for line, row in csv_rows(path, columns):
        try:
            items.append(build(row))
        except (ValueError, InvalidOperation, KeyError) as error:
            raise ReferenceDataError(f"{path.name} line {line}: {error}") from None
    return tuple(items)


def required_value(row: dict[str, str], column: str) -> str:
    value = row.get(column, "")
    if not value:
        raise ValueError(f"{column} is empty")
    return value


def month_value(value: str, column: str) -> dt.date:
    day = dt.date.fromisoformat(value)
    if day.day != 1:
        raise ValueError(f"{column} {value} is not the first day of a month")
    return day


def currency_value(row: dict[str, str], column: str) -> str:
    currency = required_value(row, column)
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise ValueError(f"{column} {currency!r} is not an ISO 4217 code")
    return currency


def _exchange_rate(row: dict[str, str]) -> ExchangeRate:
    rate = Decimal(required_value(row, "rate"))
    if not rate.is_finite() or rate <= 0:
        raise ValueError(f"rate {rate} must be a finite number > 0")
    exponent = rate.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -10:
        raise ValueError(f"rate {rate} has more than 10 decimals: the mart stores rates at 10")
    from_currency, to_currency = currency_value(row, "from_currency"), currency_value(row, "to_currency")
    if from_currency == to_currency:
        raise ValueError(f"a rate from {from_currency} to itself")
    return ExchangeRate(
        month_value(required_value(row, "period_month"), "period_month"),
        from_currency,
        to_currency,
        rate,
        required_value(row, "source"),
    )


def _rate(row: dict[str, str]) -> Rate:
    unit_cost = Decimal(required_value(row, "unit_cost"))
    if not unit_cost.is_finite() or unit_cost < 0:
        raise ValueError(f"unit_cost {unit_cost} must be a finite number >= 0")
    exponent = unit_cost.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -6:
        raise ValueError(f"unit_cost {unit_cost} has more than 6 decimals: the mart stores prices at 6")
    currency = currency_value(row, "currency")
    valid_to = month_value(row["valid_to"], "valid_to") if row.get("valid_to") else None
    valid_from = month_value(required_value(row, "valid_from"), "valid_from")
    if valid_to is not None and valid_to <= valid_from:
        raise ValueError(f"valid_to {valid_to} is not after valid_from {valid_from}")
    return Rate(
        required_value(row, "product_id"),
        valid_from,
        valid_to,
        unit_cost,
        currency,
        required_value(row, "version"),
    )


def _rule(row: dict[str, str]) -> MappingRule:
    pattern = required_value(row, "pattern")
    try:
        re.compile(pattern)
    except re.error as error:
        raise ValueError(f"pattern {pattern!r} is not a valid regular expression: {error}") from None
    return MappingRule(
        required_value(row, "rule_id"),
        required_value(row, "domain_id"),
        required_value(row, "field"),
        pattern,
        required_value(row, "application_id"),
        int(required_value(row, "priority")),
    )


def load_catalog(directory: Path = DATA_DIR) -> Catalog:
    """Read and cross-check every reference file."""
    domains = parse_csv(
        directory / "domains.csv",
        ("domain_id", "label"),
        lambda r: Domain(required_value(r, "domain_id"), required_value(r, "label")),
    )
    families = parse_csv(
        directory / "families.csv",
        ("family_id", "domain_id", "label"),
        lambda r: Family(
            required_value(r, "family_id"), required_value(r, "domain_id"), required_value(r, "label")
        ),
    )
    products = parse_csv(
        directory / "products.csv",
        ("product_id", "family_id", "label", "usage_unit"),
        lambda r: Product(
            required_value(r, "product_id"),
            required_value(r, "family_id"),
            required_value(r, "label"),
            required_value(r, "usage_unit"),
        ),
    )
    rates = parse_csv(
        directory / "rate_cards.csv",
        ("product_id", "valid_from", "valid_to", "unit_cost", "currency", "version"),
        _rate,
    )
    rules = parse_csv(
        directory / "mapping_rules.csv",
        ("rule_id", "domain_id", "field", "pattern", "application_id", "priority"),
        _rule,
    )
    exchange_rates = parse_csv(
        directory / "exchange_rates.csv",
        ("period_month", "from_currency", "to_currency", "rate", "source"),
        _exchange_rate,
    )
    catalog = Catalog(domains, families, products, rates, rules, _checksums(directory), exchange_rates)
    _cross_check(catalog)
    return catalog


def _checksums(directory: Path) -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(directory.glob("*.csv"))
    }


def _unique(kind: str, keys: list[str]) -> None:
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            raise ReferenceDataError(f"{kind}: {key} is defined twice")
        seen.add(key)


def _cross_check(catalog: Catalog) -> None:
    _unique("domains.csv", [d.domain_id for d in catalog.domains])
    _unique("families.csv", [f.family_id for f in catalog.families])
    _unique("products.csv", [p.product_id for p in catalog.products])
    _unique("mapping_rules.csv", [r.rule_id for r in catalog.rules])
    _unique(
        "exchange_rates.csv",
        [f"{r.period_month:%Y-%m} {r.from_currency}→{r.to_currency}" for r in catalog.exchange_rates],
    )
    domains = {d.domain_id for d in catalog.domains}
    families = {f.family_id for f in catalog.families}
    products = {p.product_id for p in catalog.products}
    for family in catalog.families:
        if family.domain_id not in domains:
            raise ReferenceDataError(
                f"families.csv: {family.family_id} has unknown domain {family.domain_id}"
            )
    for product in catalog.products:
        if product.family_id not in families:
            raise ReferenceDataError(
                f"products.csv: {product.product_id} has unknown family {product.family_id}"
            )
    for rule in catalog.rules:
        if rule.domain_id not in domains:
            raise ReferenceDataError(f"mapping_rules.csv: {rule.rule_id} has unknown domain {rule.domain_id}")
    for rate in catalog.rates:
        if rate.product_id not in products:
            raise ReferenceDataError(f"rate_cards.csv: unknown product {rate.product_id}")
    _refuse_overlapping_rates(catalog.rates)


def _refuse_overlapping_rates(rates: tuple[Rate, ...]) -> None:
    by_product: dict[str, list[Rate]] = {}
    for rate in rates:
        by_product.setdefault(rate.product_id, []).append(rate)
    for product_id, product_rates in by_product.items():
        ordered = sorted(product_rates, key=lambda rate: rate.valid_from)
        for earlier, later in itertools.pairwise(ordered):
            if earlier.valid_to is None or earlier.valid_to > later.valid_from:
                raise ReferenceDataError(
                    f"rate_cards.csv: {product_id} has overlapping rates from {earlier.valid_from} "
                    f"and {later.valid_from}: one month would have two prices"
                )
