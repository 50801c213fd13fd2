"""The input manifest and the file ledger: each file read once; a reader losing or inventing rows caught.

Expected figures are computed here from the bytes written, with `hashlib` and `Decimal`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from finops_dagster.domains.public_cloud import export_reader
from finops_dagster.domains.public_cloud.export_reader import ExportFile, ExportReader
from finops_dagster.domains.public_cloud.focus import FocusLayout
from finops_dagster.domains.public_cloud.ledger import FileLedger, ledger_breaks
from finops_dagster_tests.domains.public_cloud.test_assets import (  # noqa: F401  (fixtures)
    PublicCloudRun,
    domain,
    estate,
    focus_row,
    write_focus,
)
from finops_dagster_tests.support.domain_runs import check_evaluations, failures

MONTH = dt.date(2026, 10, 1)
NOW = dt.datetime(2026, 11, 20, 12, 0)


def read(locations: list[str]) -> export_reader.SourceMonth:
    return ExportReader(FocusLayout(), locations, "FINOPS_FOCUS_PATHS").read_month(MONTH, NOW)


def total(month: export_reader.SourceMonth) -> Decimal:
    return sum((group.cost for group in month.groups), Decimal(0))


def test_a_symlink_loop_under_a_double_star_glob_reads_the_file_once(tmp_path: Path) -> None:
    exports = tmp_path / "exports"
    path = write_focus(exports / "bill.csv", [focus_row("3.25"), focus_row("1.5")])
    (exports / "loop").symlink_to(".")
    (exports / "deeper").mkdir()
    (exports / "deeper" / "up").symlink_to("..")

    result = read([str(exports / "**" / "*.csv")])

    assert total(result) == Decimal("4.75")
    ((entry,),) = [result.manifest]
    assert entry["path"] == str(path.resolve())
    assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert entry["size"] == path.stat().st_size and entry["inode"] == path.stat().st_ino
    assert result.ledger[0]["counted"] == {"rows": 2, "cost": "4.75", "column": "EffectiveCost"}


def test_two_locations_naming_one_folder_read_it_once_with_both_routes(tmp_path: Path) -> None:
    exports = tmp_path / "exports"
    write_focus(exports / "bill.csv", [focus_row("10")])
    alias = tmp_path / "alias"
    alias.symlink_to(exports)
    (tmp_path / "copy-link.csv").symlink_to(exports / "bill.csv")

    result = read([str(exports), str(alias), str(tmp_path / "*.csv")])

    assert total(result) == Decimal(10)
    (entry,) = result.manifest
    assert sorted(entry["routes"]) == sorted(
        [str(exports / "bill.csv"), str(alias / "bill.csv"), str(tmp_path / "copy-link.csv")]
    )
    assert ledger_breaks({"focus": {"ledger": result.ledger}}) == []


def test_a_ledger_that_does_not_add_up_names_the_file_and_the_figures() -> None:
    ledger = FileLedger("/x/bill.csv", 5, Decimal("12.5"), "EffectiveCost")
    ledger.placed.rows, ledger.placed.cost = 3, Decimal("10")
    ledger.rejected.rows = 1
    ledger.other_month("2026-09").rows, ledger.other_month("2026-09").cost = 1, Decimal("2.5")
    assert ledger.imbalance() is None

    ledger.placed.rows, ledger.placed.cost = 2, Decimal("7")
    problem = ledger.imbalance()
    assert problem is not None
    assert problem.startswith("/x/bill.csv: 5 rows counted, 4 accounted for")
    assert "EffectiveCost sums to 12.5, 9.5 accounted for (off by 3.0)" in problem
    assert FileLedger.from_json(ledger.as_json()) == ledger


def drop_one_row(original: Any) -> Any:
    def scan(self: ExportFile, *, numbered: bool = False, rejects: str | None = None) -> str:
        return f"(SELECT * FROM {original(self, numbered=numbered, rejects=rejects)} OFFSET 1)"

    return scan


def duplicate_one_row(original: Any) -> Any:
    def scan(self: ExportFile, *, numbered: bool = False, rejects: str | None = None) -> str:
        once = original(self, numbered=numbered, rejects=rejects)
        again = original(self, numbered=numbered)
        return f"(SELECT * FROM {once} UNION ALL (SELECT * FROM {again} LIMIT 1))"

    return scan


@pytest.mark.parametrize(
    ("mutation", "rows", "cost"),
    [
        (drop_one_row, "3 rows counted, 2 accounted for", "off by "),
        (duplicate_one_row, "4 accounted", "off by -"),
    ],
    ids=["drops a row", "duplicates a row"],
)
def test_a_reader_that_drops_or_duplicates_a_row_fails_the_reconciliation(
    domain: PublicCloudRun,  # noqa: F811
    mart: psycopg.Connection,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mutation: Any,
    rows: str,
    cost: str,
) -> None:
    path = write_focus(tmp_path / "bill.csv", [focus_row("4"), focus_row("2"), focus_row("1")])
    domain.setenv(FINOPS_FOCUS_PATHS=str(path))
    monkeypatch.setattr(ExportFile, "scan", mutation(ExportFile.scan))

    result = domain.run(MONTH)

    evaluation = check_evaluations(result)[("public_cloud_releves", "reconciliation")]
    assert not evaluation.passed
    assert "month/billing currency pair(s) balance" in evaluation.description  # blind to it alone
    assert f"2026-10 {path}: " in evaluation.description and rows in evaluation.description
    assert cost in evaluation.description
    assert not result.success
    assert mart.execute("SELECT count(*) FROM finops.fact_releve").fetchone() == (0,)


def test_the_manifest_is_stored_with_the_load_and_shown(
    domain: PublicCloudRun,  # noqa: F811
    mart: psycopg.Connection,
    tmp_path: Path,
) -> None:
    path = write_focus(tmp_path / "exports" / "bill.csv", [focus_row("4"), focus_row("2", month="2026-09")])
    os.symlink(tmp_path / "exports", tmp_path / "again")
    domain.setenv(FINOPS_FOCUS_PATHS=f"{tmp_path / 'exports'},{tmp_path / 'again'}")

    result = domain.run(MONTH)

    assert result.success, failures(result)
    row = mart.execute("SELECT details FROM finops.domain_load WHERE domain_id = 'public_cloud'").fetchone()
    assert row is not None
    (entry,) = row[0]["focus"]["manifest"]
    assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert len(entry["routes"]) == 2
    (ledger,) = row[0]["focus"]["ledger"]
    assert ledger["placed"] == {"rows": 1, "cost": "4.000000000000000000"}
    assert ledger["other_months"] == {"2026-09": {"rows": 1, "cost": "2.000000000000000000"}}
    metadata = result.asset_materializations_for_node("public_cloud_releves")[0].metadata
    assert str(path) in metadata["manifest"].value
    evaluation = check_evaluations(result)[("public_cloud_releves", "reconciliation")]
    assert evaluation.passed and "file ledger: 1 file(s) add up" in evaluation.description
