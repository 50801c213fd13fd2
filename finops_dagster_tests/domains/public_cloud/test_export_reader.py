"""The Azure cost-details and AWS CUR layouts against every real sample and each malformed shape.

Expected totals are computed here from the raw CSV by a plain `csv` + `Decimal` loop, so a layout
bug cannot hide behind DuckDB's arithmetic. The engine keeps 18 decimals per line item, so a total
may differ from the exact sum by at most half of 1e-18 per line item.
"""

from __future__ import annotations

import csv
import datetime as dt
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
import yaml

from finops_dagster.domains.public_cloud import export_reader
from finops_dagster.domains.public_cloud.aws_cur import (
    DEFAULT_COST_COLUMN,
    REQUIRED_COLUMNS,
    AwsCurLayout,
)
from finops_dagster.domains.public_cloud.azure_cost_details import AzureCostDetailsLayout
from finops_dagster.domains.public_cloud.charges import Allocation, SourceMonth
from finops_dagster.domains.public_cloud.export_reader import ExportFileError, ExportLayout, ExportReader
from finops_dagster.domains.public_cloud.focus import FocusLayout
from finops_dagster.domains.public_cloud.gcp_billing_export import GcpBillingExportLayout
from finops_dagster.domains.public_cloud.tags import parse_tags, tag_value
from finops_dagster_tests.support.samples import SAMPLES

AZURE = SAMPLES / "azure"
AWS = SAMPLES / "aws"
NOW = dt.datetime(2025, 6, 1, 12, 0)
PRECISION = Decimal("1e-18")


@dataclass(frozen=True)
class Sample:
    path: Path
    layout: ExportLayout
    cost: str
    currency: str | None
    """The currency column; None: the file has none and is billed in USD."""
    date: str
    date_format: str


SAMPLE_FILES = [
    Sample(
        AZURE / "EA_ActualCost_Small.csv",
        AzureCostDetailsLayout(),
        "Cost",
        "BillingCurrency",
        "Date",
        "%m/%d/%Y",
    ),
    Sample(
        AZURE / "EA_AmortizedCost_Small.csv",
        AzureCostDetailsLayout(),
        "Cost",
        "BillingCurrency",
        "Date",
        "%m/%d/%Y",
    ),
    Sample(
        AZURE / "koku_azure_costreport_legacy.csv",
        AzureCostDetailsLayout(),
        "PreTaxCost",
        "Currency",
        "UsageDateTime",
        "%Y-%m-%d %H:%M:%S",
    ),
    Sample(
        AWS / "koku_legacy_cur_athena_columns_2022-07.csv",
        AwsCurLayout(),
        "line_item_unblended_cost",
        "line_item_currency_code",
        "line_item_usage_start_date",
        "%Y-%m-%d %H:%M:%S.%f",
    ),
    Sample(
        AWS / "sample-cur20-synthetic.csv",
        AwsCurLayout(),
        "line_item_unblended_cost",
        None,
        "line_item_usage_start_date",
        "%Y-%m-%dT%H:%M:%SZ",
    ),
]


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def write_csv(path: Path, rows: Sequence[dict[str, str]], *, encoding: str = "utf-8") -> Path:
    with path.open("w", encoding=encoding, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def expected_by_month(
    sample: Sample, path: Path | None = None
) -> dict[dt.date, dict[str, tuple[Decimal, int]]]:
    """Month → currency → (total cost, line items), summed by a plain loop over the file."""
    sums: dict[dt.date, dict[str, list[Decimal]]] = defaultdict(lambda: defaultdict(list))
    for row in csv_rows(path or sample.path):
        day = dt.datetime.strptime(row[sample.date], sample.date_format)
        currency = row[sample.currency] if sample.currency else "USD"
        sums[dt.date(day.year, day.month, 1)][currency].append(Decimal(row[sample.cost]))
    return {
        month: {currency: (sum(costs, Decimal(0)), len(costs)) for currency, costs in by_currency.items()}
        for month, by_currency in sums.items()
    }


def read(layout: ExportLayout, paths: Iterable[Path], month: dt.date) -> SourceMonth:
    return ExportReader(layout, [str(path) for path in paths], "TEST_PATHS").read_month(month, NOW)


def totals(result: SourceMonth) -> dict[str, tuple[Decimal, int]]:
    sums: dict[str, Decimal] = defaultdict(Decimal)
    counts: dict[str, int] = defaultdict(int)
    for group in result.groups:
        sums[group.billing_currency] += group.cost
        counts[group.billing_currency] += group.line_items
    return {currency: (sums[currency], counts[currency]) for currency in sums}


def assert_totals(result: SourceMonth, expected: dict[str, tuple[Decimal, int]]) -> None:
    got = totals(result)
    assert set(got) == set(expected)
    for currency, (cost, count) in expected.items():
        assert got[currency][1] == count
        assert abs(got[currency][0] - cost) <= count * PRECISION, (currency, got[currency][0], cost)
    assert result.line_items == sum(count for _, count in expected.values())


@pytest.mark.parametrize("sample", SAMPLE_FILES, ids=lambda sample: sample.path.name)
def test_sample_totals_match_an_independent_sum(sample: Sample) -> None:
    expected = expected_by_month(sample)
    assert expected
    for month, by_currency in expected.items():
        result = read(sample.layout, [sample.path], month)
        assert result.problems == []
        assert result.files_read == 1
        assert_totals(result, by_currency)
        assert {group.source for group in result.groups} == {sample.layout.source}


def test_known_sample_totals() -> None:
    """The figures the layouts give for the samples, as checked by hand."""
    september = dt.date(2023, 9, 1)
    actual = read(AzureCostDetailsLayout(), [AZURE / "EA_ActualCost_Small.csv"], september)
    assert totals(actual)["USD"][1] == 11
    assert round(totals(actual)["USD"][0], 12) == Decimal("8.545007786742")
    cur20 = read(AwsCurLayout(), [AWS / "sample-cur20-synthetic.csv"], dt.date(2025, 1, 1))
    assert totals(cur20) == {"USD": (Decimal("0.0652"), 4)}
    by_account = {group.sub_account_id: group.cost for group in cur20.groups}
    assert by_account == {"123456789012": Decimal("0.0312"), "987654321098": Decimal("0.034")}
    assert {group.service_name for group in cur20.groups} == {
        "Amazon Elastic Compute Cloud",
        "Amazon Relational Database Service",
    }


def test_a_month_without_line_items_skips_the_file() -> None:
    result = read(AzureCostDetailsLayout(), [AZURE / "EA_ActualCost_Small.csv"], dt.date(2023, 10, 1))
    assert result.groups == [] and result.problems == []
    assert [skipped.reason for skipped in result.skipped_files] == ["no line item in 2023-10"]


def test_azure_braceless_and_json_tags_are_parsed() -> None:
    september = dt.date(2023, 9, 1)
    actual = read(AzureCostDetailsLayout(), [AZURE / "EA_ActualCost_Small.csv"], september)
    databricks = [group for group in actual.groups if group.tags.get("application") == "databricks"]
    assert len(databricks) == 1
    assert databricks[0].tags["CostCenter"] == "1234"
    assert databricks[0].sub_account_name == "Trey Research IT"
    assert databricks[0].resource_group == "databricks-rg-PeskyData-s6taefbli5c5e"
    assert databricks[0].service_name == "Storage"
    assert databricks[0].pricing_unit == "10K"
    assert {group.charge_category for group in actual.groups} == {"Usage", "Purchase"}

    legacy = read(AzureCostDetailsLayout(), [AZURE / "koku_azure_costreport_legacy.csv"], dt.date(2019, 7, 1))
    assert [dict(group.tags) for group in legacy.groups] == [{"project": "p1"}] * len(legacy.groups)
    assert {group.sub_account_id for group in legacy.groups} == {"0039de71-ca37-4a17-a104-17665a50e7fc"}
    quantity = sum(group.pricing_quantity or 0 for group in legacy.groups)
    assert quantity == Decimal("0.000004") + Decimal("0.288") + Decimal("0.000144")


def test_azure_mca_sample_with_a_placeholder_currency_is_rejected_then_read_with_a_real_one(
    tmp_path: Path,
) -> None:
    """The MCA sample's BillingCurrencyCode is `MC`, not a currency: every row is a reject, none summed."""
    source = AZURE / "koku_azure_costexport_v2.csv"
    sample = Sample(
        source, AzureCostDetailsLayout(), "CostInBillingCurrency", "BillingCurrencyCode", "Date", "%Y-%m-%d"
    )
    rows = csv_rows(source)
    september = dt.date(2020, 9, 1)
    rejected = read(sample.layout, [source], september)
    assert rejected.groups == []
    assert rejected.line_items == len(rows) == 5
    assert {problem.reason for problem in rejected.problems} == {
        "BillingCurrencyCode MC is not an ISO 4217 code"
    }
    assert all(problem.cost is not None and problem.currency is None for problem in rejected.problems)

    euro = write_csv(tmp_path / "mca.csv", [{**row, "BillingCurrencyCode": "EUR"} for row in rows])
    expected = expected_by_month(sample, euro)
    assert list(expected) == [september]
    result = read(sample.layout, [euro], september)
    assert result.problems == []
    assert_totals(result, expected[september])
    assert totals(result)["EUR"] == (Decimal("19.998413754"), 5)
    assert {group.charge_category for group in result.groups} == {"Usage", "Purchase"}
    assert {group.sub_account_name for group in result.groups} == {"Openshift"}


def test_aws_legacy_per_tag_columns_become_tags(tmp_path: Path) -> None:
    """The sample's user tag columns are empty (no tags); filled in, they are read under their key."""
    source = AWS / "koku_legacy_cur_athena_columns_2022-07.csv"
    july = dt.date(2022, 7, 1)
    untagged = read(AwsCurLayout(), [source], july)
    assert [dict(group.tags) for group in untagged.groups] == [{}]

    rows = csv_rows(source)
    rows[0]["resource_tags_user_insights_project"] = "finops"
    rows[1]["resource_tags_user_c25_key"] = "c25"
    rows[1]["line_item_unblended_cost"] = "1.25"
    tagged = read(AwsCurLayout(), [write_csv(tmp_path / "cur.csv", rows)], july)
    by_tags = {tuple(sorted(group.tags.items())): group.cost for group in tagged.groups}
    assert by_tags == {(("insights_project", "finops"),): Decimal(0), (("c25_key", "c25"),): Decimal("1.25")}
    assert {group.service_name for group in tagged.groups} == {"Red Hat® Enterprise Linux®"}
    assert {group.pricing_unit for group in tagged.groups} == {"Hrs"}


def test_aws_legacy_csv_names_and_cur2_tag_map(tmp_path: Path) -> None:
    legacy = write_csv(
        tmp_path / "legacy.csv",
        [
            {
                "lineItem/UsageStartDate": "2024-03-05T00:00:00Z",
                "lineItem/UsageAccountId": "111122223333",
                "lineItem/ProductCode": "AmazonS3",
                "lineItem/LineItemType": "DiscountedUsage",
                "lineItem/UnblendedCost": "2.5",
                "lineItem/CurrencyCode": "EUR",
                "resourceTags/user:app-id": "billing",
                "resourceTags/aws:createdBy": "someone",
            }
        ],
    )
    cur2 = write_csv(
        tmp_path / "cur2.csv",
        [
            {
                "line_item_usage_start_date": "2024-03-06T00:00:00Z",
                "line_item_usage_account_id": "111122223333",
                "line_item_usage_account_name": "prod",
                "line_item_product_code": "AmazonEC2",
                "line_item_line_item_type": "SavingsPlanRecurringFee",
                "line_item_unblended_cost": "4",
                "line_item_currency_code": "EUR",
                "resource_tags": '{"user_app-id": "crm", "aws_created_by": "someone"}',
            }
        ],
    )
    result = read(AwsCurLayout(), [legacy, cur2], dt.date(2024, 3, 1))
    assert result.problems == []
    got = {
        group.service_name: (dict(group.tags), group.charge_category, group.cost) for group in result.groups
    }
    assert got == {
        "AmazonS3": ({"app-id": "billing"}, "Usage", Decimal("2.5")),
        "AmazonEC2": ({"app-id": "crm"}, "Purchase", Decimal(4)),
    }
    assert {group.sub_account_name for group in result.groups} == {None, "prod"}


def test_aws_cur2_parquet_with_a_tag_map(tmp_path: Path) -> None:
    path = tmp_path / "cur2.parquet"
    with duckdb.connect() as conn:
        conn.execute(
            f"""COPY (
                SELECT TIMESTAMP '2024-04-02 10:00:00' AS line_item_usage_start_date,
                       '111122223333' AS line_item_usage_account_id,
                       'AmazonEC2' AS line_item_product_code,
                       'Credit' AS line_item_line_item_type,
                       CAST(-0.1 AS DOUBLE) AS line_item_unblended_cost,
                       'USD' AS line_item_currency_code,
                       MAP {{'user_app-id': 'crm'}} AS resource_tags
            ) TO '{path}' (FORMAT parquet)"""
        )
    result = read(AwsCurLayout(), [path], dt.date(2024, 4, 1))
    assert [(dict(group.tags), group.charge_category, group.cost) for group in result.groups] == [
        ({"app-id": "crm"}, "Credit", Decimal("-0.1"))
    ]


def test_glue_table_lists_every_cur2_column_the_layout_requires() -> None:
    document = yaml.safe_load((AWS / "cid_cur2_glue_table_subset.yaml").read_text(encoding="utf-8"))
    columns = {column["Name"] for column in document["TableInput"]["StorageDescriptor"]["Columns"]}
    assert {DEFAULT_COST_COLUMN, *REQUIRED_COLUMNS} <= columns
    assert {
        "line_item_line_item_type",
        "product_product_name",
        "pricing_unit",
        "line_item_usage_amount",
    } <= columns


AZURE_ROW = {
    "Date": "09/04/2023",
    "BillingPeriodStartDate": "09/01/2023",
    "SubscriptionId": "sub-1",
    "SubscriptionName": "Sub one",
    "MeterCategory": "Storage",
    "ResourceGroup": "rg",
    "ChargeType": "Usage",
    "Quantity": "2",
    "UnitOfMeasure": "1 Hour",
    "Cost": "1.5",
    "BillingCurrency": "USD",
    "Tags": '"app-id": "crm"',
}


def test_azure_non_numeric_cost_is_a_reject_left_out_of_the_total(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "ea.csv", [AZURE_ROW, {**AZURE_ROW, "Cost": "1,5x"}, {**AZURE_ROW, "Cost": "2"}]
    )
    result = read(AzureCostDetailsLayout(), [path], dt.date(2023, 9, 1))
    assert totals(result) == {"USD": (Decimal("3.5"), 2)}
    assert result.line_items == 3
    [problem] = result.problems
    assert problem.reason == "Cost 1,5x is not a number"
    assert problem.cost is None and problem.currency == "USD"
    assert problem.ref.endswith("ea.csv#row 2")
    assert problem.raw["Cost"] == "1,5x"


def test_azure_missing_column_is_named(tmp_path: Path) -> None:
    row = {key: value for key, value in AZURE_ROW.items() if key != "BillingCurrency"}
    path = write_csv(tmp_path / "ea.csv", [row])
    with pytest.raises(
        ExportFileError, match=r"missing column\(s\) BillingCurrencyCode or BillingCurrency or Currency"
    ):
        read(AzureCostDetailsLayout(), [path], dt.date(2023, 9, 1))


def test_azure_bom_camel_case_names_and_null_literals(tmp_path: Path) -> None:
    """A BOM before the first column, lower-camel-case names, `NULL` written for empty values."""
    rows = [
        {key[0].lower() + key[1:]: value for key, value in AZURE_ROW.items()},
        {
            key[0].lower() + key[1:]: value
            for key, value in {**AZURE_ROW, "Tags": "NULL", "Quantity": "NULL"}.items()
        },
        {key[0].lower() + key[1:]: value for key, value in {**AZURE_ROW, "Cost": "NULL"}.items()},
    ]
    path = write_csv(tmp_path / "bom.csv", rows, encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbfdate,")
    result = read(AzureCostDetailsLayout(), [path], dt.date(2023, 9, 1))
    assert totals(result) == {"USD": (Decimal(3), 2)}
    got = {(tuple(group.tags.items()), group.pricing_quantity) for group in result.groups}
    assert got == {((), None), ((("app-id", "crm"),), Decimal(2))}
    [problem] = result.problems
    assert problem.reason == "cost is empty"


def test_azure_month_by_date_or_by_invoice_month(tmp_path: Path) -> None:
    late = {**AZURE_ROW, "Date": "10/01/2023", "Cost": "7"}
    path = write_csv(tmp_path / "ea.csv", [AZURE_ROW, late])
    september, october = dt.date(2023, 9, 1), dt.date(2023, 10, 1)
    assert totals(read(AzureCostDetailsLayout(), [path], september)) == {"USD": (Decimal("1.5"), 1)}
    assert totals(read(AzureCostDetailsLayout(), [path], october)) == {"USD": (Decimal(7), 1)}
    by_invoice = AzureCostDetailsLayout(by_invoice_month=True)
    assert totals(read(by_invoice, [path], september)) == {"USD": (Decimal("8.5"), 2)}
    assert read(by_invoice, [path], october).groups == []


def test_azure_unreadable_date_and_currency_are_rejects(tmp_path: Path) -> None:
    rows = [AZURE_ROW, {**AZURE_ROW, "Date": "31/31/2023"}, {**AZURE_ROW, "BillingCurrency": "US"}]
    result = read(AzureCostDetailsLayout(), [write_csv(tmp_path / "ea.csv", rows)], dt.date(2023, 9, 1))
    assert totals(result) == {"USD": (Decimal("1.5"), 1)}
    assert sorted(problem.reason for problem in result.problems) == [
        "BillingCurrency US is not an ISO 4217 code",
        "Date 31/31/2023 is not a date",
    ]


CUR_ROW = {
    "line_item_usage_start_date": "2024-05-03T00:00:00Z",
    "bill_billing_period_start_date": "2024-05-01T00:00:00Z",
    "line_item_usage_account_id": "111122223333",
    "line_item_product_code": "AmazonEC2",
    "line_item_line_item_type": "Usage",
    "line_item_usage_amount": "3",
    "pricing_unit": "Hrs",
    "line_item_unblended_cost": "0.3",
    "line_item_net_unblended_cost": "0.25",
    "line_item_currency_code": "USD",
}


def test_aws_non_numeric_cost_empty_currency_and_null_literals(tmp_path: Path) -> None:
    rows = [
        CUR_ROW,
        {**CUR_ROW, "line_item_unblended_cost": "n/a"},
        {**CUR_ROW, "line_item_currency_code": ""},
        {**CUR_ROW, "line_item_usage_amount": "NULL", "line_item_line_item_type": "NULL"},
    ]
    result = read(AwsCurLayout(), [write_csv(tmp_path / "cur.csv", rows)], dt.date(2024, 5, 1))
    assert totals(result) == {"USD": (Decimal("0.6"), 2)}
    assert {group.charge_category for group in result.groups} == {"Usage"}
    assert sorted(problem.reason for problem in result.problems) == [
        "line_item_currency_code (empty) is not an ISO 4217 code",
        "line_item_unblended_cost n/a is not a number",
    ]
    costs = {problem.reason: problem.cost for problem in result.problems}
    assert costs["line_item_unblended_cost n/a is not a number"] is None
    assert costs["line_item_currency_code (empty) is not an ISO 4217 code"] is not None


def test_aws_cost_column_and_invoice_month(tmp_path: Path) -> None:
    credit = {
        **CUR_ROW,
        "line_item_usage_start_date": "2024-04-30T00:00:00Z",
        "line_item_line_item_type": "Refund",
    }
    path = write_csv(tmp_path / "cur.csv", [CUR_ROW, credit])
    may = dt.date(2024, 5, 1)
    assert totals(read(AwsCurLayout(), [path], may)) == {"USD": (Decimal("0.3"), 1)}
    net = AwsCurLayout(cost_column="line_item_net_unblended_cost", by_invoice_month=True)
    result = read(net, [path], may)
    assert totals(result) == {"USD": (Decimal("0.5"), 2)}
    assert {group.charge_category for group in result.groups} == {"Usage", "Credit"}


def test_aws_missing_columns_are_named(tmp_path: Path) -> None:
    row = {key: value for key, value in CUR_ROW.items() if key != "line_item_usage_account_id"}
    path = write_csv(tmp_path / "cur.csv", [row])
    with pytest.raises(ExportFileError, match=r"missing column\(s\) line_item_usage_account_id$"):
        read(AwsCurLayout(), [path], dt.date(2024, 5, 1))
    with pytest.raises(ExportFileError, match="line_item_amortized_cost"):
        read(AwsCurLayout(cost_column="line_item_amortized_cost"), [path], dt.date(2024, 5, 1))


# --------------------------------------------------------------------------------------------
# The reader's edge cases: time zones, unplaceable rows, file names, volumes of bad rows
# --------------------------------------------------------------------------------------------

FOCUS_MIN_HEADER = (
    "BilledCost,EffectiveCost,BillingCurrency,BillingPeriodStart,ChargePeriodStart,ChargeCategory,"
    "ServiceCategory,ServiceName,ProviderName\n"
)


def focus_line(cost: str, charged: str, currency: str = "EUR") -> str:
    return f"{cost},{cost},{currency},{charged[:7]}-01T00:00:00Z,{charged},Usage,Compute,VM,AWS\n"


def focus_total(path: Path, month: dt.date) -> tuple[Decimal, SourceMonth]:
    read_ = ExportReader(FocusLayout(), [str(path)], "FINOPS_FOCUS_PATHS").read_month(month, NOW)
    return sum((group.cost for group in read_.groups), Decimal(0)), read_


def test_months_are_read_in_utc_whatever_the_host_zone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "focus.csv"
    path.write_text(
        FOCUS_MIN_HEADER
        + focus_line("7", "2026-03-01T00:00:00Z")
        + focus_line("3", "2026-03-31T23:00:00Z")
        + focus_line("5", "2026-04-01T01:30:00+02:00"),
        encoding="utf-8",
    )
    for zone in ("America/New_York", "Europe/Paris"):
        monkeypatch.setenv("TZ", zone)
        time.tzset()
        assert focus_total(path, dt.date(2026, 3, 1))[0] == Decimal(15)
        assert focus_total(path, dt.date(2026, 2, 1))[0] == 0
    monkeypatch.delenv("TZ")
    time.tzset()


def test_unreadable_periods_are_rejects_of_their_file_month_only(tmp_path: Path) -> None:
    path = tmp_path / "focus.csv"
    path.write_text(
        FOCUS_MIN_HEADER
        + focus_line("7", "2026-03-05T00:00:00Z")
        + focus_line("2", "2026-04-02T00:00:00Z")
        + "4,4,EUR,not-a-date,someday,Usage,Compute,VM,AWS\n",
        encoding="utf-8",
    )
    march_total, march = focus_total(path, dt.date(2026, 3, 1))
    april_total, april = focus_total(path, dt.date(2026, 4, 1))
    assert (march_total, april_total) == (Decimal(7), Decimal(2))
    assert [(p.reason, p.cost) for p in march.problems] == [
        ("ChargePeriodStart someday is not an ISO 8601 date", Decimal(4))
    ]
    assert april.problems == []
    assert march.source_costs == {"EUR": Decimal(11)} and april.source_costs == {"EUR": Decimal(2)}


def test_a_file_with_no_readable_date_fails_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "us-dates.csv"
    path.write_text(
        FOCUS_MIN_HEADER + "4,4,EUR,03/01/2026,03/05/2026,Usage,Compute,VM,AWS\n", encoding="utf-8"
    )
    with pytest.raises(
        ExportFileError, match=r"us-dates\.csv: no row has a period that can be read as a date"
    ):
        focus_total(path, dt.date(2026, 3, 1))


def test_file_names_with_glob_characters_are_refused(tmp_path: Path) -> None:
    (tmp_path / "export1.csv").write_text(FOCUS_MIN_HEADER + focus_line("40", "2026-03-05T00:00:00Z"))
    (tmp_path / "export[1].csv").write_text(FOCUS_MIN_HEADER + focus_line("5", "2026-03-05T00:00:00Z"))
    with pytest.raises(ExportFileError, match=r"export\[1\]\.csv: a file path with"):
        focus_total(tmp_path, dt.date(2026, 3, 1))


def test_many_bad_rows_are_summed_past_the_detailed_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export_reader, "DETAILED_REJECTS_PER_REASON", 3)
    path = tmp_path / "focus.csv"
    path.write_text(
        FOCUS_MIN_HEADER
        + focus_line("1", "2026-03-05T00:00:00Z")
        + "".join(focus_line("2", "2026-03-05T00:00:00Z", currency="E1") for _ in range(10)),
        encoding="utf-8",
    )
    total, read_ = focus_total(path, dt.date(2026, 3, 1))
    assert total == Decimal(1)
    assert [p.line_items for p in read_.problems] == [1, 1, 1, 7]
    assert read_.problems[-1].ref.endswith("#rows 5-11")
    assert (
        read_.problems[-1].reason
        == "billing currency E1 is not an ISO 4217 code (7 more rows like this one, summed)"
    )
    assert read_.line_items == 11


def test_gcp_credits_in_json_text_and_parquet_lists_are_netted(tmp_path: Path) -> None:
    header = (
        "billing_account_id,service.description,cost,currency,usage_start_time,invoice.month,project.id,"
        "labels,credits\n"
    )
    text = tmp_path / "json.csv"
    text.write_text(
        header
        + 'a,BigQuery,10,USD,2026-03-05 00:00:00+00:00,202603,p1,[],"[{""name"": ""x"", ""amount"": -4.5}]"\n'
        + "a,BigQuery,3,USD,2026-03-05 00:00:00+00:00,202603,p1,[],\"[{'amount': 'lots'}]\"\n",
        encoding="utf-8",
    )
    parquet = tmp_path / "list.parquet"
    with duckdb.connect() as conn:
        conn.execute(f"""
            COPY (SELECT 'a' AS billing_account_id, 'BigQuery' AS "service.description",
                         10.0::DECIMAL(18,6) AS cost, 'USD' AS currency,
                         TIMESTAMP '2026-03-05' AS usage_start_time, '202603' AS "invoice.month",
                         'p1' AS "project.id", [] :: STRUCT(key VARCHAR, value VARCHAR)[] AS labels,
                         [{{'name': 'x', 'amount': -4.0::DOUBLE}}] AS credits)
            TO '{parquet}' (FORMAT parquet)
        """)
    month = dt.date(2026, 3, 1)
    from_text = read(GcpBillingExportLayout(), [text], month)
    assert sum((g.cost for g in from_text.groups), Decimal(0)) == Decimal("5.5")
    assert [p.reason for p in from_text.problems] == [
        "credits [{'amount': 'lots'}] has an amount that is not a number"
    ]
    from_parquet = read(GcpBillingExportLayout(), [parquet], month)
    assert sum((g.cost for g in from_parquet.groups), Decimal(0)) == Decimal("6")


def test_a_month_placeholder_limits_the_files_read(tmp_path: Path) -> None:
    for month, cost in (("2026-03", "7"), ("2026-04", "2")):
        folder = tmp_path / month
        folder.mkdir()
        (folder / "part-0.csv").write_text(FOCUS_MIN_HEADER + focus_line(cost, f"{month}-05T00:00:00Z"))
    reader = ExportReader(FocusLayout(), [str(tmp_path / "{month}" / "*.csv")], "FINOPS_FOCUS_PATHS")
    march = reader.read_month(dt.date(2026, 3, 1), NOW)
    assert (march.files_read, march.skipped_files) == (1, [])
    assert sum((group.cost for group in march.groups), Decimal(0)) == Decimal(7)


TRICKY_TAGS = [
    '{"app-id": "pay"}',
    '"app-id": "pay","env": "prod"',
    '{"App_Id ": " PAY "}',
    '{" application ": "hr", "app-id": "  "}',
    '{"application": "hr", "app-id": "pay"}',
    '{"app-id": 12}',
    '{"app-id": 1.50}',
    '{"app-id": true}',
    '{"app-id": null, "application": "hr"}',
    '{"app-id": "a", "APP-ID": "b"}',
    '{"app-id": "a", "app-id": "b"}',
    '{"k": {"app-id": "nested"}}',
    '{"app-id": "caf\\u00e9"}',
    '{"app-id": "a\\"b"}',
    "NULL",
    "",
    "   ",
    "{bad json",
    "[1, 2]",
    '{"env": "prod"}',
    '{"app-id": "\\t", "application": "hr"}',
    '{"app-id\\n": "pay"}',
    '{"app-id": "ops",}',
    '{"app-id": ["pay",]}',
    '{"app-id": "\u00a0pay\u00a0"}',
    '{"app-id":\t"pay"}',
    '{"app-id": NaN, "application": "hr"}',
    '{"app-id": "pay" /* note */}',
    '{"app-id": "https://example.org/pay", "application": "hr"}',
]


def test_json_tags_resolve_in_duckdb_as_python_reads_them() -> None:
    """The application tag DuckDB finds in each tag set is the one tags.parse_tags and tags.tag_value
    find; what DuckDB cannot read as one object falls back to them."""
    keys = ("app-id", "application")
    allocation = Allocation(keys, frozenset({"PAY", "HR"}), lambda value_of: None)
    reader = ExportReader(FocusLayout(), [], "TEST_PATHS")
    with duckdb.connect() as conn:
        reader._prepare_allocation(conn, allocation)
        conn.execute("CREATE TEMP TABLE given AS SELECT unnest($tags) AS tags", {"tags": TRICKY_TAGS})
        reader._resolve_tags(conn, "SELECT tags FROM given", keys)
        resolved = dict(conn.execute("SELECT tags, tag_value FROM tag_values").fetchall())
        placed = dict(conn.execute("SELECT tags, application_id FROM tag_applications").fetchall())

    assert set(resolved) == set(TRICKY_TAGS)
    assert resolved == {raw: tag_value(parse_tags(raw), keys) for raw in TRICKY_TAGS}
    assert placed == {
        '{"app-id": "pay"}': "PAY",
        '"app-id": "pay","env": "prod"': "PAY",
        '{"App_Id ": " PAY "}': "PAY",
        '{" application ": "hr", "app-id": "  "}': "HR",
        '{"application": "hr", "app-id": "pay"}': "PAY",
        '{"app-id": null, "application": "hr"}': "HR",
        '{"app-id": "\\t", "application": "hr"}': "HR",
        '{"app-id\\n": "pay"}': "PAY",
        '{"app-id": "\u00a0pay\u00a0"}': "PAY",
        '{"app-id":\t"pay"}': "PAY",
    }
