"""Reading a column of an export file in DuckDB whatever type the file gave it.

CSV files are read as text (a number or a date in the wrong shape must become a reject, not stop
the whole read), Parquet files keep their types. These expressions turn either into what the
domain works with: exact decimals (never through a binary float), UTC timestamps and trimmed text.
A value that does not convert is NULL here; the caller compares with the raw text to tell an
empty value from an unreadable one.
"""

from __future__ import annotations

DECIMAL = "DECIMAL(38, 18)"
"""Up to 10^20 with 18 decimals: every amount of a bill, summed exactly."""


def identifier(name: str) -> str:
    """A column name quoted for DuckDB, whatever it contains."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    """A string literal for DuckDB (file paths in table functions; never a value from a row)."""
    return "'" + value.replace("'", "''") + "'"


def is_text(duckdb_type: str) -> bool:
    return duckdb_type.upper() == "VARCHAR"


def text(column: str, duckdb_type: str) -> str:
    """Trimmed text, NULL when empty; maps and structs (Parquet tags) as JSON text."""
    ref = identifier(column)
    upper = duckdb_type.upper()
    if is_text(upper):
        return f"NULLIF(trim({ref}), '')"
    if upper.startswith(("MAP", "STRUCT", "JSON")):
        return f"CAST(to_json({ref}) AS VARCHAR)"
    return f"CAST({ref} AS VARCHAR)"


def is_exact_number(duckdb_type: str) -> bool:
    """Decimals and integers: summed as they are, exactly, and converted once the sum is made."""
    upper = duckdb_type.upper()
    return upper.startswith("DECIMAL") or upper in EXACT_TYPES


EXACT_TYPES = frozenset(
    ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")
)


def number(column: str, duckdb_type: str) -> str:
    """An exact number. Binary floats go through their shortest text form (0.1 stays 0.1; NaN and
    ±Infinity are not numbers); text is read as a plain decimal (DuckDB would read `1_000` as 1000:
    a digit separator is not part of a bill's number); decimals and integers stay as they are (the
    sum is converted, not each row)."""
    ref = identifier(column)
    upper = duckdb_type.upper()
    if is_text(upper):
        return f"CASE WHEN NOT contains({ref}, '_') THEN TRY_CAST(NULLIF(trim({ref}), '') AS {DECIMAL}) END"
    if is_exact_number(upper):
        return ref
    if upper in ("DOUBLE", "FLOAT", "REAL"):
        return f"TRY_CAST(CAST({ref} AS VARCHAR) AS {DECIMAL})"
    return f"TRY_CAST({ref} AS {DECIMAL})"


def is_blank(column: str, duckdb_type: str) -> str:
    """True where the value is missing (NULL, or empty text)."""
    ref = identifier(column)
    return f"NULLIF(trim({ref}), '') IS NULL" if is_text(duckdb_type) else f"{ref} IS NULL"


def not_a_number(column: str, duckdb_type: str) -> str:
    """True where a value is present but is not a number (only text can be that)."""
    if is_exact_number(duckdb_type):
        return "false"
    return f"NOT ({is_blank(column, duckdb_type)}) AND {number(column, duckdb_type)} IS NULL"


def raw(column: str, duckdb_type: str) -> str:
    """The value as text without any per-row work where it already is text (trimmed later, once per
    group); maps and structs (Parquet tags) as JSON text."""
    ref = identifier(column)
    upper = duckdb_type.upper()
    if is_text(upper):
        return ref
    if upper.startswith(("MAP", "STRUCT", "JSON")):
        return f"CAST(to_json({ref}) AS VARCHAR)"
    return f"CAST({ref} AS VARCHAR)"


ISO_DATE = "[0-9]{4}-[0-9]{2}-[0-9]{2}([T ].*)?"
"""Text read as a date must start as ISO 8601 does: DuckDB would otherwise read `epoch`,
`infinity` or `4/1/25` (as the year 4)."""


def timestamp(column: str, duckdb_type: str) -> str:
    """A UTC timestamp (without zone); ISO 8601 text with or without an offset is read as an instant
    (the reader's DuckDB session is in UTC, so an offset-less value is UTC too); other text is not
    a date here (a layout reads its documented formats itself)."""
    ref = identifier(column)
    upper = duckdb_type.upper()
    if is_text(upper):
        return (
            f"CASE WHEN regexp_full_match(trim({ref}), '{ISO_DATE}') "
            f"THEN TRY_CAST(TRY_CAST(trim({ref}) AS TIMESTAMPTZ) AS TIMESTAMP) END"
        )
    if upper == "TIMESTAMP":
        return ref
    return f"TRY_CAST({ref} AS TIMESTAMP)"
