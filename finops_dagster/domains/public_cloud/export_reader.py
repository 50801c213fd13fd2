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
import json
import os
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Protocol, TypeVar

import duckdb

from finops_dagster.domains.public_cloud import duckdb_columns as col
from finops_dagster.domains.public_cloud import export_queries as q
from finops_dagster.domains.public_cloud import manifest
from finops_dagster.domains.public_cloud.charges import (
    RULE_FIELDS,
    Allocation,
    ChargeGroup,
    ChargeProblem,
    ChargeTable,
    SkippedFile,
    SourceMonth,
)
from finops_dagster.domains.public_cloud.ledger import FileLedger
from finops_dagster.domains.public_cloud.manifest import FoundFile, IndependentCount, ManifestError
from finops_dagster.domains.public_cloud.tags import normalized_key, tag_value
from finops_dagster.partitions import FIRST_MONTH
from finops_dagster.reject_reasons import RejectReason
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
LINE_LIMIT = 10**10
"""The largest amount one line item may carry: the fold converts sums exactly up to 10^10 in the
reporting currency, so a line beyond is a reject (its own, with its amount) rather than a month
that cannot be computed."""
TRUNCATED = "the file ends inside this row (no line break after it): its values may be cut"
NUL_BYTE = "the row holds a NUL byte"
CSV_ERRORS = {
    "MISSING COLUMNS": "the row has fewer columns than the header (a ragged or cut row)",
    "TOO MANY COLUMNS": "the row has more columns than the header (a ragged row)",
    "UNQUOTED VALUE": "a value holds a quote it does not close",
    "LINE SIZE OVER MAXIMUM": "the line is longer than the reader accepts",
    "INVALID ENCODING": "the row holds bytes that are not UTF-8",
    "INVALID UNICODE": "the row holds bytes that are not UTF-8",
}
"""DuckDB's structural CSV errors → the reason of the row's reject."""

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
    count: IndependentCount | None = None
    """What the independent pass found in the file (NUL bytes, a missing last line break)."""
    ends_inside_row: bool = False
    """The file ends without a line break inside a row that has all its columns: its last row
    DuckDB reads is cut."""

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

    def scan(self, *, numbered: bool = False, rejects: str | None = None) -> str:
        """The DuckDB table function reading this file (with Parquet's row numbers when `numbered`).

        CSV is read as the bills write it (comma, double quote) with the columns of its header as
        the independent pass read it, never a dialect or header guessed from a sample. A row
        DuckDB cannot split against the header (ragged, cut, not UTF-8, too long) is left out of
        the rows and, with `rejects` (a table name), recorded there with its line, so it becomes a
        reject instead of stopping the whole read."""
        if self.is_parquet:
            numbers = ", file_row_number = true" if numbered else ""
            return f"read_parquet({col.literal(self.path)}{numbers})"
        errors = (
            f"store_rejects = true, rejects_table = {col.literal(rejects)}, "
            f"rejects_scan = {col.literal(rejects + '_scan')}"
            if rejects
            else "ignore_errors = true"
        )
        columns = ", ".join(f"{col.literal(name)}: 'VARCHAR'" for name in self.columns)
        return (
            f"read_csv({col.literal(self.path)}, header = true, delim = ',', quote = '\"', escape = '\"', "
            f"nullstr = ['NULL', ''], auto_detect = false, columns = {{{columns}}}, "
            f"max_line_size = {int(manifest.MAX_LINE_BYTES)}, {errors})"
        )

    def row_text(self) -> str:
        """Every column of a row as one text, to look for bytes no column may hold."""
        parts = ", ".join(f"coalesce({col.raw(name, kind)}, '')" for name, kind in self.columns.items())
        return f"concat({parts})" if parts else "''"


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

    def ledger_cost_column(self, file: ExportFile) -> str | None:
        """The one column whose numbers are the line item's cost, for the file ledger's independent
        sum; None when the cost is computed from several columns."""


def export_files(patterns: Sequence[str]) -> list[str]:
    """Every export file the configured locations name (a directory, searched recursively, or a
    glob), each once however many routes reach it (manifest.find_files), by its real path."""
    found = _found_files(patterns)
    return [file.real_path for file in found]


def _found_files(patterns: Sequence[str]) -> list[FoundFile]:
    """The files of the locations, once each. A file whose path holds a glob character is refused:
    DuckDB would read the path as a pattern and could read other files in its place
    (`export[1].csv` matches `export1.csv`)."""
    try:
        found = manifest.find_files(patterns, EXPORT_SUFFIXES)
    except ManifestError as error:
        raise ExportFileError(str(error)) from None
    for file in found:
        if any(character in file.real_path for character in GLOB_CHARACTERS):
            raise ExportFileError(
                f"{file.real_path}: a file path with {' '.join(GLOB_CHARACTERS)} cannot be read "
                "unambiguously; rename the file or its folder"
            )
    return found


ROW_PROBLEM_CODES: tuple[tuple[re.Pattern[str], RejectReason], ...] = (
    (
        re.compile("|".join(map(re.escape, (TRUNCATED, NUL_BYTE, *CSV_ERRORS.values())))),
        RejectReason.MALFORMED_ROW,
    ),
    (re.compile(r"^\S+ is empty$"), RejectReason.MISSING_COST),
    (re.compile(r" is beyond what one line item may carry"), RejectReason.AMOUNT_OUT_OF_RANGE),
    (re.compile(r" is not an ISO 4217 code$"), RejectReason.INVALID_CURRENCY),
    (
        re.compile(
            r" is not (a|an ISO 8601) date$| is more than a year from | is outside the plausible window"
        ),
        RejectReason.INVALID_PERIOD,
    ),
    (re.compile(r" is not a number$| has an amount that is not a number$"), RejectReason.INVALID_AMOUNT),
)
"""The code of a row problem the readers' SQL words (the layouts' `problem` checks, CURRENCY_PROBLEM
and `_checked_rows`), by the fixed part of its wording; first match wins."""


def row_problem_code(reason: str) -> RejectReason:
    """The cause of an unreadable row of a bill file. A wording no pattern knows is a malformed row:
    the row could not be read, whatever the layout said of it."""
    for pattern, code in ROW_PROBLEM_CODES:
        if pattern.search(reason):
            return code
    return RejectReason.MALFORMED_ROW


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
        self._surveyed: dict[tuple[int, int, int, int], manifest.Surveyed] = {}

    def close(self) -> None:
        """Nothing stays open between months: each read opens its own in-memory DuckDB."""

    def read_month(self, month: dt.date, now: dt.datetime, into: ChargeTable | None = None) -> SourceMonth:
        """The month's line items of every file, summed; unreadable rows as rejects. Into the fold's
        table, allocated, when given `into`; else returned as groups per tag set. Each file is read
        once however many routes reach it, listed in the result's manifest and held to its
        independent count in the result's ledger."""
        found = _found_files([pattern.replace(MONTH_PLACEHOLDER, f"{month:%Y-%m}") for pattern in self.paths])
        if not found:
            raise ExportFileError(
                f"{self.setting} matches no {self.layout.description} (.csv, .csv.gz, .parquet): "
                + ", ".join(self.paths)
            )
        result = SourceMonth()
        with self._connect(into) as conn, ThreadPoolExecutor(max_workers=1) as pool:
            conn.execute("SET enable_progress_bar = false")
            _in_utc(conn)
            surveys = {
                one.real_path: pool.submit(self._survey, one)
                for one in found
                if one.real_path.lower().endswith(".parquet")
            }
            files: list[ExportFile] = []
            for one in found:
                if one.real_path not in surveys:
                    surveys[one.real_path] = _done(self._survey(one))
                count = (
                    None
                    if one.real_path.lower().endswith(".parquet")
                    else surveys[one.real_path].result().count
                )
                described = describe(conn, one.real_path, self.layout.description, count)
                if isinstance(described, SkippedFile):
                    result.skipped_files.append(described)
                    continue
                missing = self.layout.missing_columns(described)
                if missing:
                    raise ExportFileError(
                        f"{one.real_path} is not a {self.layout.description} this pipeline can read: "
                        f"missing column(s) {', '.join(missing)}"
                    )
                files.append(
                    ExportFile(
                        described.path, described.columns, count, count is not None and count.ends_inside_row
                    )
                )
            shares: dict[int, _Shares] = {}
            if files:
                try:
                    shares = self._read(conn, files, month, now, into, result)
                except duckdb.Error as error:
                    raise self._unreadable(conn, files, month, now, error) from None
            surveyed = {path: future.result() for path, future in surveys.items()}
            result.manifest = [surveyed[one.real_path].entry.as_json() for one in found]
            result.ledger = [
                self._file_ledger(file, surveyed[file.path].count, shares.get(index))
                for index, file in enumerate(files)
            ]
        for one in found:
            try:
                manifest.verify_unchanged(one)
            except ManifestError as error:
                raise ExportFileError(str(error)) from None
        return result

    def _unreadable(
        self,
        conn: duckdb.DuckDBPyConnection,
        files: Sequence[ExportFile],
        month: dt.date,
        now: dt.datetime,
        error: duckdb.Error,
    ) -> ExportFileError:
        """The error of a read that failed, naming the file that fails when read alone, every column
        it reads touched (the scan reads many files in one query, and DuckDB's message does not
        always name one)."""
        bounds = _bounds(month, now)
        for file in files:
            query = f"SELECT max(length(CAST(COLUMNS(*) AS VARCHAR))) FROM ({self._checked_rows(file)})"
            try:
                conn.execute(query, _used(query, bounds)).fetchone()
            except duckdb.Error as cause:
                return ExportFileError(
                    f"{file.path}: a {self.layout.description} of {month:%Y-%m} cannot be read: "
                    f"{_first_line(cause)}"
                )
        listed = ", ".join(file.path for file in files[:5]) + (
            f" (+{len(files) - 5} more)" if len(files) > 5 else ""
        )
        return ExportFileError(
            f"{self.setting}: a {self.layout.description} of {month:%Y-%m} cannot be read ({listed}): "
            f"{_first_line(error)}"
        )

    def _survey(self, found: FoundFile) -> manifest.Surveyed:
        """The file's manifest entry and independent count; once per file and version for all the
        months this reader reads (the nightly run reads two months from the same locations). A
        Parquet file's runs on a thread of its own while the reader scans (hashing and DuckDB both
        release the GIL), with its own DuckDB connection."""
        key = (found.device, found.inode, found.size, found.mtime_ns)
        known = self._surveyed.get(key)
        if known is not None:
            return manifest.Surveyed(replace(known.entry, routes=tuple(found.routes)), known.count)

        def cost_column(columns: Sequence[str]) -> str | None:
            return self.layout.ledger_cost_column(
                ExportFile(found.real_path, {name: "VARCHAR" for name in columns})
            )

        try:
            with duckdb.connect() as own:
                own.execute("SET threads = 1")
                surveyed = manifest.survey(found, cost_column, own)
        except ManifestError as error:
            raise ExportFileError(str(error)) from None
        self._surveyed[key] = surveyed
        return surveyed

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
        now: dt.datetime,
        into: ChargeTable | None,
        result: SourceMonth,
    ) -> dict[int, _Shares]:
        """Reads the files into `result`; returns what became of each file's rows (its index → shares)."""
        conn.execute(q.CREATE_CHARGES)
        conn.execute(q.CREATE_FILE_MONTHS)
        bounds = _bounds(month, now)
        if into is not None:
            self._prepare_allocation(conn, into.allocation)
            parquet = [f"SELECT {self.layout.fields(f)} FROM {f.scan()}" for f in files if f.is_parquet]
            for selects in _batches(parquet):  # their tag sets first: one column of Parquet reads fast
                self._resolve_tags(conn, " UNION ALL ".join(selects), into.allocation.keys)
        structural: dict[int, list[tuple[int, str, str]]] = {}
        for numbered in _batches(list(enumerate(files))):
            single = any(file.ends_inside_row for _, file in numbered)
            with _one_thread(conn, single):
                query = self._sum_files(numbered, into)
                conn.execute(query, _used(query, bounds))
            structural.update(self._refused_lines(conn, numbered))
        skipped_rows = {index: [line - 1 for line, _, _ in lines] for index, lines in structural.items()}
        conn.execute(q.MOVE_OTHER_MONTHS)
        conn.execute(q.DROP_OTHER_MONTHS)
        unplaced = {index for (index,) in conn.execute(q.FILES_WITH_UNPLACED_ROWS).fetchall()}
        for index in sorted(unplaced | {i for i, lines in structural.items() if lines}):
            elsewhere = self._place_unreadable_periods(conn, files[index], index, month, bounds)
            if elsewhere is not None:
                refused = len(structural.pop(index, []))
                conn.execute(q.RECORD_REFUSED, {"index": index, "month": elsewhere, "rows": refused})
        conn.execute(q.DROP_FILES_OUTSIDE_MONTH)
        contributed = {row[0] for row in conn.execute("SELECT DISTINCT file_index FROM charges").fetchall()}
        contributed |= {index for index, lines in structural.items() if lines}
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
        shares: dict[int, _Shares] = {}
        for index, rows, cost in conn.execute(q.PLACED_BY_FILE).fetchall():
            shares.setdefault(index, _Shares()).placed = (int(rows), Decimal(cost or 0))
        for index, other, rows, cost in conn.execute(q.OTHER_MONTHS_BY_FILE).fetchall():
            shares.setdefault(index, _Shares()).other[f"{other:%Y-%m}"] = (int(rows), Decimal(cost or 0))
        problem_files = {index for (index,) in conn.execute(q.PROBLEM_FILES).fetchall()}
        for index in sorted(problem_files | set(structural)):
            problems = (
                self._problems(conn, files[index], index, bounds, skipped_rows.get(index, []))
                if index in problem_files
                else []
            )
            problems += self._refused_problems(files[index], structural.get(index, []))
            result.line_items += sum(1 for _ in structural.get(index, []))
            shares.setdefault(index, _Shares()).rejected = (
                sum(problem.line_items for problem in problems),
                sum((problem.cost for problem in problems if problem.cost is not None), Decimal(0)),
            )
            result.problems.extend(problems)
        return shares

    def _refused_lines(
        self, conn: duckdb.DuckDBPyConnection, files: Sequence[tuple[int, ExportFile]]
    ) -> dict[int, list[tuple[int, str, str]]]:
        """The lines DuckDB could not split against the header, per file: (line, reason, text)."""
        refused: dict[int, list[tuple[int, str, str]]] = {}
        for index, file in files:
            if file.is_parquet:
                continue
            refused[index] = _refused(conn, _rejects_table(index))
        return refused

    def _refused_problems(
        self, file: ExportFile, lines: Sequence[tuple[int, str, str]]
    ) -> list[ChargeProblem]:
        """Rejects of the lines DuckDB refused: no cost or currency is read from a line that cannot be
        split into the header's columns. The ref counts data rows like the others' (DuckDB's line
        less the header's); the payload keeps the line's number and text."""
        return [
            ChargeProblem(
                source=self.layout.source,
                ref=f"{file.path}#row {line - 1}",
                reason="; ".join(CSV_ERRORS.get(kind, kind.lower()) for kind in kinds.split(", ")),
                raw={"line": line, "text": _printable(text)},
                code=RejectReason.MALFORMED_ROW,
            )
            for line, kinds, text in lines
        ]

    def _file_ledger(
        self, file: ExportFile, count: IndependentCount, shares: _Shares | None
    ) -> dict[str, Any]:
        ledger = FileLedger(file.path, count.rows, count.cost, count.cost_column)
        if shares is not None:
            ledger.placed.rows, ledger.placed.cost = shares.placed
            ledger.rejected.rows, ledger.rejected.cost = shares.rejected
            for other, (rows, cost) in shares.other.items():
                share = ledger.other_month(other)
                share.rows, share.cost = rows, cost
        return ledger.as_json()

    @staticmethod
    def _source_totals(conn: duckdb.DuckDBPyConnection) -> tuple[int, dict[str, Decimal]]:
        """What the files hold for the month, counted straight from the scan, before any grouping or
        allocation: the reconciliation compares relevés and rejects with this."""
        counted = conn.execute(q.LINE_ITEMS).fetchone()
        costs = {currency: Decimal(cost) for currency, cost in conn.execute(q.SOURCE_COSTS).fetchall()}
        return (int(counted[0]) if counted and counted[0] is not None else 0), costs

    def _place_unreadable_periods(
        self,
        conn: duckdb.DuckDBPyConnection,
        file: ExportFile,
        index: int,
        month: dt.date,
        bounds: dict[str, Any],
    ) -> dt.date | None:
        """Rows whose period cannot be read (or lies outside the plausible window) belong to the first
        month the rest of their file holds (a provider's file normally holds one month): rejects of
        that month only, never of every month read. Whether that month is this one; a file with no
        readable period at all cannot be placed: it fails the read. Returns that month when it is
        another one (the rows then leave this month's read, counted for the ledger)."""
        query = f"SELECT min(period) FROM ({self._checked_rows(file)}) WHERE period IS NOT NULL"
        row = conn.execute(query, _used(query, bounds)).fetchone()
        first = row[0] if row else None
        if first is None:
            raise ExportFileError(
                f"{file.path}: no row has a period that can be read as a date in the plausible window "
                f"({bounds['window']}), so its rows belong to no month; check the file's period columns "
                f"({self.layout.description})"
            )
        if (first.year, first.month) == (month.year, month.month):
            return None
        elsewhere = dt.date(first.year, first.month, 1)
        conn.execute(q.MOVE_UNPLACED, {"index": index, "month": elsewhere})
        conn.execute(q.DROP_UNPLACED, {"index": index})
        return elsewhere

    def _sum_files(self, files: Sequence[tuple[int, ExportFile]], into: ChargeTable | None) -> str:
        """One scan of some files (with their index): their rows summed by file and by every field
        a relevé depends on, without per-row work a group can do once; rows of other months summed
        by file and month only, for the ledger. One query for them all keeps both of DuckDB's
        threads busy to the end, where a query per file leaves one idle as each file finishes.

        When summing for an allocation, fields no mapping rule reads are left out, and a Parquet
        file's rows whose tag set names a known application (resolved just before) are summed per
        application, their tags and rule fields dropped: far fewer groups to make and to place."""
        rows = " UNION ALL ".join(self._file_rows(file, index, into) for index, file in files)
        return f"""
            INSERT INTO charges
            SELECT *, {q.VALID_CURRENCY} FROM (
                SELECT file_index, problem, period IS NOT NULL, other_month, application,
                       {", ".join(KEYS)},
                       CAST(sum(cost) AS {col.DECIMAL}), count(*), count(pricing_quantity),
                       CAST(sum(pricing_quantity) AS {col.DECIMAL})
                FROM (
                    SELECT CASE WHEN period < $start OR period >= $end THEN date_trunc('month', period) END
                               AS other_month,
                           *
                    FROM ({rows})
                )
                GROUP BY ALL
            )
        """

    def _checked_rows(self, file: ExportFile, *, numbered: bool = False, rejects: str | None = None) -> str:
        """The file's rows as the layout reads them, with what the reader checks of every layout:
        a period outside the plausible window is no period (the row a reject saying why), a NUL
        byte makes the row a reject, an amount beyond LINE_LIMIT too, and a row the file ends
        inside is a reject without its cut cost. With `numbered`, each row's number and its
        payload as written (`row_number`, `payload`)."""
        layout = self.layout
        truncated = file.ends_inside_row
        number = ""
        if numbered or truncated:
            number = "file_row_number + 1" if file.is_parquet else "row_number() OVER ()"
        extra = f", {number} AS row_number" if number else ""
        if truncated:
            extra += ", count(*) OVER () AS row_total"
        if numbered:
            extra += ", CAST(to_json(t) AS VARCHAR) AS payload"
        nul = (
            f"strpos({file.row_text()}, chr(0)) > 0"
            if file.count is not None and file.count.has_nul
            else "false"
        )
        cut = "f.row_number = f.row_total" if truncated else "false"
        plausible = "f.period >= $earliest AND f.period < $latest"
        problem = f"""CASE
                WHEN {cut} THEN '{TRUNCATED}'
                WHEN f.nul THEN '{NUL_BYTE}'
                WHEN f.problem IS NOT NULL THEN f.problem
                WHEN NOT ({plausible}) THEN 'date ' || strftime(f.period, '%Y-%m-%d %H:%M:%S')
                    || ' is outside the plausible window (' || $window || ')'
                WHEN f.cost >= {LINE_LIMIT} OR f.cost <= -{LINE_LIMIT} THEN 'cost ' || CAST(f.cost AS VARCHAR)
                    || ' is beyond what one line item may carry (10^10)'
            END"""
        kept = [name for name in FIELDS if name not in ("cost", "period")]
        carried = ", f.row_number, f.payload" if numbered else ""
        return f"""
            SELECT {problem} AS problem, {", ".join(f"f.{name}" for name in kept)},
                   CASE WHEN {cut} THEN NULL ELSE f.cost END AS cost,
                   CASE WHEN {plausible} THEN f.period END AS period{carried}
            FROM (
                SELECT {layout.problem(file)} AS problem, {nul} AS nul, {layout.fields(file)}{extra}
                FROM {file.scan(numbered=numbered or truncated, rejects=rejects)} AS t
            ) AS f
        """

    def _file_rows(self, file: ExportFile, index: int, into: ChargeTable | None) -> str:
        """A file's rows as `_sum_files` sums them."""
        read = self._checked_rows(file, rejects=None if file.is_parquet else _rejects_table(index))
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
        self,
        conn: duckdb.DuckDBPyConnection,
        file: ExportFile,
        index: int,
        bounds: dict[str, Any],
        skipped: Sequence[int],
    ) -> list[ChargeProblem]:
        """The unreadable rows of one file for the month, each with the row as written (up to
        DETAILED_REJECTS_PER_REASON per reason, the rest summed into one reject per reason and
        currency, so a file of bad rows never becomes millions of Python objects). A reject keeps
        its cost and currency as written wherever the cost is a number. `skipped`: the data rows
        DuckDB refused (its rows are numbered without them; the refs count every data row)."""
        placed = conn.execute(q.HOLDS_UNPLACED_ROWS, {"index": index}).fetchone()
        unplaced = "period IS NULL OR " if placed and placed[0] else ""
        query = f"""
            CREATE OR REPLACE TEMP TABLE unreadable AS
            WITH raw AS ({self._checked_rows(file, numbered=True)}),
            checked AS (
                SELECT * EXCLUDE (problem), coalesce(problem, {q.CURRENCY_PROBLEM}) AS problem FROM raw
            )
            SELECT row_number, problem, cost, NULLIF(trim(currency), '') AS currency, payload,
                   row_number() OVER (PARTITION BY problem ORDER BY row_number) AS rank
            FROM checked
            WHERE problem IS NOT NULL AND ({unplaced}(period >= $start AND period < $end))
        """
        with _one_thread(conn, True):  # a CSV's row numbers follow the file's order only on one thread
            conn.execute(query, _used(query, bounds))
        rows = conn.execute(q.DETAILED_PROBLEMS, {"limit": DETAILED_REJECTS_PER_REASON}).fetchall()
        problems = []
        for row_number, reason, cost, currency, payload in rows:
            problems.append(
                ChargeProblem(
                    source=self.layout.source,
                    ref=f"{file.path}#row {_data_row(row_number, skipped)}",
                    reason=_printable(reason),
                    raw=_json_object(payload),
                    cost=None if cost is None else Decimal(cost),
                    currency=_iso_currency(currency),
                    code=row_problem_code(reason),
                )
            )
        for reason, currency, count, cost, first, last in conn.execute(
            q.SUMMARISED_PROBLEMS, {"limit": DETAILED_REJECTS_PER_REASON}
        ).fetchall():
            first, last = _data_row(first, skipped), _data_row(last, skipped)
            problems.append(
                ChargeProblem(
                    source=self.layout.source,
                    ref=f"{file.path}#rows {first}-{last}",
                    reason=_printable(f"{reason} ({count} more rows like this one, summed)"),
                    raw={"rows": count, "first_row": first, "last_row": last, "currency": currency},
                    cost=None if cost is None else Decimal(cost),
                    currency=_iso_currency(currency),
                    line_items=count,
                    code=row_problem_code(reason),
                )
            )
        return problems


def _data_row(returned: int, skipped: Sequence[int]) -> int:
    """The data row of the file that is the `returned`-th row DuckDB returned, when it left out the
    data rows `skipped` (one line per row: a value spanning lines shifts the count)."""
    row = returned
    for refused in sorted(skipped):
        if refused > row:
            break
        row += 1
    return row


def _done(value: manifest.Surveyed) -> Future[manifest.Surveyed]:
    future: Future[manifest.Surveyed] = Future()
    future.set_result(value)
    return future


def describe(
    conn: duckdb.DuckDBPyConnection, path: str, description: str, count: IndependentCount | None
) -> ExportFile | SkippedFile:
    """A file's columns (a CSV's from its header as the independent pass read it), or why it is
    passed over (empty)."""
    if os.path.getsize(path) == 0:
        return SkippedFile(path, "empty file")
    if not path.lower().endswith(".parquet"):
        if count is None or not count.columns:
            return SkippedFile(path, "empty file")
        return ExportFile(path, {name: "VARCHAR" for name in count.columns})
    file = ExportFile(path, {})
    try:
        described = conn.execute(f"DESCRIBE SELECT * FROM {file.scan()}").fetchall()
    except duckdb.Error as error:
        raise ExportFileError(f"{path} cannot be read as a {description}: {_first_line(error)}") from None
    return ExportFile(path, {name: kind for name, kind, *_ in described if name != "file_row_number"})


@dataclass
class _Shares:
    """What the reader made of one file's rows for the month read: (rows, cost) in relevés, rejected,
    and of each other month."""

    placed: tuple[int, Decimal] = (0, Decimal(0))
    rejected: tuple[int, Decimal] = (0, Decimal(0))
    other: dict[str, tuple[int, Decimal]] = field(default_factory=dict)


@contextlib.contextmanager
def _one_thread(conn: duckdb.DuckDBPyConnection, wanted: bool) -> Iterator[None]:
    """Run on one thread where rows must be numbered in the file's order (CSV)."""
    if not wanted:
        yield
        return
    threads = conn.execute("SELECT current_setting('threads')").fetchone()
    conn.execute("SET threads = 1")
    try:
        yield
    finally:
        conn.execute(f"SET threads = {int(threads[0]) if threads else 1}")


def _refused(conn: duckdb.DuckDBPyConnection, table: str) -> list[tuple[int, str, str]]:
    """The lines a CSV scan stored in its rejects table (line, error types, text), the table then
    dropped; none when DuckDB made no table (nothing refused)."""
    exists = conn.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = $name", {"name": table}
    ).fetchone()
    if not exists or not exists[0]:
        return []
    rows = conn.execute(
        f"SELECT line, string_agg(DISTINCT error_type, ', '), any_value(csv_line) "
        f"FROM {table} GROUP BY line ORDER BY line"
    ).fetchall()
    conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute(f"DROP TABLE IF EXISTS {table}_scan")
    return [(int(line), kinds, text or "") for line, kinds, text in rows]


def _rejects_table(index: int) -> str:
    return f"refused_lines_{int(index)}"


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


def _bounds(month: dt.date, now: dt.datetime) -> dict[str, Any]:
    """The month read, and the plausible window of a line item's date: from the first partition's
    year (or the year before the month read, for a backfill of older bills) to the end of the
    month after the run's (or the month read's). Beyond is a sentinel such as `epoch` or
    `infinity`, or a misread year."""
    earliest = dt.datetime(min(FIRST_MONTH.year, month.year - 1), 1, 1)
    last = max(now.date().replace(day=1), month)
    latest = dt.datetime.combine(next_month(next_month(last)), dt.time())
    return {
        "start": dt.datetime(month.year, month.month, 1),
        "end": dt.datetime.combine(next_month(month), dt.time()),
        "earliest": earliest,
        "latest": latest,
        "window": f"{earliest:%Y-%m-%d} to {latest - dt.timedelta(days=1):%Y-%m-%d}",
    }


def _used(query: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """The parameters a query names (DuckDB refuses any other)."""
    return {name: value for name, value in parameters.items() if f"${name}" in query}


def _iso_currency(value: object) -> str | None:
    """The currency as the mart's `char(3)` holds it: an ISO 4217 code, else None (the payload
    keeps it as written)."""
    if (
        isinstance(value, str)
        and len(value.strip()) == 3
        and value.strip().isascii()
        and value.strip().isalpha()
    ):
        return value.strip().upper()
    return None


def _printable(text: str) -> str:
    """Text PostgreSQL can store: a NUL byte shown as ␀."""
    return text.replace("\x00", "\u2400")


def _json_object(payload: str | None) -> dict[str, Any]:
    """The row as written. NaN and ±Infinity (a Parquet double may hold them) and NUL bytes stay
    readable as text: PostgreSQL's JSON has none of them."""
    if payload is None:
        return {}
    value = json.loads(payload.replace("\\u0000", "\u2400"), parse_constant=str)
    return value if isinstance(value, dict) else {"value": value}


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
