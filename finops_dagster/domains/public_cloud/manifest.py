"""Which files a month reads, each exactly once, and what each holds counted without the reader.

Locations are directories (searched recursively) or globs (`**` for any depth). The same file can
be reached by several routes: a symlink beside its target, two locations naming one folder, a
symlink loop (`loop -> .`) under `**`. Summing each route would invent money, so files are told
apart by (device, inode), read once, and listed with every route that reached them; a directory
symlink pointing back at one of its own ancestors is not entered, so a loop is walked once.

Each file read is recorded in the load's manifest by its real path, identity, size, modification
time and SHA-256, and counted by an independent pass (`IndependentCount`) that shares nothing with
the reader's classification: Python's `csv` module and `Decimal` for CSV (streamed, in the same
read that hashes the file), the file's metadata row count and one plain sum for Parquet. The
reconciliation holds the reader's per-file figures to these counts (the file ledger).
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import io
import os
import re
import sys
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import duckdb

from finops_dagster.domains.public_cloud.duckdb_columns import identifier, is_exact_number, literal

CHUNK = 1 << 20
"""Bytes read at a time: hashing and counting stream, whatever the file's size."""
AMOUNT_LIMIT = Decimal(10) ** 20
"""The largest magnitude the reader's DECIMAL(38, 18) holds: an amount beyond it is not a number
to either side of the ledger."""
NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
"""A plain decimal number, as a bill writes one: no digit separators (`1_000`, `1,000`), no
`NaN` or `Infinity`, ASCII digits only."""
REPLACEMENT = "\ufffd"
MAX_LINE_BYTES = 64 << 20
"""The longest CSV record the reader splits (DuckDB's `max_line_size`); a longer one is a reject of
both sides of the ledger (its row counted, its cost not)."""
GLOB_SPECIALS = ("*", "?", "[")

csv.field_size_limit(sys.maxsize)  # a long field is the reader's to reject, not this count's to fail on


class ManifestError(RuntimeError):
    """A file cannot be identified or counted (truncated, duplicated header, changed while read)."""


@dataclass
class FoundFile:
    """One file, however many routes reached it."""

    real_path: str
    device: int
    inode: int
    size: int
    mtime_ns: int
    routes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class IndependentCount:
    """What a file holds, counted without the reader: rows, and the cost column summed wherever it
    is a plain number (NUMBER, under AMOUNT_LIMIT) in a well-formed row."""

    rows: int
    cost: Decimal | None
    """None when the layout's cost is not one column (the ledger then balances rows only)."""
    cost_column: str | None
    malformed_rows: int = 0
    """CSV records with a field count other than the header's, undecodable bytes, or cut off by
    the end of the file: counted as rows, their cost not summed."""
    ends_with_newline: bool = True
    has_nul: bool = False
    ends_inside_row: bool = False
    """The file ends without a line break after a record that has the header's columns (CSV): that
    record may be cut (`123.45` written as `12`)."""
    columns: tuple[str, ...] = ()
    """The CSV header's column names as written (the reader reads the file with these, never a
    dialect or header guessed from a sample)."""


@dataclass(frozen=True)
class ManifestEntry:
    real_path: str
    routes: tuple[str, ...]
    device: int
    inode: int
    size: int
    mtime: str
    sha256: str

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.real_path,
            "routes": list(self.routes),
            "device": self.device,
            "inode": self.inode,
            "size": self.size,
            "mtime": self.mtime,
            "sha256": self.sha256,
        }


@dataclass(frozen=True)
class Surveyed:
    entry: ManifestEntry
    count: IndependentCount


def find_files(locations: Sequence[str], suffixes: Sequence[str]) -> list[FoundFile]:
    """Every file with one of `suffixes` the locations reach, once per (device, inode), in path order."""
    by_identity: dict[tuple[int, int], FoundFile] = {}
    lowered = tuple(suffix.lower() for suffix in suffixes)
    for location in locations:
        for route in _routes(location):
            if not route.lower().endswith(lowered):
                continue
            try:
                stat = os.stat(route)
            except OSError as error:
                raise ManifestError(f"{route}: cannot be read ({error.strerror})") from None
            key = (stat.st_dev, stat.st_ino)
            found = by_identity.get(key)
            if found is None:
                found = FoundFile(os.path.realpath(route), *key, stat.st_size, stat.st_mtime_ns)
                by_identity[key] = found
            if route not in found.routes:
                found.routes.append(route)
    return sorted(by_identity.values(), key=lambda found: found.real_path)


def _routes(location: str) -> Iterator[str]:
    """The file paths a location names: itself, the files under a directory, or a glob's matches."""
    if not any(special in location for special in GLOB_SPECIALS):
        if os.path.isdir(location):
            yield from _walk(location, frozenset())
        elif os.path.isfile(location):
            yield location
        return
    parts = location.split(os.sep)
    fixed = next(i for i, part in enumerate(parts) if any(s in part for s in GLOB_SPECIALS))
    base = os.sep.join(parts[:fixed]) or (os.sep if location.startswith(os.sep) else ".")
    matcher = _glob_regex(parts)
    if os.path.isdir(base):
        for route in _walk(base, frozenset()):
            candidate = route[2:] if base == "." and route.startswith("./") else route
            if matcher.fullmatch(candidate):
                yield candidate


def _walk(directory: str, ancestors: frozenset[tuple[int, int]]) -> Iterator[str]:
    """Files under a directory, following symlinks except into a directory already on the path
    (a loop), in name order."""
    stat = os.stat(directory)
    key = (stat.st_dev, stat.st_ino)
    if key in ancestors:
        return
    inside = ancestors | {key}
    with os.scandir(directory) as scanned:
        entries = sorted(scanned, key=lambda entry: entry.name)
    for entry in entries:
        if entry.is_dir(follow_symlinks=True):
            yield from _walk(entry.path, inside)
        elif entry.is_file(follow_symlinks=True):
            yield entry.path


def _glob_regex(parts: Sequence[str]) -> re.Pattern[str]:
    """A glob's path components as one expression: `**` any number of directories, `*` and `?`
    within one component, `[…]` a character class; names starting with a dot match only a dot."""
    pieces = []
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            pieces.append(r"(?:[^/.][^/]*/)*" if not last else r"(?:[^/.][^/]*/)*[^/.][^/]*")
            continue
        pieces.append(_component_regex(part) + ("" if last else "/"))
    return re.compile("".join(pieces))


def _component_regex(part: str) -> str:
    out = [] if part.startswith(".") or not part else ["(?![.])"]
    i = 0
    while i < len(part):
        char = part[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and "]" in part[i + 2 :]:
            end = part.index("]", i + 2)
            body = part[i + 1 : end]
            body = "^" + body[1:] if body.startswith("!") else body
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def survey(
    found: FoundFile,
    cost_column: Callable[[Sequence[str]], str | None],
    connection: duckdb.DuckDBPyConnection,
) -> Surveyed:
    """The file's manifest entry and independent count, reading it once (CSV) or streaming its
    bytes and its metadata (Parquet). `cost_column` names the cost column among the file's columns."""
    path = found.real_path
    try:
        if path.lower().endswith(".parquet"):
            digest = _sha256(path)
            count = _count_parquet(path, cost_column, connection)
        else:
            digest, count = _count_csv(path, cost_column)
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise ManifestError(f"{path} cannot be read whole: {error}") from None
    except duckdb.Error as error:
        raise ManifestError(f"{path} cannot be read whole: {_first_line(error)}") from None
    _unchanged(found)
    mtime = dt.datetime.fromtimestamp(found.mtime_ns / 1e9, dt.UTC).isoformat()
    entry = ManifestEntry(
        path, tuple(found.routes), found.device, found.inode, found.size, mtime, digest.hexdigest()
    )
    return Surveyed(entry, count)


def verify_unchanged(found: FoundFile) -> None:
    """After the reader's scan: the file is still the one surveyed."""
    _unchanged(found)


def _unchanged(found: FoundFile) -> None:
    stat = os.stat(found.real_path)
    if (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns) != (
        found.device,
        found.inode,
        found.size,
        found.mtime_ns,
    ):
        raise ManifestError(
            f"{found.real_path} changed while it was read (size or modification time); run again once "
            "the export is complete"
        )


def plain_number(text: str | None) -> Decimal | None:
    """The value of a plain decimal number under AMOUNT_LIMIT, else None."""
    if text is None:
        return None
    stripped = text.strip()
    if not NUMBER.fullmatch(stripped):
        return None
    try:
        value = Decimal(stripped)
    except InvalidOperation:
        return None
    return value if abs(value) < AMOUNT_LIMIT else None


class _Hashing(io.RawIOBase):
    """Raw bytes passed through a SHA-256 as they are read."""

    def __init__(self, handle: io.BufferedReader) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.handle.read(len(buffer))
        self.digest.update(data)
        buffer[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        while self.readinto(bytearray(CHUNK)):
            pass


class _Watching(io.RawIOBase):
    """Decoded bytes, noting the last one and whether any is NUL."""

    def __init__(self, stream: io.BufferedIOBase) -> None:
        self.stream = stream
        self.last = b""
        self.has_nul = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.stream.read(len(buffer))
        if data:
            self.last = data[-1:]
            self.has_nul = self.has_nul or b"\x00" in data
        buffer[: len(data)] = data
        return len(data)


def _count_csv(path: str, cost_column: Callable[[Sequence[str]], str | None]) -> tuple[Any, IndependentCount]:
    with open(path, "rb") as handle:
        hashing = _Hashing(handle)
        raw = io.BufferedReader(hashing, CHUNK)
        decoded: io.BufferedIOBase = gzip.GzipFile(fileobj=raw) if path.lower().endswith(".gz") else raw
        watching = _Watching(decoded)
        text = io.TextIOWrapper(
            io.BufferedReader(watching, CHUNK), encoding="utf-8-sig", errors="replace", newline=""
        )
        lines = _Lines(text)
        reader = csv.reader(lines)
        header = next(reader, None) or []
        lines.undecodable()
        _refuse_duplicates(path, header)
        column = cost_column(header) if header else None
        index = header.index(column) if column in header else None
        rows = malformed = 0
        total = Decimal(0)
        pending: Decimal | None = None
        pending_ok = False
        for record in reader:
            if not record:
                continue
            if pending_ok and pending is not None:
                total += pending
            rows += 1
            well_formed = len(record) == len(header) and not lines.undecodable() and not _too_long(record)
            if not well_formed:
                malformed += 1
            pending_ok = well_formed
            pending = plain_number(record[index]) if well_formed and index is not None else None
        ends_with_newline = watching.last in (b"\n", b"\r", b"")
        if pending_ok and pending is not None and ends_with_newline:
            total += pending
        elif pending_ok and not ends_with_newline:
            malformed += 1
        hashing.drain()
        count = IndependentCount(
            rows=rows,
            cost=total if index is not None else None,
            cost_column=column,
            malformed_rows=malformed,
            ends_with_newline=ends_with_newline,
            has_nul=watching.has_nul,
            ends_inside_row=pending_ok and not ends_with_newline,
            columns=tuple(header),
        )
        return hashing.digest, count


class _Lines:
    """A text's lines for `csv.reader`, noting whether the lines of the record just read held a byte
    that is not UTF-8 (decoded as U+FFFD): one check per line rather than per field."""

    def __init__(self, text: io.TextIOWrapper) -> None:
        self.text = text
        self.replaced = False

    def __iter__(self) -> Iterator[str]:
        for line in self.text:
            if REPLACEMENT in line:
                self.replaced = True
            yield line

    def undecodable(self) -> bool:
        """Whether the record just read held an undecodable byte (and forget it for the next one)."""
        replaced, self.replaced = self.replaced, False
        return replaced


def _too_long(record: Sequence[str]) -> bool:
    """Whether a record is longer than the reader splits (measured cheaply first: characters are
    never more than their UTF-8 bytes, and at most four times fewer)."""
    characters = sum(map(len, record)) + len(record) - 1
    if characters * 4 <= MAX_LINE_BYTES:
        return False
    return len(",".join(record).encode("utf-8")) > MAX_LINE_BYTES


def _refuse_duplicates(path: str, header: Sequence[str]) -> None:
    """A header naming one column twice leaves which of them is the cost to chance."""
    seen: dict[str, str] = {}
    for name in header:
        key = name.strip().lower()
        if key in seen:
            raise ManifestError(f"{path}: the header names column {name.strip()!r} twice; fix the export")
        seen[key] = name


def _sha256(path: str) -> Any:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest


def _count_parquet(
    path: str, cost_column: Callable[[Sequence[str]], str | None], conn: duckdb.DuckDBPyConnection
) -> IndependentCount:
    """Rows from the file's metadata; the cost column summed by one plain aggregate, no filter."""
    source = literal(path)
    schema = conn.execute(f"SELECT name, num_children FROM parquet_schema({source})").fetchall()
    _refuse_duplicates(path, _top_level(schema))
    counted = conn.execute(f"SELECT sum(num_rows)::BIGINT FROM parquet_file_metadata({source})").fetchone()
    rows = int(counted[0]) if counted and counted[0] is not None else 0
    described = conn.execute(f"DESCRIBE SELECT * FROM read_parquet({source})").fetchall()
    columns = {name: kind for name, kind, *_ in described}
    column = cost_column(list(columns))
    if column is None or column not in columns:
        return IndependentCount(rows, None, None)
    ref, kind = identifier(column), columns[column].upper()
    if kind == "VARCHAR":
        value = (
            f"CASE WHEN regexp_full_match(trim({ref}), '{NUMBER.pattern}') "
            f"THEN TRY_CAST(trim({ref}) AS DECIMAL(38, 18)) END"
        )
    elif is_exact_number(kind):
        value = f"TRY_CAST({ref} AS DECIMAL(38, 18))"
    else:
        value = f"TRY_CAST(CAST({ref} AS VARCHAR) AS DECIMAL(38, 18))"
    summed = conn.execute(f"SELECT sum({value}) FROM read_parquet({source})").fetchone()
    cost = Decimal(summed[0]) if summed and summed[0] is not None else Decimal(0)
    return IndependentCount(rows, cost, column)


def _top_level(schema: Sequence[tuple[str, int | None]]) -> list[str]:
    """The top-level column names of a Parquet schema listed depth first (the root first)."""
    names = []
    index = 1
    while index < len(schema):
        names.append(schema[index][0])
        index += _subtree(schema, index)
    return names


def _subtree(schema: Sequence[tuple[str, int | None]], index: int) -> int:
    """How many schema entries the element at `index` spans, itself included."""
    size = 1
    for _ in range(schema[index][1] or 0):
        size += _subtree(schema, index + size)
    return size


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
