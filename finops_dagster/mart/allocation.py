"""Allocating a published month: its direct relevés, the month's rules, the moves and the allocated cost.

Runs inside the publish transaction (mart/publish.py), after the month's fact_releve rows were
replaced, so the allocation of a month always describes the facts readers see with it. The rules
come from `finops.allocation_rule` (what the reference asset loaded from the rule file), parsed again
by the file's parser; the arithmetic is the engine's (allocation/engine.py). A month is allocated
whole, whichever domains the run published: a proportional rule weighs every domain's cost.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import psycopg
from psycopg import sql

from finops_dagster.allocation.engine import CostLine, MonthAllocation, allocate_month
from finops_dagster.allocation.rules import (
    COLUMNS,
    AllocationRule,
    check_applications,
    parse_rule,
    rules_of_month,
)
from finops_dagster.reference.catalog import ReferenceDataError

ZERO = Decimal(0)
Key = tuple[str, str, str]  # application, product, currency

INSERT_RULE = """
INSERT INTO finops.allocation_rule (rule_id, version, line, sequence, valid_from, valid_to,
    source_application, source_domain, source_family, source_product, target_kind, targets, method,
    basis_product)
VALUES (%(rule_id)s, %(version)s, %(line)s, %(sequence)s, %(valid_from)s, nullif(%(valid_to)s, '')::date,
    %(source_application)s, %(source_domain)s, %(source_family)s, %(source_product)s, %(target_kind)s,
    %(targets)s, %(method)s, %(basis_product)s)
"""

DIRECT_LINES = """
SELECT application_id, product_id, family_id, domain_id, currency, min(usage_unit),
       sum(total_cost), sum(usage_quantity)
FROM finops.fact_releve WHERE period_month = %s
GROUP BY application_id, product_id, family_id, domain_id, currency
ORDER BY application_id, product_id, currency
"""


class AllocationError(RuntimeError):
    """The month's rules cannot be applied (a rule names an application the mart does not know)."""


@dataclass(frozen=True)
class AllocatedMonth:
    period_month: dt.date
    rules: tuple[str, ...]
    moves: int
    moved_cost: Decimal
    skipped: tuple[str, ...]


def store_rules(conn: psycopg.Connection, rows: Sequence[tuple[int, dict[str, str]]]) -> None:
    """Replace the mart's rules with the file's rows (line, column → text), in the caller's transaction."""
    conn.execute("DELETE FROM finops.allocation_rule")
    with conn.cursor() as cur:
        cur.executemany(
            INSERT_RULE,
            [{**{column: row.get(column, "") for column in COLUMNS}, "line": line} for line, row in rows],
        )


def read_rules(conn: psycopg.Connection) -> tuple[AllocationRule, ...]:
    """The mart's rules, each parsed again; a row the parser refuses names its file line."""
    query = sql.SQL("SELECT {} FROM finops.allocation_rule ORDER BY line").format(
        sql.SQL(", ").join(map(sql.Identifier, ("line", *COLUMNS)))
    )
    rules = []
    with conn.cursor() as cur:
        cur.execute(query)
        for values in cur.fetchall():
            line, *texts = values
            row = {
                column: "" if value is None else str(value)
                for column, value in zip(COLUMNS, texts, strict=True)
            }
            try:
                rules.append(parse_rule(row))
            except ValueError as error:
                raise ReferenceDataError(f"allocation_rule (file line {line}): {error}") from None
    return tuple(rules)


def allocate_published_month(conn: psycopg.Connection, month: dt.date, run_id: str) -> AllocatedMonth:
    """Recompute the month's allocation from its fact_releve rows; replaces its fact_allocation and
    fact_releve_allocated rows. Runs in the caller's (publish) transaction."""
    rules = rules_of_month(read_rules(conn), month)
    known = conn.execute("SELECT application_id, group_id FROM finops.dim_application").fetchall()
    try:
        check_applications(rules, {application for application, _ in known})
    except ReferenceDataError as error:
        raise AllocationError(f"{month:%Y-%m}: {error}; nothing published") from None
    groups = {application: group for application, group in known if group is not None}
    lines, units = _direct_lines(conn, month)
    allocation = allocate_month(lines, rules, groups)
    conn.execute("DELETE FROM finops.fact_allocation WHERE period_month = %s", (month,))
    conn.execute("DELETE FROM finops.fact_releve_allocated WHERE period_month = %s", (month,))
    _copy_moves(conn, month, run_id, allocation)
    _copy_allocated(conn, month, run_id, lines, units, allocation)
    return AllocatedMonth(
        month,
        tuple(rule.label for rule in rules),
        len(allocation.moves),
        sum((move.amount for move in allocation.moves), ZERO),
        tuple(f"{skipped.rule.label}: {skipped.reason}" for skipped in allocation.skipped),
    )


def _direct_lines(conn: psycopg.Connection, month: dt.date) -> tuple[list[CostLine], dict[str, str]]:
    lines = []
    units: dict[str, str] = {}
    for application, product, family, domain, currency, unit, cost, quantity in conn.execute(
        DIRECT_LINES, (month,)
    ):
        lines.append(CostLine(application, product, family, domain, currency, cost, quantity))
        units.setdefault(product, unit)
    return lines, units


def _copy_moves(conn: psycopg.Connection, month: dt.date, run_id: str, allocation: MonthAllocation) -> None:
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY finops.fact_allocation (period_month, rule_id, rule_version, rule_sequence, "
            "allocated_method_id, "
            "source_application_id, allocated_resource_id, product_id, family_id, domain_id, currency, "
            "allocated_cost, run_id) FROM STDIN"
        ) as copy,
    ):
        for move in allocation.moves:
            copy.write_row(
                (
                    month,
                    move.rule.rule_id,
                    move.rule.version,
                    move.rule.sequence,
                    str(move.rule.method),
                    move.source_application,
                    move.target_application,
                    move.product_id,
                    move.family_id,
                    move.domain_id,
                    move.currency,
                    move.amount,
                    run_id,
                )
            )


def _copy_allocated(
    conn: psycopg.Connection,
    month: dt.date,
    run_id: str,
    direct: Sequence[CostLine],
    units: dict[str, str],
    allocation: MonthAllocation,
) -> None:
    """Every application × product × currency with a direct cost, a quantity or an allocated part."""
    direct_cost: dict[Key, Decimal] = defaultdict(Decimal)
    quantity: dict[Key, Decimal] = defaultdict(Decimal)
    received: dict[Key, Decimal] = defaultdict(Decimal)
    given: dict[Key, Decimal] = defaultdict(Decimal)
    products: dict[str, tuple[str, str]] = {}
    for line in direct:
        key = (line.application_id, line.product_id, line.currency)
        direct_cost[key] += line.amount
        quantity[key] += line.quantity
        products[line.product_id] = (line.family_id, line.domain_id)
    for move in allocation.moves:
        received[(move.target_application, move.product_id, move.currency)] += move.amount
        given[(move.source_application, move.product_id, move.currency)] += move.amount
    keys = sorted(set(direct_cost) | set(received) | set(given))
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY finops.fact_releve_allocated (period_month, application_id, product_id, family_id, "
            "domain_id, usage_unit, currency, usage_quantity, direct_cost, allocated_in, allocated_out, "
            "total_cost, run_id) "
            "FROM STDIN"
        ) as copy,
    ):
        for key in keys:
            application, product, currency = key
            family, domain = products[product]
            total = direct_cost[key] + received[key] - given[key]
            if total == 0 and quantity[key] == 0 and direct_cost[key] == 0:
                continue
            copy.write_row(
                (
                    month,
                    application,
                    product,
                    family,
                    domain,
                    units[product],
                    currency,
                    quantity[key],
                    direct_cost[key],
                    received[key],
                    given[key],
                    total,
                    run_id,
                )
            )
