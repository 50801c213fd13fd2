"""Allocation rules as data (reference/data/allocation_rules.csv), valid by month like the rate cards.

A rule takes a source application's cost (optionally only a domain's, a family's or a product's) and
gives it to targets: listed applications, an application group's members, or every application with
cost in a domain or a family. The method says how: an even split, in proportion to each target's own
cost, by fixed percentages, or in proportion to each target's quantity of a product. Rules of a month
apply one after the other, by `sequence` then `rule_id`, each on what the rules before it left.

The file is `reference/data/allocation_rules.csv`, or the one FINOPS_ALLOCATION_RULES names (the demo
ships its own); no file means no rule. The reference asset loads it into `finops.allocation_rule` and
the publish reads the month's rules from there, parsed again by `parse_rule`.
"""

from __future__ import annotations

import datetime as dt
import enum
import itertools
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from finops_dagster.reference.catalog import (
    DATA_DIR,
    Catalog,
    ReferenceDataError,
    csv_rows,
    month_value,
    parse_csv,
    required_value,
)
from finops_dagster.settings import SettingError

RULES_FILE = "allocation_rules.csv"
RULES_SETTING = "FINOPS_ALLOCATION_RULES"
COLUMNS = (
    "rule_id",
    "version",
    "sequence",
    "valid_from",
    "valid_to",
    "source_application",
    "source_domain",
    "source_family",
    "source_product",
    "target_kind",
    "targets",
    "method",
    "basis_product",
)
HUNDRED = Decimal(100)


class TargetKind(enum.StrEnum):
    APPLICATIONS = "applications"
    GROUP = "group"
    DOMAIN = "domain"
    FAMILY = "family"


class Method(enum.StrEnum):
    EVEN = "even"
    PROPORTIONAL = "proportional"
    FIXED = "fixed"
    QUANTITY = "quantity"


@dataclass(frozen=True)
class AllocationRule:
    rule_id: str
    version: str
    sequence: int
    valid_from: dt.date
    valid_to: dt.date | None
    source_application: str
    source_domain: str | None
    source_family: str | None
    source_product: str | None
    target_kind: TargetKind
    targets: tuple[str, ...]
    method: Method
    percentages: tuple[tuple[str, Decimal], ...] = ()
    basis_product: str | None = None

    def covers(self, month: dt.date) -> bool:
        return self.valid_from <= month and (self.valid_to is None or month < self.valid_to)

    @property
    def label(self) -> str:
        return f"{self.rule_id} ({self.version})"


def _optional(row: dict[str, str], column: str) -> str | None:
    return row.get(column) or None


def _percentages(raw: str) -> tuple[tuple[str, Decimal], ...]:
    shares = []
    for item in raw.split(";"):
        match = re.fullmatch(r"\s*([^=\s]+)\s*=\s*([0-9]+(?:\.[0-9]+)?)\s*", item)
        if not match:
            raise ValueError(f"targets item {item!r} is not APPLICATION=PERCENT")
        shares.append((match.group(1), Decimal(match.group(2))))
    if sum(share for _, share in shares) != HUNDRED:
        raise ValueError(f"fixed percentages add up to {sum(share for _, share in shares)}, not 100")
    return tuple(shares)


def parse_rule(row: dict[str, str]) -> AllocationRule:
    """One row of the file (column → text) as a rule; ValueError saying what is wrong."""
    valid_to = _optional(row, "valid_to")
    method = Method(required_value(row, "method"))
    kind = TargetKind(required_value(row, "target_kind"))
    raw_targets = required_value(row, "targets")
    if method is Method.FIXED and kind is not TargetKind.APPLICATIONS:
        raise ValueError("the fixed method needs target_kind applications (APPLICATION=PERCENT;…)")
    percentages = _percentages(raw_targets) if method is Method.FIXED else ()
    targets = (
        tuple(application for application, _ in percentages)
        if percentages
        else tuple(item.strip() for item in raw_targets.split(";") if item.strip())
    )
    if kind is not TargetKind.APPLICATIONS and len(targets) != 1:
        raise ValueError(f"target_kind {kind} names exactly one {kind}")
    basis = _optional(row, "basis_product")
    if (method is Method.QUANTITY) != (basis is not None):
        raise ValueError("basis_product is required by the quantity method, and only by it")
    rule = AllocationRule(
        rule_id=required_value(row, "rule_id"),
        version=required_value(row, "version"),
        sequence=int(required_value(row, "sequence")),
        valid_from=month_value(required_value(row, "valid_from"), "valid_from"),
        valid_to=month_value(valid_to, "valid_to") if valid_to else None,
        source_application=required_value(row, "source_application"),
        source_domain=_optional(row, "source_domain"),
        source_family=_optional(row, "source_family"),
        source_product=_optional(row, "source_product"),
        target_kind=kind,
        targets=targets,
        method=method,
        percentages=percentages,
        basis_product=basis,
    )
    if rule.valid_to is not None and rule.valid_to <= rule.valid_from:
        raise ValueError("valid_to must be after valid_from")
    if rule.source_application in rule.targets:
        raise ValueError(f"{rule.source_application} is both the source and a target")
    return rule


def rules_file(directory: Path = DATA_DIR) -> Path:
    """The rule file: FINOPS_ALLOCATION_RULES if set (it must exist), else the reference directory's."""
    configured = os.environ.get(RULES_SETTING, "").strip()
    if not configured:
        return directory / RULES_FILE
    path = Path(configured)
    if not path.is_file():
        raise SettingError(f"{RULES_SETTING}: {configured} is not a file")
    return path


def load_rules(directory: Path = DATA_DIR) -> tuple[AllocationRule, ...]:
    """The rules of the file, checked one by one (file and line in every error); none if no file."""
    return load_rules_file(directory / RULES_FILE)


def load_rules_file(path: Path) -> tuple[AllocationRule, ...]:
    """As `load_rules`, for the file at `path`."""
    if not path.exists():
        return ()
    rules = parse_csv(path, COLUMNS, parse_rule)
    _refuse_overlapping_versions(rules, path.name)
    return rules


def read_rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    """The file's rows as text with their line numbers (what the mart stores); none if no file."""
    if not path.exists():
        return []
    return list(csv_rows(path, COLUMNS))


def check_against_catalog(
    rules: Sequence[AllocationRule], catalog: Catalog, discovered_products: Iterable[str] = ()
) -> None:
    """Every domain, family and product a rule names exists (the file names the rule); products a
    source discovered (a provider's services, in the mart only) count as known."""
    domains = {domain.domain_id for domain in catalog.domains}
    families = {family.family_id for family in catalog.families}
    products = {product.product_id for product in catalog.products} | set(discovered_products)
    for rule in rules:
        named = {
            "source_domain": (rule.source_domain, domains),
            "source_family": (rule.source_family, families),
            "source_product": (rule.source_product, products),
            "basis_product": (rule.basis_product, products),
        }
        if rule.target_kind is TargetKind.DOMAIN:
            named["targets"] = (rule.targets[0], domains)
        if rule.target_kind is TargetKind.FAMILY:
            named["targets"] = (rule.targets[0], families)
        for column, (value, known) in named.items():
            if value is not None and value not in known:
                raise ReferenceDataError(f"{RULES_FILE}: rule {rule.label}: unknown {column} {value!r}")


def check_applications(rules: Sequence[AllocationRule], applications: set[str]) -> None:
    """The source and every listed target application exist (the file names the rule)."""
    for rule in rules:
        unknown = [
            application
            for application in (rule.source_application, *rule.targets)
            if rule.target_kind is TargetKind.APPLICATIONS or application == rule.source_application
            if application not in applications
        ]
        if unknown:
            raise ReferenceDataError(
                f"{RULES_FILE}: rule {rule.label}: unknown application(s) {', '.join(unknown)}"
            )


def rules_of_month(rules: Sequence[AllocationRule], month: dt.date) -> list[AllocationRule]:
    """The rules valid for the month, in the order they apply."""
    return sorted(
        (rule for rule in rules if rule.covers(month)), key=lambda rule: (rule.sequence, rule.rule_id)
    )


def _refuse_overlapping_versions(rules: Sequence[AllocationRule], file_name: str) -> None:
    by_id: dict[str, list[AllocationRule]] = {}
    for rule in rules:
        by_id.setdefault(rule.rule_id, []).append(rule)
    for rule_id, versions in by_id.items():
        ordered = sorted(versions, key=lambda rule: rule.valid_from)
        for earlier, later in itertools.pairwise(ordered):
            if earlier.valid_to is None or earlier.valid_to > later.valid_from:
                raise ReferenceDataError(
                    f"{file_name}: rule {rule_id}: versions {earlier.version} and {later.version} overlap"
                )
