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

The sums and the relevés are computed in an in-memory DuckDB (fold_queries.py): the export files'
reader inserts its allocated sums there straight from its scan, so a bill of tens of millions of
line items never becomes Python objects, and the relevés leave as the CSV the mart's COPY loads.
The cost APIs' groups (a few thousand) are allocated here, in Python, and inserted alongside.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from finops_dagster.domains.public_cloud import DOMAIN_ID
from finops_dagster.domains.public_cloud import fold_queries as q
from finops_dagster.domains.public_cloud.charges import (
    RULE_FIELDS,
    Allocation,
    ChargeGroup,
    ChargeProblem,
    ChargeTable,
    SourceMonth,
)
from finops_dagster.domains.public_cloud.duckdb_columns import literal
from finops_dagster.domains.public_cloud.tags import tag_value
from finops_dagster.reference.catalog import Product
from finops_dagster.reference.snapshot import ReferenceSnapshot
from finops_dagster.releve import (
    UNALLOCATED_APPLICATION,
    DomainLoad,
    Reject,
    ReleveBatch,
    quantize_money,
)

LINE_ITEMS_UNIT = "line items"
"""The unit of a relevé whose charges have several pricing units: the quantity counts line items."""
OTHER_FAMILY = "PUB_OTHER"


@dataclass(frozen=True)
class FoldSettings:
    tag_keys: tuple[str, ...]
    reporting_currency: str
    product_by_sku: bool
    families_by_category: Mapping[str, str]


class FoldError(RuntimeError):
    """The month's charges cannot be made into relevés exactly; the run fails saying why."""


class ChargeFold:
    """Sums charges per application × product × billing currency; memory grows with those, never
    with line items. `finish` makes the month's load and closes the fold's DuckDB."""

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
        self.allocation = Allocation(
            settings.tag_keys,
            snapshot.applications,
            snapshot.application_by_rules,
            frozenset(rule.field for rule in snapshot.rules),
        )
        self.duckdb = duckdb.connect()
        self.duckdb.execute("SET enable_progress_bar = false")
        self.duckdb.execute("SET preserve_insertion_order = false")  # the relevés' CSV, written in parallel
        self.duckdb.execute(q.CREATE_ALLOCATED_CHARGES)
        self.table = ChargeTable(self.allocation, self.duckdb, "allocated_charges")
        self.pending: list[ChargeGroup] = []
        self.products: dict[str, Product] = {}
        self.rejects: list[Reject] = []
        self.source_costs: dict[str, Decimal] = {}
        self.line_items = 0
        self.unknown_tag_values: Counter[str] = Counter()
        self.charge_categories: Counter[str] = Counter()

    def add_source(self, read: SourceMonth) -> None:
        """Everything a source said of the month: its charge groups (or the sums it inserted into
        `table`), its unreadable rows."""
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
        self.pending.append(group)

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
                cost=_storable(problem.cost),
                currency=problem.currency if _storable(problem.cost) is not None else None,
                raw_payload=problem.raw,
            )
        )

    def finish(self, details: dict[str, Any]) -> DomainLoad:
        try:
            self._insert_pending()
            self._load_rates()
            self.rejects.extend(self._unconvertible())
            self.duckdb.execute(q.create_priced(self.settings.product_by_sku))
            self._choose_products()
            releves = self._releves()
        except (duckdb.OutOfRangeException, duckdb.ConversionException):
            raise FoldError(
                f"{DOMAIN_ID} {self.month:%Y-%m}: a relevé is beyond what is computed exactly (a converted "
                f"total up to {q.CONVERTED_LIMIT} {self.settings.reporting_currency}, a unit cost up to "
                "10^18); check the bill's amounts, quantities and currencies"
            ) from None
        finally:
            self.close()
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

    def close(self) -> None:
        """Frees the fold's DuckDB (`finish` does; a run that fails before it should too)."""
        self.duckdb.close()

    def _count_source(self, currency: str | None, cost: Decimal | None, line_items: int) -> None:
        self.line_items += line_items
        if currency is not None and cost is not None:
            self.source_costs[currency] = self.source_costs.get(currency, Decimal(0)) + cost

    def _insert_pending(self) -> None:
        """The groups handed over in Python, allocated here, into the table the files filled."""
        if not self.pending:
            return
        columns: dict[str, list[Any]] = {
            "source": [g.source for g in self.pending],
            "application": [self._application(g) for g in self.pending],
            "provider": [g.provider for g in self.pending],
            "service_name": [g.service_name for g in self.pending],
            "service_category": [g.service_category for g in self.pending],
            "charge_category": [g.charge_category for g in self.pending],
            "sku_id": [g.sku_id for g in self.pending],
            "currency": [g.billing_currency for g in self.pending],
            "pricing_unit": [g.pricing_unit for g in self.pending],
            "cost": [str(g.cost) for g in self.pending],
            "line_items": [g.line_items for g in self.pending],
            "quantified": [g.line_items if _quantified(g) else 0 for g in self.pending],
            "pricing_quantity": [str(g.pricing_quantity) if _quantified(g) else None for g in self.pending],
        }
        self.duckdb.execute(q.INSERT_GROUPS, columns)
        self.pending.clear()

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

    def _load_rates(self) -> None:
        rates = {**self.exchange_rates, self.settings.reporting_currency: Decimal(1)}
        self.duckdb.execute(
            q.CREATE_RATES, {"currency": list(rates), "rate": [str(rate) for rate in rates.values()]}
        )

    def _unconvertible(self) -> list[Reject]:
        return [
            Reject(
                domain_id=DOMAIN_ID,
                period_month=self.month,
                run_id=self.run_id,
                source=source,
                source_ref=":".join(part or "-" for part in (provider, service_name, application)),
                reason=(
                    f"no exchange rate {currency}→{self.settings.reporting_currency} for "
                    f"{self.month:%Y-%m} (reference/data/exchange_rates.csv)"
                ),
                cost=quantize_money(Decimal(cost)),
                currency=currency,
                raw_payload={
                    "provider": provider,
                    "service_name": service_name,
                    "charge_category": charge_category,
                    "application": application,
                    "line_items": line_items,
                },
            )
            for source, provider, service_name, charge_category, application, currency, cost, line_items in (
                self.duckdb.execute(q.UNCONVERTIBLE).fetchall()
            )
        ]

    def _choose_products(self) -> None:
        """Each product once, for the catalogue: its family from its FOCUS ServiceCategory (the
        first, in order, that names one), else the catalogue's, else the other family."""
        products = self.duckdb.execute(q.PRODUCTS).fetchall()
        for product_id, provider, service, sku, categories, unit in products:
            known = self.snapshot.products.get(product_id)
            family = (
                next(
                    (
                        self.settings.families_by_category[c]
                        for c in categories or []
                        if c in self.settings.families_by_category
                    ),
                    None,
                )
                or (known.family_id if known else None)
                or OTHER_FAMILY
            )
            label = f"{provider} {service}" + (f" ({sku})" if sku else "")
            self.products[product_id] = Product(product_id, family, label, unit or LINE_ITEMS_UNIT)
        self.duckdb.execute(
            q.CREATE_PRODUCT_FAMILIES,
            {
                "product_id": list(self.products),
                "family_id": [product.family_id for product in self.products.values()],
            },
        )

    def _releves(self) -> ReleveBatch:
        """The relevés, computed in DuckDB and written as the CSV the mart loads."""
        self.duckdb.execute(
            q.CREATE_RELEVES,
            {
                "month": self.month,
                "domain": DOMAIN_ID,
                "line_items_unit": LINE_ITEMS_UNIT,
                "reporting": self.settings.reporting_currency,
                "run_id": self.run_id,
                "computed_at": self.computed_at.isoformat(),
            },
        )
        row = self.duckdb.execute(q.RELEVE_TOTALS, {"unallocated": UNALLOCATED_APPLICATION}).fetchone()
        count, total, unallocated = row if row else (0, "0", "0")
        return ReleveBatch(
            rows_csv=_csv_of(self.duckdb, "releves"),
            length=int(count),
            total_cost=Decimal(total),
            unallocated_cost=Decimal(unallocated),
        )


REJECT_COST_LIMIT = Decimal(10) ** 18
"""The reject's cost column (numeric(24, 6)) holds amounts below this."""


def _storable(cost: Decimal | None) -> Decimal | None:
    """A reject's cost as the mart holds it; one beyond the column stays in the reject's payload."""
    if cost is None or abs(cost) >= REJECT_COST_LIMIT:
        return None
    return quantize_money(cost)


def _quantified(group: ChargeGroup) -> bool:
    """A group from a cost API has a quantity for all of its line items, in its unit, or none."""
    return group.pricing_quantity is not None and group.pricing_unit is not None


def _csv_of(conn: duckdb.DuckDBPyConnection, table: str) -> bytes:
    """A table as CSV (no header, NULL as an empty unquoted field, as PostgreSQL's COPY reads it)."""
    with tempfile.TemporaryDirectory(prefix="finops-releves-") as directory:
        path = Path(directory) / f"{table}.csv"
        conn.execute(f"COPY {table} TO {literal(str(path))} (FORMAT csv, HEADER false)")
        return path.read_bytes()
