"""Malformed bills: every row ends in a relevé, a reject with its reason, or the run fails naming the file.

Each case writes a small bill (CSV, gzipped CSV, Parquet; FOCUS, Azure cost details, AWS CUR)
with good rows whose costs the test sums itself with `Decimal`, plus one malformed element. The
read must publish exactly the good rows' cost (nothing lost, nothing invented), reject the bad
row with its reason and its readable cost, and keep every file's ledger balanced; or, for a file
whose structure is broken, fail naming the file.
"""

from __future__ import annotations

import gzip
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from finops_dagster.domains.public_cloud import manifest
from finops_dagster.domains.public_cloud.export_reader import ExportFileError
from finops_dagster.domains.public_cloud.focus import FocusLayout
from finops_dagster.domains.public_cloud.ledger import ledger_breaks
from finops_dagster_tests.support.domain_runs import check_evaluations, etl_run, failures
from finops_dagster_tests.support.malformed_bills import (
    CASES,
    GOOD,
    LIMIT,
    MONTH,
    Bill,
    Expected,
    csv_bytes,
    focus,
    read,
    reject,
    write,
)
from finops_dagster_tests.support.public_cloud_run import PublicCloudRun


def check(result: Any, expected: Expected) -> None:
    """Nothing lost, nothing invented: the good rows published, the bad one rejected, ledgers balanced."""
    published = sum((group.cost for group in result.groups), Decimal(0))
    assert published == sum((Decimal(cost) for cost in expected.published), Decimal(0))
    found = sorted((problem.reason, problem.cost) for problem in result.problems)
    assert len(found) == len(expected.rejects), found
    for (reason, cost), (wanted, wanted_cost) in zip(found, sorted(expected.rejects), strict=True):
        assert wanted in reason
        assert cost == wanted_cost
    assert result.line_items == len(expected.published) + len(expected.rejects)
    assert ledger_breaks({"source": {"ledger": result.ledger}}) == []
    readable = sum(
        (
            p.cost
            for p in result.problems
            if p.cost is not None and p.currency == "EUR" and abs(p.cost) < LIMIT
        ),
        Decimal(0),
    )
    assert result.source_costs.get("EUR", Decimal(0)) == published + readable


@pytest.mark.parametrize("kind", ["csv", "gz"])
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_malformed_csv_input(tmp_path: Path, case: str, kind: str) -> None:
    bill, expected = CASES[case]
    path = write(tmp_path / "bill", bill, kind)
    if expected.failure is not None:
        with pytest.raises(ExportFileError, match=f"{path.name}.*{expected.failure}"):
            read(path, bill.layout)
        return
    check(read(path, bill.layout), expected)


def parquet(path: Path, costs: list[str], *, kind: str = "DOUBLE", charged: list[str] | None = None) -> Path:
    """A FOCUS Parquet file of these costs (as `kind`) and charge dates (TIMESTAMP)."""
    dates = charged or ["2026-10-03 10:00:00"] * len(costs)
    with duckdb.connect() as conn:
        conn.execute(
            f"""
            COPY (
                SELECT CAST(c AS {kind}) AS BilledCost, CAST(c AS {kind}) AS EffectiveCost,
                       'EUR' AS BillingCurrency, TIMESTAMP '2026-10-01' AS BillingPeriodStart,
                       CAST(d AS TIMESTAMP) AS ChargePeriodStart, 'Usage' AS ChargeCategory,
                       'Compute' AS ServiceCategory, 'VM' AS ServiceName, 'AWS' AS ProviderName
                FROM (SELECT unnest($costs) AS c, unnest($dates) AS d)
            ) TO '{path}' (FORMAT parquet)
            """,
            {"costs": costs, "dates": dates},
        )
    return path


PARQUET_CASES: dict[str, tuple[dict[str, Any], Expected]] = {
    "NaN double": ({"costs": [*GOOD, "nan"]}, Expected(reject("EffectiveCost nan is not a number"))),
    "+Infinity double": ({"costs": [*GOOD, "inf"]}, Expected(reject("EffectiveCost inf is not a number"))),
    "-Infinity double": ({"costs": [*GOOD, "-inf"]}, Expected(reject("EffectiveCost -inf is not a number"))),
    "text digit separator": (
        {"costs": [*GOOD, "1_000"], "kind": "VARCHAR"},
        Expected(reject("EffectiveCost 1_000 is not a number")),
    ),
    "1970 timestamp": (
        {"costs": [*GOOD, "5"], "charged": ["2026-10-03 10:00:00"] * 3 + ["1970-01-01 00:00:00"]},
        Expected(reject("is more than a year from BillingPeriodStart", "5")),
    ),
    "double beyond a line's limit": (
        {"costs": [*GOOD, "1e15"]},
        Expected(reject("is beyond what one line item may carry", "1e15")),
    ),
}


@pytest.mark.parametrize("case", list(PARQUET_CASES), ids=list(PARQUET_CASES))
def test_malformed_parquet_input(tmp_path: Path, case: str) -> None:
    arguments, expected = PARQUET_CASES[case]
    path = parquet(tmp_path / "bill.parquet", **arguments)
    check(read(path, FocusLayout()), expected)


def test_a_truncated_gzip_fails_naming_the_file_and_the_cause(tmp_path: Path) -> None:
    path = tmp_path / "bill.csv.gz"
    path.write_bytes(gzip.compress(csv_bytes(Bill()))[:-12])
    with pytest.raises(ExportFileError, match=r"bill\.csv\.gz cannot be read whole: .*end-of-stream"):
        read(path, FocusLayout())


def test_a_truncated_parquet_fails_naming_the_file_and_the_cause(tmp_path: Path) -> None:
    path = parquet(tmp_path / "bill.parquet", list(GOOD))
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(ExportFileError, match=r"bill\.parquet.*(cannot be read|parquet|Parquet)"):
        read(path, FocusLayout())


def test_a_damaged_parquet_page_fails_naming_that_file_among_others(tmp_path: Path) -> None:
    parquet(tmp_path / "good.parquet", list(GOOD))
    damaged = tmp_path / "damaged.parquet"
    with duckdb.connect() as conn:
        conn.execute(
            f"""
            COPY (SELECT 1.5 AS BilledCost, 1.5 AS EffectiveCost, 'EUR' AS BillingCurrency,
                         TIMESTAMP '2026-10-01' AS BillingPeriodStart,
                         TIMESTAMP '2026-10-03' AS ChargePeriodStart,
                         'Usage' AS ChargeCategory, 'Compute' AS ServiceCategory,
                         'svc-' || CAST(i AS VARCHAR) || repeat('x', 50) AS ServiceName, 'AWS' AS ProviderName
                  FROM range(2000) AS t(i))
            TO '{damaged}' (FORMAT parquet, COMPRESSION uncompressed)
            """
        )
    data = bytearray(damaged.read_bytes())
    start = data.find(b"svc-", len(data) // 3)
    data[start : start + 400] = b"\xff" * 400
    damaged.write_bytes(bytes(data))
    with pytest.raises(
        ExportFileError, match=r"damaged\.parquet: a FOCUS export of 2026-10 cannot be read: .*UTF8"
    ):
        read(tmp_path, FocusLayout())


def test_a_long_line_is_read(tmp_path: Path) -> None:
    path = tmp_path / "bill.csv"
    path.write_bytes(csv_bytes(Bill(bad=focus("5", service="V" * 3_000_000) + "\n" + focus("6") + "\n")))
    check(read(path, FocusLayout()), Expected(published=(*GOOD, "5", "6")))


def test_a_line_longer_than_the_reader_splits_is_a_reject_and_the_rest_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(manifest, "MAX_LINE_BYTES", 4096)
    path = tmp_path / "bill.csv"
    path.write_bytes(csv_bytes(Bill(bad=focus("5", service="V" * 5000) + "\n" + focus("6") + "\n")))
    check(
        read(path, FocusLayout()), Expected(reject("longer than the reader accepts"), published=(*GOOD, "6"))
    )


def test_rows_after_a_refused_line_keep_their_numbers(tmp_path: Path) -> None:
    path = tmp_path / "bill.csv"
    path.write_bytes(csv_bytes(Bill(bad="1,1,EUR\n" + focus("2", currency="E1") + "\n")))
    result = read(path, FocusLayout())
    assert sorted(problem.ref.rsplit("#", 1)[1] for problem in result.problems) == ["row 4", "row 5"]


# --------------------------------------------------------------------------------------------
# Through a run: what used to fail a whole month now publishes it, with the rejects in the mart
# --------------------------------------------------------------------------------------------


def test_bad_rows_of_every_kind_leave_the_month_published(
    domain: PublicCloudRun,
    mart: psycopg.Connection,
    tmp_path: Path,
) -> None:
    exports = tmp_path / "exports"
    exports.mkdir()
    parquet(exports / "doubles.parquet", [*GOOD, "nan", "inf"])
    (exports / "rows.csv").write_bytes(
        csv_bytes(
            Bill(
                bad="".join(
                    line + "\n"
                    for line in (
                        focus("5", service="V\x01M"),
                        focus("12345678901"),
                        focus("1e19"),
                        focus("7", currency="US Dollar"),
                        focus("8", charged="epoch"),
                        "1,1,EUR",
                    )
                ),
                encoding_damage=b"\x00",
            )
        )
    )
    domain.setenv(FINOPS_FOCUS_PATHS=str(exports))

    result = domain.run(MONTH)

    assert result.success, failures(result)
    assert etl_run(mart, result.run_id)["status"] == "SUCCESS"
    evaluation = check_evaluations(result)[("public_cloud_releves", "reconciliation")]
    assert evaluation.passed and "file ledger: 2 file(s) add up" in evaluation.description
    good = sum((Decimal(cost) for cost in GOOD), Decimal(0)) * 2
    total = mart.execute("SELECT sum(total_cost) FROM finops.fact_releve").fetchone()
    assert total is not None and total[0] == good
    rejected = mart.execute(
        "SELECT reason, cost, currency, raw_payload FROM finops.releve_reject ORDER BY source_ref"
    ).fetchall()
    assert len(rejected) == 8
    by_reason = {reason: (cost, currency) for reason, cost, currency, _ in rejected}
    assert by_reason["the row holds a NUL byte"] == (Decimal(5), "EUR")
    assert by_reason["billing currency US Dollar is not an ISO 4217 code"] == (Decimal(7), None)
    assert by_reason["ChargePeriodStart epoch is not an ISO 8601 date"] == (Decimal(8), "EUR")
    beyond = [cost for reason, cost, _, _ in rejected if "beyond what one line item may carry" in reason]
    assert sorted(beyond, key=str) == sorted([Decimal("12345678901"), None], key=str)
    payloads = [payload for _, _, _, payload in rejected]
    assert any(payload.get("EffectiveCost") == "NaN" for payload in payloads)
    assert any("V\u2400M" in str(payload) for payload in payloads)
