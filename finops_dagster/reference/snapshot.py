"""The reference data a domain run reads from the mart: one consistent snapshot per run.

Domains read prices, products, rules and applications from the mart (what the reference assets
loaded), never from the files directly, so relevés are priced with exactly what the mart shows.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from finops_dagster.reference.catalog import MappingRule, Product, Rate


@dataclass(frozen=True)
class CompiledRule:
    rule_id: str
    field: str
    pattern: re.Pattern[str]
    application_id: str


@dataclass(frozen=True)
class ReferenceSnapshot:
    products: dict[str, Product]
    family_domains: dict[str, str]
    rates: dict[str, tuple[Rate, ...]]
    rules: tuple[CompiledRule, ...]
    applications: frozenset[str]

    def rate_for(self, product_id: str, month: dt.date) -> Rate | None:
        """The rate card line valid for the month, if any."""
        for rate in self.rates.get(product_id, ()):
            if rate.covers(month):
                return rate
        return None

    def domain_of(self, product: Product) -> str:
        return self.family_domains[product.family_id]

    def application_by_rules(self, value_of: Callable[[str], str | None]) -> str | None:
        """The first rule (by priority) whose pattern matches its field and names a known application.

        A rule's application may be a template such as `{application}`, filled from the pattern's
        named groups and upper-cased: one rule then serves a whole naming convention
        (`pay-012-prod` → `PAY-012`).
        """
        for rule in self.rules:
            value = value_of(rule.field)
            match = rule.pattern.search(value) if value else None
            if match is None:
                continue
            application = rule.application_id
            if "{" in application:
                try:
                    application = application.format(**match.groupdict()).strip().upper()
                except (KeyError, IndexError):
                    continue
            if application in self.applications:
                return application
        return None


def read_snapshot(conn: psycopg.Connection, domain_id: str) -> ReferenceSnapshot:
    """Products, rates, the domain's mapping rules (by priority) and known applications."""
    products = {
        row[0]: Product(*row)
        for row in conn.execute("SELECT product_id, family_id, label, usage_unit FROM finops.dim_product")
    }
    family_domains: dict[str, str] = dict(
        conn.execute("SELECT family_id, domain_id FROM finops.dim_family").fetchall()
    )
    rates: dict[str, list[Rate]] = {}
    for row in conn.execute(
        "SELECT product_id, valid_from, valid_to, unit_cost, currency, version FROM finops.rate_card "
        "ORDER BY product_id, valid_from"
    ):
        rates.setdefault(row[0], []).append(Rate(*row))
    rules = tuple(
        CompiledRule(rule.rule_id, rule.field, re.compile(rule.pattern), rule.application_id)
        for rule in (
            MappingRule(*row)
            for row in conn.execute(
                "SELECT rule_id, domain_id, field, pattern, application_id, priority "
                "FROM finops.application_mapping_rule WHERE domain_id = %s ORDER BY priority, rule_id",
                (domain_id,),
            )
        )
    )
    applications = frozenset(
        row[0] for row in conn.execute("SELECT application_id FROM finops.dim_application")
    )
    return ReferenceSnapshot(
        products=products,
        family_domains=family_domains,
        rates={product: tuple(items) for product, items in rates.items()},
        rules=rules,
        applications=applications,
    )
