"""Billing export files summed for a month with DuckDB, whatever the export's layout.

A month's export holds tens of millions of line items, so no row ever becomes a Python object:
DuckDB scans the files (CSV, gzipped CSV, Parquet; one or many per month) and sums the month's
line items by provider, service, sub-account, tags, charge category, billing currency and pricing
unit. Given the fold's `ChargeTable`, it then places those sums on applications and inserts them
there, still in DuckDB; without one it returns them as `ChargeGroup`s with their tags. Only rows
that cannot be read come back one by one, as rejects with their reason and the row as it was
written; a file that has such rows is read a second time for them, so a clean month is scanned once.

An `ExportLayout` says how one kind of export (FOCUS, the GCP billing export) names these fields
and what makes one of its rows unreadable; this module does the rest the same way for all.

A row belongs to the month of its period column. A row whose period cannot be read is a reject of
the first month its file holds (a provider's file normally holds a single month).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import glob
import json
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol, TypeVar

import duckdb

from finops_dagster.domains.public_cloud import duckdb_columns as col
from finops_dagster.domains.public_cloud import export_queries as q
from finops_dagster.domains.public_cloud.charges import (
    RULE_FIELDS,
    Allocation,
    ChargeGroup,
    ChargeProblem,
    ChargeTable,
    SkippedFile,
    SourceMonth,
)
from finops_dagster.domains.public_cloud.tags import normalized_key, tag_value
from finops_dagster.releve import next_month

EXPORT_SUFFIXES = (".csv", ".csv.gz", ".parquet")
UNKNOWN_PROVIDER = "unknown provider"
MONTH_PLACEHOLDER = "{month}"
"""In a configured location, the month being read (`/exports/aws/{month}/*.parquet` → `…/2026-10/…`):
files of other months are then not even opened."""
GLOB_CHARACTERS = ("*", "?", "[", "]", "{", "}")
FILES_PER_QUERY = 32
"""Files summed (or their tags resolved) by one query."""
DETAILED_REJECTS_PER_REASON = 1000
"""Unreadable rows kept one by one per file and reason; the rest of them become one summary reject."""

KEYS = (
    "provider",
    "service_name",
    "service_category",
    "charge_category",
    "sku_id",
    "sub_account_id",
    "sub_account_name",
    "resource_group",
    "tags",
    "currency",
    "pricing_unit",
)
"""What a charge group is keyed by: the first fields a layout selects, and DETAILED_GROUPS' keys."""
FIELDS = (*KEYS, "cost", "pricing_quantity", "period")
"""What a layout's `fields` select, in this order and under these names."""
RULE_ONLY_FIELDS = ("sub_account_id", "sub_account_name", "resource_group")
"""Keys only the mapping rules read (the others also make the product)."""


T = TypeVar("T")


class ExportFileError(RuntimeError):
    """An export file cannot be read at all (missing columns, unreadable file): the run fails."""


@dataclass(frozen=True)
class ExportFile:
    path: str
    columns: dict[str, str]
    """Column name → DuckDB type, as the file declares them (all text for CSV)."""

    @property
    def is_parquet(self) -> bool:
        return self.path.lower().endswith(".parquet")

    def has(self, column: str) -> bool:
        return column in self.columns

    def text(self, *names: str) -> str:
        """The first of these columns the file has, as trimmed text (several: coalesced); else NULL."""
        present = [col.text(name, self.columns[name]) for name in names if self.has(name)]
        if not present:
            return "NULL::VARCHAR"
        return present[0] if len(present) == 1 else f"coalesce({', '.join(present)})"

    def raw(self, *names: str) -> str:
        """Like `text`, without per-row trimming: for keys of the large exports, which the reader
        trims once per group after summing."""
        present = [col.raw(name, self.columns[name]) for name in names if self.has(name)]
        if not present:
            return "NULL::VARCHAR"
        return present[0] if len(present) == 1 else f"coalesce({', '.join(present)})"

    def number(self, name: str) -> str:
        return col.number(name, self.columns[name]) if self.has(name) else f"NULL::{col.DECIMAL}"

    def is_blank(self, name: str) -> str:
        return col.is_blank(name, self.columns[name]) if self.has(name) else "true"

    def not_a_number(self, name: str) -> str:
        return col.not_a_number(name, self.columns[name]) if self.has(name) else "false"

    def timestamp(self, name: str) -> str:
        return col.timestamp(name, self.columns[name]) if self.has(name) else "NULL::TIMESTAMP"

    def scan(self, *, numbered: bool = False) -> str:
        """The DuckDB table function reading this file (with Parquet's row numbers when `numbered`)."""
        if self.is_parquet:
            numbers = ", file_row_number = true" if numbered else ""
            return f"read_parquet({col.literal(self.path)}{numbers})"
        return (
            f"read_csv({col.literal(self.path)}, all_varchar = true, header = true, "
            "nullstr = ['NULL', ''], auto_detect = true)"
        )


class ExportLayout(Protocol):
    """How one kind of export names what a relevé needs."""

    @property
    def source(self) -> str:
        """The relevés' source name."""

    @property
    def description(self) -> str:
        """What the files are, for error messages."""

    def missing_columns(self, file: ExportFile) -> list[str]:
        """Columns this pipeline reads that the file lacks (empty when it can be read)."""

    def fields(self, file: ExportFile) -> str:
        """A select list producing FIELDS, in order, from one of the file's rows."""

    def problem(self, file: ExportFile) -> str:
        """A SQL expression: why the row cannot be read, or NULL."""

    def parse_tags(self, raw: str | None) -> dict[str, str]:
        """The row's tags (as selected in `fields`) as a mapping."""

    @property
    def tags_are_json(self) -> bool:
        """Whether the tags are a JSON object (braces optional) as `tags.parse_tags` reads them, so
        DuckDB can find the application tag itself (export_queries.RESOLVE_JSON_TAGS)."""


def export_files(patterns: Sequence[str]) -> list[str]:
    """Every export file the configured locations name: a directory (searched recursively) or a glob.

    A file whose path holds a glob character is refused: DuckDB would read the path as a pattern
    and could read other files in its place (`export[1].csv` matches `export1.csv`)."""
    found: set[str] = set()
    for pattern in patterns:
        if os.path.isdir(pattern):
            candidates: Iterator[str] = (str(p) for p in Path(pattern).rglob("*") if p.is_file())
        else:
            candidates = iter(glob.glob(pattern, recursive=True))
        found.update(path for path in candidates if path.lower().endswith(EXPORT_SUFFIXES))
    for path in found:
        if any(character in path for character in GLOB_CHARACTERS):
            raise ExportFileError(
                f"{path}: a file path with {' '.join(GLOB_CHARACTERS)} cannot be read unambiguously; "
                "rename the file or its folder"
            )
    return sorted(found)


def problem_case(checks: Sequence[tuple[str, str]]) -> str:
    """`CASE WHEN condition THEN reason … ELSE NULL END`: the first failing check names the problem."""
    cases = " ".join(f"WHEN {condition} THEN {reason}" for condition, reason in checks)
    return f"CASE {cases} ELSE NULL END"


class ExportReader:
    """The files of some configured locations, read for a month through one layout."""

    def __init__(
        self, layout: ExportLayout, paths: Sequence[str], setting: str, *, threads: int | None = None
    ) -> None:
        self.layout = layout
        self.paths = tuple(paths)
        self.setting = setting
        self.threads = threads

    def close(self) -> None:
        """Nothing stays open between months: each read opens its own in-memory DuckDB."""

    def read_month(self, month: dt.date, now: dt.datetime, into: ChargeTable | None = None) -> SourceMonth:
        """The month's line items of every file, summed; unreadable rows as rejects. Into the fold's
        table, allocated, when given `into`; else returned as groups per tag set."""
        paths = export_files([pattern.replace(MONTH_PLACEHOLDER, f"{month:%Y-%m}") for pattern in self.paths])
        if not paths:
            raise ExportFileError(
                f"{self.setting} matches no {self.layout.description} (.csv, .csv.gz, .parquet): "
                + ", ".join(self.paths)
            )
        result = SourceMonth()
        with self._connect(into) as conn:
            conn.execute("SET enable_progress_bar = false")
            _in_utc(conn)
            files: list[ExportFile] = []
            for path in paths:
                described = describe(conn, path, self.layout.description)
                if isinstance(described, SkippedFile):
                    result.skipped_files.append(described)
                    continue
                missing = self.layout.missing_columns(described)
                if missing:
                    raise ExportFileError(
                        f"{path} is not a {self.layout.description} this pipeline can read: "
                        f"missing column(s) {', '.join(missing)}"
                    )
                files.append(described)
            if files:
                try:
                    self._read(conn, files, month, into, result)
                except duckdb.Error as error:
                    raise ExportFileError(
                        f"{self.setting}: a {self.layout.description} of {month:%Y-%m} cannot be read: "
                        f"{_first_line(error)}"
                    ) from None
        return result

    def _connect(self, into: ChargeTable | None) -> duckdb.DuckDBPyConnection:
        """Its own connection, or a cursor on the fold's DuckDB (its temporary tables stay its own)."""
        conn = into.connection.cursor() if into is not None else duckdb.connect()
        if self.threads:
            conn.execute(f"SET threads = {int(self.threads)}")
        return conn

    def _read(
        self,
        conn: duckdb.DuckDBPyConnection,
        files: list[ExportFile],
        month: dt.date,
        into: ChargeTable | None,
        result: SourceMonth,
    ) -> None:
        conn.execute(q.CREATE_CHARGES)
        if into is not None:
            self._prepare_allocation(conn, into.allocation)
            parquet = [f"SELECT {self.layout.fields(f)} FROM {f.scan()}" for f in files if f.is_parquet]
            for selects in _batches(parquet):  # their tag sets first: one column of Parquet reads fast
                self._resolve_tags(conn, " UNION ALL ".join(selects), into.allocation.keys)
        for numbered in _batches(list(enumerate(files))):
            conn.execute(self._sum_files(numbered, into), _bounds(month))
        for (index,) in conn.execute(q.FILES_WITH_UNPLACED_ROWS).fetchall():
            self._place_unreadable_periods(conn, files[index], index, month)
        conn.execute(q.DROP_FILES_OUTSIDE_MONTH)
        contributed = {row[0] for row in conn.execute("SELECT DISTINCT file_index FROM charges").fetchall()}
        result.skipped_files.extend(
            SkippedFile(file.path, f"no line item in {month:%Y-%m}")
            for index, file in enumerate(files)
            if index not in contributed
        )
        result.files_read = len(contributed)
        if into is None:
            result.groups.extend(self._detailed_groups(conn))
        else:
            result.line_items_by_category = dict(conn.execute(q.CATEGORY_COUNTS).fetchall())
            result.inserted_groups, result.unknown_application_tags = self._insert_allocated(conn, into)
        result.line_items, result.source_costs = self._source_totals(conn)
        for (index,) in conn.execute(q.PROBLEM_FILES).fetchall():
            result.problems.extend(self._problems(conn, files[index], index, month))

    @staticmethod
    def _source_totals(conn: duckdb.DuckDBPyConnection) -> tuple[int, dict[str, Decimal]]:
        """What the files hold for the month, counted straight from the scan, before any grouping or
        allocation: the reconciliation compares relevés and rejects with this."""
        counted = conn.execute(q.LINE_ITEMS).fetchone()
        costs = {currency: Decimal(cost) for currency, cost in conn.execute(q.SOURCE_COSTS).fetchall()}
        return (int(counted[0]) if counted and counted[0] is not None else 0), costs

    def _place_unreadable_periods(
        self, conn: duckdb.DuckDBPyConnection, file: ExportFile, index: int, month: dt.date
    ) -> None:
        """Rows whose period cannot be read belong to the first month the rest of their file holds
        (a provider's file normally holds one month): rejects of that month only, never of every
        month read. A file with no readable period at all cannot be placed: it fails the read."""
        row = conn.execute(
            f"SELECT min(period) FROM (SELECT {self.layout.fields(file)} FROM {file.scan()}) "
            "WHERE period IS NOT NULL"
        ).fetchone()
        first = row[0] if row else None
        if first is None:
            raise ExportFileError(
                f"{file.path}: no row has a period that can be read as a date, so its rows belong to no "
                f"month; check the file's period columns ({self.layout.description})"
            )
        if (first.year, first.month) != (month.year, month.month):
            conn.execute("DELETE FROM charges WHERE file_index = $index AND NOT in_month", {"index": index})

    def _sum_files(self, files: Sequence[tuple[int, ExportFile]], into: ChargeTable | None) -> str:
        """One scan of some files (with their index): their rows of the month (and those whose
        period cannot be read) summed by file and by every field a relevé depends on, without
        per-row work a group can do once. One query for them all keeps both of DuckDB's threads
        busy to the end, where a query per file leaves one idle as each file finishes.

        When summing for an allocation, fields no mapping rule reads are left out, and a Parquet
        file's rows whose tag set names a known application (resolved just before) are summed per
        application, their tags and rule fields dropped: far fewer groups to make and to place."""
        rows = " UNION ALL ".join(self._file_rows(file, index, into) for index, file in files)
        return f"""
            INSERT INTO charges
            SELECT *, {q.VALID_CURRENCY} FROM (
                SELECT file_index, problem, period IS NOT NULL, application, {", ".join(KEYS)},
                       CAST(sum(cost) AS {col.DECIMAL}), count(*), count(pricing_quantity),
                       CAST(sum(pricing_quantity) AS {col.DECIMAL})
                FROM ({rows})
                WHERE (period >= $start AND period < $end) OR period IS NULL
                GROUP BY ALL
            )
        """

    def _file_rows(self, file: ExportFile, index: int, into: ChargeTable | None) -> str:
        """A file's rows as `_sum_files` sums them."""
        read = f"SELECT {self.layout.problem(file)} AS problem, {self.layout.fields(file)} FROM {file.scan()}"
        placed_by_tag = into is not None and file.is_parquet
        reads = into.allocation.rule_fields if into is not None else RULE_ONLY_FIELDS

        def key(name: str) -> str:
            if name in RULE_ONLY_FIELDS and name not in reads:
                return f"NULL::VARCHAR AS {name}"
            if placed_by_tag and name in (*RULE_ONLY_FIELDS, "tags"):
                return f"CASE WHEN a.application_id IS NULL THEN f.{name} END AS {name}"
            return f"f.{name}"

        tag_join = "LEFT JOIN tag_applications AS a ON a.tags = f.tags" if placed_by_tag else ""
        application = "a.application_id" if placed_by_tag else "NULL::VARCHAR"
        return f"""
            SELECT {index} AS file_index, f.problem, f.period, {application} AS application,
                   {", ".join(key(name) for name in KEYS)}, f.cost, f.pricing_quantity
            FROM ({read}) AS f
            {tag_join}
        """

    def _detailed_groups(self, conn: duckdb.DuckDBPyConnection) -> list[ChargeGroup]:
        groups = []
        tags: dict[str | None, dict[str, str]] = {}
        for *fields, cost, line_items, quantity in conn.execute(q.DETAILED_GROUPS).fetchall():
            values = dict(zip(KEYS, fields, strict=True))
            raw_tags = values.pop("tags")
            if raw_tags not in tags:
                tags[raw_tags] = self.layout.parse_tags(raw_tags)
            groups.append(
                ChargeGroup(
                    source=self.layout.source,
                    provider=values.pop("provider") or UNKNOWN_PROVIDER,
                    billing_currency=values.pop("currency"),
                    cost=Decimal(cost),
                    line_items=line_items,
                    tags=tags[raw_tags],
                    pricing_quantity=None if quantity is None else Decimal(quantity),
                    **values,
                )
            )
        return groups

    def _prepare_allocation(self, conn: duckdb.DuckDBPyConnection, allocation: Allocation) -> None:
        for statement in q.CREATE_TAG_TABLES:
            conn.execute(statement)
        keys = list(dict.fromkeys(normalized_key(key) for key in allocation.keys))
        conn.execute(q.CREATE_WANTED_KEYS, {"keys": keys, "ranks": list(range(len(keys)))})
        conn.execute(q.CREATE_KNOWN, {"applications": sorted(allocation.applications)})

    def _resolve_tags(self, conn: duckdb.DuckDBPyConnection, source: str, keys: Sequence[str]) -> None:
        """The application tag of each tag set of `source` not seen yet: in DuckDB where the tags are
        JSON, in Python for the rest (each distinct tag set once, never a line item)."""
        conn.execute(q.new_tags(source))
        if self.layout.tags_are_json:
            conn.execute(q.RESOLVE_JSON_TAGS)
        unresolved = [row[0] for row in conn.execute(q.UNRESOLVED_TAGS).fetchall()]
        if unresolved:
            values = [tag_value(self.layout.parse_tags(raw), keys) for raw in unresolved]
            conn.execute(q.INSERT_TAG_VALUES, {"tags": unresolved, "values": values})
        conn.execute(q.REFRESH_TAG_APPLICATIONS)

    def _insert_allocated(
        self, conn: duckdb.DuckDBPyConnection, into: ChargeTable
    ) -> tuple[int, dict[str, int]]:
        """The month's charges, each with its application, inserted into the fold's table, allocated
        inside DuckDB: Python sees each distinct combination the rules read once (and the tag sets
        DuckDB cannot read), never a line item. Returns how many rows it inserted, and the
        application-tag values that named no known application and that no rule placed (the 20
        with most line items: a tagging or referential problem for the FinOps team to fix)."""
        allocation = into.allocation
        self._resolve_tags(conn, q.UNPLACED_TAGS, allocation.keys)
        placed: dict[tuple[str | None, ...], str | None] = {}
        unknown: Counter[str] = Counter()
        for *fields, tag, line_items in conn.execute(q.rule_inputs(allocation.rule_fields)).fetchall():
            combination = tuple(fields)
            if combination not in placed:
                tagged, *read = combination
                placed[combination] = allocation.resolve(tagged, dict(zip(RULE_FIELDS, read, strict=True)))
            if placed[combination] is None and tag is not None:
                unknown[tag] += line_items
        ruled = {name: [combination[i] for combination in placed] for i, name in enumerate(q.RULED_COLUMNS)}
        conn.execute(q.CREATE_RULED, {**ruled, "application": list(placed.values())})
        row = conn.execute(
            q.insert_allocated(into.name, allocation.rule_fields),
            {"source": self.layout.source, "unknown_provider": UNKNOWN_PROVIDER},
        ).fetchone()
        most = sorted(unknown.items(), key=lambda item: (-item[1], item[0]))[:20]
        return (int(row[0]) if row else 0), dict(most)

    def _problems(
        self, conn: duckdb.DuckDBPyConnection, file: ExportFile, index: int, month: dt.date
    ) -> list[ChargeProblem]:
        """The unreadable rows of one file for the month, each with the row as written (up to
        DETAILED_REJECTS_PER_REASON per reason, the rest summed into one reject per reason and
        currency, so a file of bad rows never becomes millions of Python objects)."""
        row_number = "file_row_number + 1" if file.is_parquet else "row_number() OVER ()"
        placed = conn.execute(q.HOLDS_UNPLACED_ROWS, {"index": index}).fetchone()
        unplaced = "period IS NULL OR " if placed and placed[0] else ""
        query = f"""
            CREATE OR REPLACE TEMP TABLE unreadable AS
            WITH raw AS (
                SELECT {row_number} AS row_number, {self.layout.problem(file)} AS row_problem,
                       {self.layout.fields(file)}, CAST(to_json(t) AS VARCHAR) AS payload
                FROM {file.scan(numbered=True)} AS t
            ), checked AS (SELECT *, coalesce(row_problem, {q.CURRENCY_PROBLEM}) AS problem FROM raw)
            SELECT row_number, problem, cost, upper(trim(currency)) AS currency, payload,
                   row_number() OVER (PARTITION BY problem ORDER BY row_number) AS rank
            FROM checked
            WHERE problem IS NOT NULL AND ({unplaced}(period >= $start AND period < $end))
        """
        threads = conn.execute("SELECT current_setting('threads')").fetchone()
        conn.execute("SET threads = 1")  # a CSV's row numbers follow the file's order only on one thread
        try:
            conn.execute(query, _bounds(month))
        finally:
            conn.execute(f"SET threads = {int(threads[0]) if threads else 1}")
        rows = conn.execute(q.DETAILED_PROBLEMS, {"limit": DETAILED_REJECTS_PER_REASON}).fetchall()
        problems = []
        for row_number, reason, cost, currency, payload in rows:
            readable_currency = currency if _is_currency(currency) else None
            problems.append(
                ChargeProblem(
                    source=self.layout.source,
                    ref=f"{file.path}#row {row_number}",
                    reason=reason,
                    raw=_json_object(payload),
                    cost=None if cost is None or readable_currency is None else Decimal(cost),
                    currency=readable_currency,
                )
            )
        for reason, currency, count, cost, first, last in conn.execute(
            q.SUMMARISED_PROBLEMS, {"limit": DETAILED_REJECTS_PER_REASON}
        ).fetchall():
            readable_currency = currency if _is_currency(currency) else None
            problems.append(
                ChargeProblem(
                    source=self.layout.source,
                    ref=f"{file.path}#rows {first}-{last}",
                    reason=f"{reason} ({count} more rows like this one, summed)",
                    raw={"rows": count, "first_row": first, "last_row": last},
                    cost=None if cost is None or readable_currency is None else Decimal(cost),
                    currency=readable_currency,
                    line_items=count,
                )
            )
        return problems


def describe(conn: duckdb.DuckDBPyConnection, path: str, description: str) -> ExportFile | SkippedFile:
    """A file's columns, or why it is passed over (empty)."""
    if os.path.getsize(path) == 0:
        return SkippedFile(path, "empty file")
    file = ExportFile(path, {})
    try:
        described = conn.execute(f"DESCRIBE SELECT * FROM {file.scan()}").fetchall()
    except duckdb.Error as error:
        raise ExportFileError(f"{path} cannot be read as a {description}: {_first_line(error)}") from None
    columns = {name: kind for name, kind, *_ in described if name != "file_row_number"}
    if not file.is_parquet and list(columns) == ["column0"]:
        return SkippedFile(path, "empty file")
    return ExportFile(path, columns)


def _in_utc(conn: duckdb.DuckDBPyConnection) -> None:
    """Read every date-time as an instant in UTC, whatever the host's time zone: a line item at
    `2026-03-01T00:00:00Z` is March's everywhere. Without DuckDB's time-zone support (ICU) its
    sessions are in UTC already."""
    with contextlib.suppress(duckdb.Error):
        conn.execute("SET TimeZone = 'UTC'")


def _batches(items: list[T]) -> Iterator[list[T]]:
    """Files a query reads together: a month of many small files stays a few queries, each of a
    size DuckDB plans quickly."""
    for start in range(0, len(items), FILES_PER_QUERY):
        yield items[start : start + FILES_PER_QUERY]


def _bounds(month: dt.date) -> dict[str, dt.datetime]:
    return {
        "start": dt.datetime(month.year, month.month, 1),
        "end": dt.datetime.combine(next_month(month), dt.time()),
    }


def _is_currency(value: object) -> bool:
    return isinstance(value, str) and len(value) == 3 and value.isascii() and value.isalpha()


def _json_object(payload: str | None) -> dict[str, Any]:
    if payload is None:
        return {}
    value = json.loads(payload)
    return value if isinstance(value, dict) else {"value": value}


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
