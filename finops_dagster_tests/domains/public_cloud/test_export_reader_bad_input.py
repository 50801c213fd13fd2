"""Malformed bills: every row ends in a relevé, a reject with its reason, or the run fails naming the file.

Each case writes a small bill (CSV, gzipped CSV, Parquet; FOCUS, Azure cost details, AWS CUR)
with good rows whose costs the test sums itself with `Decimal`, plus one malformed element. The
read must publish exactly the good rows' cost (nothing lost, nothing invented), reject the bad
row with its reason and its readable cost, and keep every file's ledger balanced; or, for a file
whose structure is broken, fail naming the file.
"""

from __future__ import annotations

import datetime as dt
import gzip
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from finops_dagster.domains.public_cloud import manifest
from finops_dagster.domains.public_cloud.aws_cur import AwsCurLayout
from finops_dagster.domains.public_cloud.azure_cost_details import AzureCostDetailsLayout
from finops_dagster.domains.public_cloud.export_reader import ExportFileError, ExportLayout, ExportReader
from finops_dagster.domains.public_cloud.focus import FocusLayout
from finops_dagster.domains.public_cloud.ledger import ledger_breaks
from finops_dagster_tests.domains.public_cloud.test_assets import (  # noqa: F401  (fixtures)
    PublicCloudRun,
    domain,
    estate,
)
from finops_dagster_tests.support.domain_runs import check_evaluations, etl_run, failures

MONTH = dt.date(2026, 10, 1)
NOW = dt.datetime(2026, 11, 20, 12, 0)
GOOD = ("1.25", "2.5", "4")
LIMIT = Decimal(10) ** 18
"""A reject's cost column holds amounts below this; a larger one stays in its payload only."""
HEADER = (
    "BilledCost,EffectiveCost,BillingCurrency,BillingPeriodStart,ChargePeriodStart,ChargeCategory,"
    "ServiceCategory,ServiceName,ProviderName"
)
COST_LAST_HEADER = (
    "BilledCost,BillingCurrency,BillingPeriodStart,ChargePeriodStart,ChargeCategory,"
    "ServiceCategory,ServiceName,ProviderName,EffectiveCost"
)
AZURE_HEADER = "SubscriptionId,Date,Cost,BillingCurrency,MeterCategory,Tags,ChargeType"
CUR_HEADER = (
    "line_item_usage_start_date,line_item_unblended_cost,line_item_currency_code,line_item_product_code,"
    "line_item_usage_account_id"
)


def focus(
    cost: str,
    *,
    charged: str = "2026-10-03T10:00:00Z",
    billed: str = "2026-10-01T00:00:00Z",
    currency: str = "EUR",
    service: str = "VM",
) -> str:
    return f"{cost},{cost},{currency},{billed},{charged},Usage,Compute,{service},AWS"


def cost_last(cost: str) -> str:
    return f"{cost},EUR,2026-10-01T00:00:00Z,2026-10-03T10:00:00Z,Usage,Compute,VM,AWS,{cost}"


def azure(cost: str, *, date: str = "10/03/2026", currency: str = "EUR") -> str:
    return f'sub-1,{date},{cost},{currency},Storage,"""app"": ""x""",Usage'


def cur(cost: str, *, start: str = "2026-10-03T00:00:00Z") -> str:
    return f"{start},{cost},EUR,AmazonEC2,111122223333"


@dataclass(frozen=True)
class Bill:
    """What a case writes: the header, the good rows (costs GOOD) and the malformed text after them."""

    header: str = HEADER
    row: Callable[[str], str] = focus
    bad: str = ""
    """Lines written after the good rows, as they are (line breaks included)."""
    layout: ExportLayout = field(default_factory=FocusLayout)
    encoding_damage: bytes | None = None
    """Bytes written in place of the text `\\x01` in the file (to put invalid UTF-8 or NUL in a field)."""
    ending: str = "\n"


@dataclass(frozen=True)
class Expected:
    rejects: tuple[tuple[str, Decimal | None], ...] = ()
    """(reason text, the reject's cost) for each rejected row."""
    failure: str | None = None
    """For a broken file: what the error says (after the file's name)."""
    published: tuple[str, ...] = GOOD


def csv_bytes(bill: Bill) -> bytes:
    text = bill.header + "\n" + "".join(bill.row(cost) + "\n" for cost in GOOD) + bill.bad
    data = text.encode("utf-8")
    if bill.encoding_damage is not None:
        data = data.replace(b"\x01", bill.encoding_damage)
    return data


def write(path: Path, bill: Bill, kind: str) -> Path:
    data = csv_bytes(bill)
    if kind == "gz":
        path = path.with_suffix(".csv.gz")
        path.write_bytes(gzip.compress(data))
    else:
        path = path.with_suffix(".csv")
        path.write_bytes(data)
    return path


def reject(reason: str, cost: str | None = None) -> tuple[tuple[str, Decimal | None], ...]:
    return ((reason, None if cost is None else Decimal(cost)),)


CASES: dict[str, tuple[Bill, Expected]] = {
    "digit separator": (
        Bill(bad=focus("1_000") + "\n"),
        Expected(reject("EffectiveCost 1_000 is not a number")),
    ),
    "thousands comma": (
        Bill(bad=focus('"1,000"') + "\n"),
        Expected(reject("EffectiveCost 1,000 is not a number")),
    ),
    "NaN text": (Bill(bad=focus("NaN") + "\n"), Expected(reject("EffectiveCost NaN is not a number"))),
    "Infinity text": (
        Bill(bad=focus("Infinity") + "\n"),
        Expected(reject("EffectiveCost Infinity is not a number")),
    ),
    "-inf text": (Bill(bad=focus("-inf") + "\n"), Expected(reject("EffectiveCost -inf is not a number"))),
    "empty cost": (Bill(bad=focus("") + "\n"), Expected(reject("EffectiveCost is empty"))),
    "hex cost": (Bill(bad=focus("0x10") + "\n"), Expected(reject("EffectiveCost 0x10 is not a number"))),
    "epoch": (
        Bill(bad=focus("5", charged="epoch") + "\n"),
        Expected(reject("ChargePeriodStart epoch is not an ISO 8601 date", "5")),
    ),
    "infinity": (
        Bill(bad=focus("5", charged="infinity") + "\n"),
        Expected(reject("ChargePeriodStart infinity is not an ISO 8601 date", "5")),
    ),
    "-infinity": (
        Bill(bad=focus("5", charged="-infinity") + "\n"),
        Expected(reject("ChargePeriodStart -infinity is not an ISO 8601 date", "5")),
    ),
    "two-digit US year": (
        Bill(bad=focus("5", charged="4/1/25") + "\n"),
        Expected(reject("ChargePeriodStart 4/1/25 is not an ISO 8601 date", "5")),
    ),
    "1970": (
        Bill(bad=focus("5", charged="1970-01-01T00:00:00Z", billed="1970-01-01T00:00:00Z") + "\n"),
        Expected(reject("date 1970-01-01 00:00:00 is outside the plausible window", "5")),
    ),
    "year 9999": (
        Bill(bad=focus("5", charged="9999-12-31T00:00:00Z", billed="9999-12-01T00:00:00Z") + "\n"),
        Expected(reject("date 9999-12-31 00:00:00 is outside the plausible window", "5")),
    ),
    "year 4": (
        Bill(bad=focus("5", charged="0004-01-25T00:00:00Z", billed="0004-01-01T00:00:00Z") + "\n"),
        Expected(reject("date 0004-01-25 00:00:00 is outside the plausible window", "5")),
    ),
    "after next month": (
        Bill(bad=focus("5", charged="2027-03-02T00:00:00Z", billed="2027-03-01T00:00:00Z") + "\n"),
        Expected(reject("date 2027-03-02 00:00:00 is outside the plausible window", "5")),
    ),
    "far from its billing period": (
        Bill(bad=focus("5", billed="2024-02-01T00:00:00Z") + "\n"),
        Expected(reject("is more than a year from BillingPeriodStart", "5")),
    ),
    "charge period empty": (
        Bill(bad=focus("5", charged="") + "\n"),
        Expected(reject("ChargePeriodStart (empty) is not an ISO 8601 date", "5")),
    ),
    "NUL byte": (
        Bill(bad=focus("5", service="V\x01M") + "\n", encoding_damage=b"\x00"),
        Expected(reject("the row holds a NUL byte", "5")),
    ),
    "not UTF-8": (
        Bill(bad=focus("5", service="V\x01M") + "\n", encoding_damage=b"\xff"),
        Expected(reject("bytes that are not UTF-8")),
    ),
    "fewer columns": (Bill(bad="5,5,EUR,2026-10-01\n"), Expected(reject("fewer columns than the header"))),
    "more columns": (Bill(bad=focus("5") + ",extra\n"), Expected(reject("more columns than the header"))),
    "cut inside the last row": (
        Bill(bad=focus("123.45")[:3], ending=""),
        Expected(reject("fewer columns than the header")),
    ),
    "cut inside the last value": (
        Bill(header=COST_LAST_HEADER, row=cost_last, bad=cost_last("123.45")[:-4]),
        Expected(reject("the file ends inside this row")),
    ),
    "a last line without its break, whole": (
        Bill(header=COST_LAST_HEADER, row=cost_last, bad=cost_last("9")),
        Expected(reject("the file ends inside this row")),
    ),
    "beyond a line's limit": (
        Bill(bad=focus("12345678901") + "\n"),
        Expected(reject("is beyond what one line item may carry", "12345678901")),
    ),
    "beyond the reject column": (
        Bill(bad=focus("1e19") + "\n"),
        Expected(reject("is beyond what one line item may carry", "1e19")),
    ),
    "beyond the engine": (
        Bill(bad=focus("1e25") + "\n"),
        Expected(reject("EffectiveCost 1e25 is not a number")),
    ),
    "currency not ISO": (
        Bill(bad=focus("5", currency="US Dollar") + "\n"),
        Expected(reject("billing currency US Dollar is not an ISO 4217 code", "5")),
    ),
    "currency empty": (
        Bill(bad=focus("5", currency="") + "\n"),
        Expected(reject("billing currency (empty) is not an ISO 4217 code", "5")),
    ),
    "blank lines": (Bill(bad="\n\n" + focus("5") + "\n\n"), Expected(published=(*GOOD, "5"))),
    "unclosed quote": (
        Bill(bad=focus('"5') + "\n"),
        Expected(reject("a value holds a quote it does not close")),
    ),
    "duplicated cost column": (
        Bill(header=HEADER + ",EffectiveCost", row=lambda cost: focus(cost) + ",99"),
        Expected(failure="the header names column 'EffectiveCost' twice"),
    ),
    "duplicated column in another case": (
        Bill(header=HEADER + ",effectivecost", row=lambda cost: focus(cost) + ",99"),
        Expected(failure="the header names column 'effectivecost' twice"),
    ),
    "Azure two-digit year": (
        Bill(
            header=AZURE_HEADER,
            row=azure,
            bad=azure("5", date="4/1/25") + "\n",
            layout=AzureCostDetailsLayout(),
        ),
        Expected(reject("Date 4/1/25 is not a date", "5")),
    ),
    "Azure epoch": (
        Bill(
            header=AZURE_HEADER,
            row=azure,
            bad=azure("5", date="epoch") + "\n",
            layout=AzureCostDetailsLayout(),
        ),
        Expected(reject("Date epoch is not a date", "5")),
    ),
    "Azure digit separator": (
        Bill(header=AZURE_HEADER, row=azure, bad=azure("1_000") + "\n", layout=AzureCostDetailsLayout()),
        Expected(reject("Cost 1_000 is not a number")),
    ),
    "CUR infinity": (
        Bill(header=CUR_HEADER, row=cur, bad=cur("5", start="infinity") + "\n", layout=AwsCurLayout()),
        Expected(reject("line_item_usage_start_date infinity is not a date", "5")),
    ),
    "CUR ragged": (
        Bill(header=CUR_HEADER, row=cur, bad="2026-10-03T00:00:00Z,5\n", layout=AwsCurLayout()),
        Expected(reject("fewer columns than the header")),
    ),
}


def read(path: Path, layout: ExportLayout) -> Any:
    return ExportReader(layout, [str(path)], "TEST_PATHS").read_month(MONTH, NOW)


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
    domain: PublicCloudRun,  # noqa: F811
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
