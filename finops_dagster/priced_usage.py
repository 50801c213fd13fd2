"""Metered usage → priced relevés, for the domains priced internally with the rate cards.

A source says "tenant/namespace X used Q of product P this month"; the month's measures are staged
in a temporary table of the run's PostgreSQL session (COPY, or `INSERT … SELECT` where the usage is
already in the mart) and everything after that is set-based (`priced_usage.sql`): each measure is
resolved to an application (the source's own application field if it names a known one, else the
domain's mapping rules, else the unallocated application), summed per application × product ×
source, priced with the rate card valid for the month and rounded half-even in SQL exactly as
`releve.quantize_quantity` / `quantize_money` round in Python. Per unit, what the source said
before any of that is kept: the reconciliation check compares it with relevés + rejects.

Python sees each distinct value once, never each measure: the mapping rules are Python regular
expressions (named groups fill `{application}` templates), so they are evaluated once per distinct
combination of the fields they read and the answers joined back in SQL; the source's application
codes are normalised once per distinct code. Relevés and rejects come back one row per
application × product × source, and rejects of measures that cannot be priced.

Records: a relevé's `source_record_count` sums the `records` of its measures, and a reject counts
the records it stands for, so where a source keeps a record ledger (records counted where the
client receives them) every record is in exactly one of them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from functools import cache
from pathlib import Path
from typing import Any, LiteralString, cast

import psycopg
from psycopg import sql

from finops_dagster.reference.snapshot import ReferenceSnapshot
from finops_dagster.reject_reasons import RejectReason
from finops_dagster.releve import (
    UNALLOCATED_APPLICATION,
    DomainLoad,
    Reject,
    Releve,
    quantize_quantity,
)

PRECISION = 60
COPY_BATCH = 10_000
QUERIES = Path(__file__).with_name("priced_usage.sql")


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


@cache
def queries() -> dict[str, str]:
    """The named statements of priced_usage.sql (`-- name: …` headers)."""
    named: dict[str, list[str]] = {}
    current: list[str] = []
    for line in QUERIES.read_text(encoding="utf-8").splitlines():
        if line.startswith("-- name: "):
            current = named.setdefault(line.removeprefix("-- name: ").strip(), [])
        else:
            current.append(line)
    return {name: "\n".join(lines).strip() for name, lines in named.items()}


def query(name: str) -> sql.SQL:
    return sql.SQL(cast(LiteralString, queries()[name]))


class PricedUsageFold:
    """Stages the month's measures in the session's temporary tables and prices them in SQL: memory
    grows with distinct consumers, relevés and rejects, never with the number of measures."""

    def __init__(
        self,
        conn: psycopg.Connection,
        *,
        domain_id: str,
        month: dt.date,
        run_id: str,
        snapshot: ReferenceSnapshot,
        computed_at: dt.datetime,
    ) -> None:
        self.conn = conn
        self.domain_id = domain_id
        self.month = month
        self.run_id = run_id
        self.snapshot = snapshot
        self.computed_at = computed_at
        self.rejects: list[tuple[int, Reject]] = []
        self.reject_totals: dict[str, Decimal] = {}
        self.records = 0
        self._sequence = 0
        self._pending: list[tuple[Any, ...]] = []
        self._copied = False
        self.key = rule_key(sorted({rule.field for rule in snapshot.rules}))
        self.divisor = 1
        """What the month's quantities are divided by once summed (the CMDB's dumps: a source whose
        measures are sums over the month's nights); set before `finish`, before quantity rejects."""
        conn.execute(query("create_usage"))

    def add(self, usage: MeteredUsage) -> None:
        """Stage one measure (an unknown product becomes a reject with its quantity at finish)."""
        self.add_measure(
            usage.source,
            usage.consumer,
            usage.product_id,
            usage.quantity,
            usage.application,
            records=usage.records,
            fields=json.dumps(usage.fields),
        )

    def add_measure(
        self,
        source: str,
        consumer: str,
        product_id: str,
        quantity: Decimal,
        application: str | None,
        *,
        records: int = 1,
        fields: str = "{}",
    ) -> None:
        """`add` without a `MeteredUsage` per measure, for sources that stage millions of them;
        `fields`: the measure's fields as a JSON object."""
        self._sequence += 1
        self._pending.append(
            (self._sequence, source, consumer, product_id, quantity, application, fields, records)
        )
        if len(self._pending) >= COPY_BATCH:
            self._flush()

    def add_rows(self, statement: sql.Composable, params: Mapping[str, Any]) -> None:
        """Stage the measures a query of the mart yields, without them leaving the server.

        `statement` is a SELECT of (source, consumer, product_id, quantity, application, fields,
        records) in the order the measures count in; it may read `%(month)s` from `params`.
        """
        self._flush()
        insert = query("insert_usage").format(measures=statement, key=self.key)
        count = self.conn.execute(insert, {**params, "after": self._sequence}).rowcount
        self._sequence += max(count, 0)

    def reject(
        self,
        source: str,
        ref: str,
        reason: str,
        raw: dict[str, Any] | None,
        *,
        code: RejectReason,
        unit: str | None = None,
        quantity: Decimal | None = None,
        records: int = 1,
    ) -> None:
        """Record what could not be metered (`code` the cause, `reason` its details); a quantity with
        its unit also counts in the source totals (a quantity is divided by `divisor`, like the
        measures). `records`: the source records it stands for."""
        self._sequence += 1
        self.records += 1
        shown = quantity
        if unit is not None and quantity is not None:
            with localcontext() as ctx:
                ctx.prec = PRECISION
                self.reject_totals[unit] = self.reject_totals.get(unit, Decimal(0)) + quantity
                shown = quantity / self.divisor
        self.rejects.append(
            (
                self._sequence,
                Reject(
                    domain_id=self.domain_id,
                    period_month=self.month,
                    run_id=self.run_id,
                    source=source,
                    source_ref=ref,
                    reason_code=code,
                    reason=reason,
                    usage_unit=unit,
                    usage_quantity=None if shown is None else quantize_quantity(shown),
                    raw_payload=raw,
                    source_record_count=records,
                ),
            )
        )

    def _flush(self) -> None:
        if self._pending:
            self._copy(query("copy_usage"), self._pending)
            self._pending.clear()
            self._copied = True

    def finish(self, details: dict[str, Any] | None = None) -> DomainLoad:
        """Resolve, sum, price and round in SQL; the load of the month."""
        self._flush()
        if self._copied:
            self.conn.execute(query("key_copied_usage").format(key=self.key))
        self._stage_reference()
        unknown = self._resolve_applications()
        self.conn.execute(
            query("resolve_usage"), {"unallocated": UNALLOCATED_APPLICATION}
        )
        self._reject_unknown_products()
        counters: dict[str, int] = dict(self.conn.execute(query("resolution_counts")).fetchall())
        self.records += sum(counters.values())
        releves = self._price()
        summary: dict[str, Any] = {
            **{f"resolved_by_{method}": count for method, count in sorted(counters.items())},
            **(details or {}),
        }
        summary["unknown_application_refs"] = sum(unknown.values())
        summary["unknown_application_examples"] = [code for code, _ in unknown.most_common(5)]
        load = DomainLoad(
            domain_id=self.domain_id,
            period_month=self.month,
            releves=releves,
            rejects=[reject for _, reject in sorted(self.rejects, key=lambda item: item[0])],
            source_totals=self._source_totals(),
            source_record_count=self.records,
            details=summary,
        )
        self.conn.execute(query("drop_tables"))
        return load

    def _stage_reference(self) -> None:
        """The snapshot's products with the rate valid for the month: what the SQL prices with."""
        self.conn.execute(query("create_reference"))
        rows = []
        for product_id, product in self.snapshot.products.items():
            rate = self.snapshot.rate_for(product_id, self.month)
            rows.append((product_id, product.usage_unit, None if rate is None else rate.unit_cost))
        self._copy(query("copy_product"), rows)

    def _resolve_applications(self) -> Counter[str]:
        """Stage the applications the source's codes and the rules name, once per distinct value;
        return the source's codes that name no known application (counted per measure, in the
        order they were first met)."""
        known = self.snapshot.applications
        unknown: Counter[str] = Counter()
        first_seen: dict[str, int] = {}
        codes: list[tuple[str, str]] = []
        for raw, measures, first in self.conn.execute(query("source_applications")).fetchall():
            code = raw.strip().upper()
            if code in known:
                codes.append((raw, code))
                continue
            unknown[code] += measures
            first_seen[code] = min(first, first_seen.get(code, first))
        self._copy(query("copy_source_application"), codes)
        ordered: Counter[str] = Counter()
        for code in sorted(unknown, key=lambda code: (-unknown[code], first_seen[code])):
            ordered[code] = unknown[code]
        self._stage_rule_answers()
        return ordered

    def _stage_rule_answers(self) -> None:
        """Each distinct combination of the fields the rules read, with the rules' answer."""
        keys = self.conn.execute(query("rule_keys")).fetchall()
        answers = [
            (json.dumps(values), application)
            for (values,) in keys
            if (application := self.snapshot.application_by_rules(_text_of(values))) is not None
        ]
        self._copy(query("copy_rule_answer"), answers)

    def _copy(self, statement: sql.SQL, rows: Iterable[tuple[Any, ...]]) -> None:
        with self.conn.cursor() as cur, cur.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)

    def _reject_unknown_products(self) -> None:
        """Measures of a product neither in the catalog nor in the source's mapping: rejects with
        their quantity and unit, never a silent drop."""
        for sequence, source, consumer, product_id, quantity, fields, records in self.conn.execute(
            query("unknown_products")
        ).fetchall():
            unit = fields.get("unit")
            name = product_id.removeprefix("unmapped:")
            self.reject(
                source,
                consumer,
                f"unknown product {name} ({quantity} {unit or ''}): "
                "not in the product catalog or the source's product mapping",
                fields,
                code=RejectReason.UNKNOWN_PRODUCT,
                unit=unit,
                quantity=quantity if unit else None,
                records=records,
            )
            self.rejects[-1] = (sequence, self.rejects[-1][1])

    def _price(self) -> list[Releve]:
        """The month's groups priced with the rate valid for the month; a group without one is a
        reject with its quantity (after the measures' rejects, in the groups' order)."""
        releves: list[Releve] = []
        unpriced: list[Reject] = []
        for application, product_id, source, quantity, total, records in self.conn.execute(
            query("priced_groups"), {"divisor": self.divisor}
        ).fetchall():
            product = self.snapshot.products[product_id]
            rate = self.snapshot.rate_for(product_id, self.month)
            if rate is None:
                unpriced.append(
                    Reject(
                        domain_id=self.domain_id,
                        period_month=self.month,
                        run_id=self.run_id,
                        source=source,
                        source_ref=f"{application} / {product_id}",
                        reason_code=RejectReason.NO_RATE,
                        reason=f"no rate card for {product_id} valid in {self.month:%Y-%m}",
                        usage_unit=product.usage_unit,
                        usage_quantity=quantity,
                        source_record_count=records,
                    )
                )
                continue
            releves.append(
                Releve(
                    period_month=self.month,
                    application_id=application,
                    product_id=product_id,
                    family_id=product.family_id,
                    domain_id=self.snapshot.domain_of(product),
                    usage_quantity=quantity,
                    usage_unit=product.usage_unit,
                    unit_cost=rate.unit_cost,
                    total_cost=total,
                    currency=rate.currency,
                    source=source,
                    run_id=self.run_id,
                    rate_card_version=rate.version,
                    source_record_count=records,
                    computed_at=self.computed_at,
                )
            )
        last = max((sequence for sequence, _ in self.rejects), default=self._sequence)
        self.rejects.extend((max(last, self._sequence) + 1 + i, r) for i, r in enumerate(unpriced))
        return releves

    def _source_totals(self) -> dict[str, Decimal]:
        with localcontext() as ctx:
            ctx.prec = PRECISION
            totals = dict(self.reject_totals)
            for unit, quantity in self.conn.execute(query("source_totals")).fetchall():
                totals[unit] = totals.get(unit, Decimal(0)) + quantity
            return {unit: quantize_quantity(total / self.divisor) for unit, total in sorted(totals.items())}


def rule_key(names: Iterable[str]) -> sql.Composable:
    """The jsonb of the fields the rules read, as the rules see a measure: its own fields, and its
    consumer under `consumer` unless a field of that name overrides it."""
    pairs: list[sql.Composable] = []
    for name in names:
        value = (
            sql.SQL("coalesce(fields -> {name}, to_jsonb(consumer))")
            if name == "consumer"
            else sql.SQL("fields -> {name}")
        )
        pairs += [sql.Literal(name), value.format(name=sql.Literal(name))]
    return sql.SQL("jsonb_build_object({})").format(sql.SQL(", ").join(pairs))


def _text_of(values: dict[str, Any]) -> Any:
    def value_of(name: str) -> str | None:
        value = values.get(name)
        return value if isinstance(value, str) else None

    return value_of
