"""The reason codes: the same list in the code and in the mart, on rejects old and new.

Rejects stored before the codes existed get the code their wording names (or
LEGACY_UNCLASSIFIED); a reject cannot be stored without a code the mart lists.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import psycopg
import pytest

from finops_dagster.mart.migrations import MIGRATIONS_DIR, apply_migrations
from finops_dagster.reference.catalog import load_catalog
from finops_dagster.reference.loader import load_catalog_into_mart
from finops_dagster.reject_reasons import DESCRIPTIONS, RejectReason

CODES_MIGRATION = "016_reject_reason_codes.sql"

LEGACY: list[tuple[str, str, str]] = [
    ("open_legacy", "no rate card for OL_VCPU valid in 2023-12", "NO_RATE"),
    ("private_cloud", "unknown product GPU (3 hour): not in the product catalog", "UNKNOWN_PRODUCT"),
    ("open_legacy", "unknown CI class 'cmdb_ci_ups' in 31 document(s): not billable", "UNKNOWN_CI_CLASS"),
    ("open_legacy", "unknown CI class 'cmdb_ci_printer' in 2 document(s): not billable", "UNKNOWN_CI_CLASS"),
    ("open_legacy", "sys_class_name: missing in 1 document(s)", "UNKNOWN_CI_CLASS"),
    ("open_legacy", "document without sys_id (3 documents): cannot be tied to a CI", "MISSING_CI_ID"),
    ("open_legacy", "duplicate sys_id within a dump (1 extra documents on 2025-03-01)", "DUPLICATE_DOCUMENT"),
    (
        "open_legacy",
        "_ingested_at missing or null in 1 document(s): no dump to count it in",
        "UNDATED_DOCUMENT",
    ),
    ("open_legacy", "cpus: negative (-4) in 1 document(s)", "NEGATIVE_QUANTITY"),
    ("open_legacy", "cpus: not a number ('n/a') in 1 document(s)", "INVALID_QUANTITY"),
    ("private_cloud", "total_vcpus_usage: negative (-1.0)", "NEGATIVE_QUANTITY"),
    ("native", "statistics.repository_size: negative (-5) (2 night(s))", "NEGATIVE_QUANTITY"),
    ("private_cloud", "total_vcpus_usage: negative (-2); stop: missing", "MALFORMED_RECORD"),
    ("native", "name: missing (and no project.fullPath) (1 night(s))", "MALFORMED_RECORD"),
    ("public_cloud", "EffectiveCost is empty", "MISSING_COST"),
    ("public_cloud", "EffectiveCost 1_000 is not a number", "INVALID_AMOUNT"),
    ("public_cloud", "billing currency US Dollar is not an ISO 4217 code", "INVALID_CURRENCY"),
    ("public_cloud", "ChargePeriodStart epoch is not an ISO 8601 date", "INVALID_PERIOD"),
    (
        "public_cloud",
        "date 1970-01-01 00:00:00 is outside the plausible window (2019–2027)",
        "INVALID_PERIOD",
    ),
    (
        "public_cloud",
        "cost 12345678901 is beyond what one line item may carry (10^10)",
        "AMOUNT_OUT_OF_RANGE",
    ),
    ("public_cloud", "the row holds a NUL byte", "MALFORMED_ROW"),
    ("public_cloud", "the row has fewer columns than the header (a ragged or cut row)", "MALFORMED_ROW"),
    (
        "public_cloud",
        "no exchange rate USD→EUR for 2026-10 (reference/data/exchange_rates.csv)",
        "NO_EXCHANGE_RATE",
    ),
    ("public_cloud", "group keys missing or unreadable", "MALFORMED_RECORD"),
    ("public_cloud", "usage date 2026-09-03 is outside 2026-10", "INVALID_PERIOD"),
    ("open_legacy", "a wording nobody wrote", "LEGACY_UNCLASSIFIED"),
]


def test_the_mart_lists_exactly_the_codes_of_the_code(mart: psycopg.Connection) -> None:
    rows = dict(mart.execute("SELECT reason_code, description FROM finops.reject_reason").fetchall())
    assert rows == {code.value: description for code, description in DESCRIPTIONS.items()}
    assert set(DESCRIPTIONS) == set(RejectReason)


def test_rejects_stored_before_the_codes_get_the_code_their_reason_names(
    empty_db_url: str, tmp_path: Path
) -> None:
    before = tmp_path / "sql"
    shutil.copytree(MIGRATIONS_DIR, before)
    (before / CODES_MIGRATION).unlink()
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        apply_migrations(conn, before)
        load_catalog_into_mart(conn, load_catalog())
        for domain, reason, _ in LEGACY:
            conn.execute(
                "INSERT INTO finops.releve_reject "
                "(domain_id, period_month, run_id, source, source_ref, reason) "
                "VALUES (%s, %s, 'old-run', 'src', 'ref', %s)",
                (domain, dt.date(2026, 10, 1), reason),
            )
        assert apply_migrations(conn) == [CODES_MIGRATION]
        stored = dict(conn.execute("SELECT reason, reason_code FROM finops.releve_reject").fetchall())
    assert stored == {reason: code for _, reason, code in LEGACY}


@pytest.mark.parametrize(
    ("code", "error"),
    [(None, psycopg.errors.NotNullViolation), ("SOMETHING_ELSE", psycopg.errors.ForeignKeyViolation)],
)
def test_a_reject_without_a_listed_code_is_refused(
    mart: psycopg.Connection, code: str | None, error: type[Exception]
) -> None:
    with pytest.raises(error):
        mart.execute(
            "INSERT INTO finops.releve_reject (domain_id, period_month, run_id, source, source_ref, "
            "reason_code, reason) VALUES ('native', '2026-10-01', 'run', 'src', 'ref', %s, 'details')",
            (code,),
        )
