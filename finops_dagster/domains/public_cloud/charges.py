"""What every public-cloud source hands the domain: charges already summed by the source's reader.

Bills are large (tens of millions of line items a month), so no source returns line items: each
reader sums them where they live (DuckDB over the export files, the provider's own grouping in a
cost API) down to one `ChargeGroup` per distinct combination of the fields that decide a relevé
(provider, service, account, tags, category, currency, pricing unit); the export files' reader
inserts its sums, already allocated, into the fold's DuckDB table (`ChargeTable`) instead. Only
what cannot be summed (a row that cannot be read) comes back one by one, as a `ChargeProblem`
with its reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import duckdb

from finops_dagster.reject_reasons import RejectReason


@dataclass(frozen=True)
class ChargeGroup:
    """Line items of one month that share every field the relevé depends on, summed.

    `tags` are the resource tags as the provider wrote them (keys not yet normalised), or, for a
    cost API grouped by the application tag, that one tag. `cost` is in `billing_currency`, the
    currency of the bill, before any conversion.
    """

    source: str
    provider: str
    service_name: str | None
    service_category: str | None
    charge_category: str | None
    billing_currency: str
    cost: Decimal
    line_items: int
    sku_id: str | None = None
    sub_account_id: str | None = None
    sub_account_name: str | None = None
    resource_group: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)
    pricing_quantity: Decimal | None = None
    pricing_unit: str | None = None
    application: str | None = None
    """The known application the source's application tag names, when the source resolved it."""
    tag_value: str | None = None
    """The application tag's value as written, when the source read it and it names no known application."""


@dataclass(frozen=True)
class ChargeProblem:
    """A line item (or a source's row) that cannot become part of a relevé, and why.

    `cost` and `currency` are kept whenever they could be read, so the reconciliation still
    accounts for the money of a row rejected for another reason.
    """

    source: str
    ref: str
    reason: str
    raw: dict[str, Any]
    cost: Decimal | None = None
    currency: str | None = None
    line_items: int = 1
    """How many rows this problem stands for (several when summed into one reject)."""
    code: RejectReason = field(kw_only=True)
    """The cause (`reason` holds the details)."""


RULE_FIELDS = ("sub_account_id", "sub_account_name", "resource_group", "provider", "service_name")
"""A charge's fields the public_cloud mapping rules may read, besides `tag` (the application tag's value)."""


@dataclass(frozen=True)
class Allocation:
    """How a charge finds its application: the value of the first application tag (keys in order)
    when it names a known application, else the first mapping rule that matches. A source that sums
    line items per application (the export files) allocates with it before summing; the domain's
    fold allocates the others' charges with the same."""

    keys: tuple[str, ...]
    applications: frozenset[str]
    by_rules: Callable[[Callable[[str], str | None]], str | None]
    rule_fields: frozenset[str] = frozenset(("tag", *RULE_FIELDS))
    """What the rules read (`tag` and RULE_FIELDS): a source summing charges for them keeps only these."""

    def resolve(self, tagged: str | None, fields: Mapping[str, str | None]) -> str | None:
        """The charge's application, or None when neither its tag nor a rule names a known one."""
        if tagged is not None and tagged.strip().upper() in self.applications:
            return tagged.strip().upper()
        values = {**fields, "tag": tagged}
        return self.by_rules(values.get)


@dataclass(frozen=True)
class ChargeTable:
    """The fold's DuckDB table of charges placed on applications (fold_queries.CREATE_ALLOCATED_CHARGES).

    A source that sums in DuckDB (the export files) inserts into it from its own scan, placing each
    charge with `allocation`, so a bill's line items never become Python objects. Its own work goes
    on a cursor of `connection` (temporary tables stay its own)."""

    allocation: Allocation
    connection: duckdb.DuckDBPyConnection
    name: str


@dataclass(frozen=True)
class SkippedFile:
    """A file of a configured location that holds nothing for the month, and why it was passed over."""

    path: str
    reason: str


@dataclass
class SourceMonth:
    """Everything one source said about one month."""

    groups: list[ChargeGroup] = field(default_factory=list)
    problems: list[ChargeProblem] = field(default_factory=list)
    skipped_files: list[SkippedFile] = field(default_factory=list)
    files_read: int = 0
    line_items: int = 0
    line_items_by_category: dict[str, int] | None = None
    """Line items per charge category, where the groups no longer say (the file sources sum them away)."""
    source_costs: dict[str, Decimal] | None = None
    """What the source holds for the month per billing currency, counted before any grouping, where
    the source can say (the files); otherwise the fold adds its groups and problems up."""
    unknown_application_tags: dict[str, int] = field(default_factory=dict)
    """Line items per application-tag value that named no known application and that no rule placed."""
    inserted_groups: int = 0
    """Charge groups the source inserted into the fold's `ChargeTable` rather than returned."""
    manifest: list[dict[str, Any]] = field(default_factory=list)
    """Each file read: real path, every route that reached it, identity, size, time, SHA-256."""
    ledger: list[dict[str, Any]] = field(default_factory=list)
    """Each file's independent count against what the reader made of its rows (ledger.FileLedger)."""
