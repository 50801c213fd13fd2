"""The public_cloud domain end to end: export files on disk, a real mart, real Dagster runs.

Expected figures are computed here independently of the pipeline: the samples are summed with
Python's csv module and Decimal, row by row, and converted with the rate the test reads from the
exchange-rate file itself.
"""

from __future__ import annotations

import ast
import csv
import datetime as dt
import gzip
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from finops_dagster.checks.reconciliation import cost_balances
from finops_dagster.demo.estate import Estate, build_estate
from finops_dagster.domains.public_cloud import export_reader
from finops_dagster.domains.public_cloud.assets import exchange_rates, families_by_service_category
from finops_dagster.domains.public_cloud.aws_cur import AwsCurLayout
from finops_dagster.domains.public_cloud.azure_cost_details import AzureCostDetailsLayout
from finops_dagster.domains.public_cloud.export_reader import ExportLayout, ExportReader
from finops_dagster.domains.public_cloud.focus import FocusLayout
from finops_dagster.domains.public_cloud.fold import ChargeFold, FoldSettings
from finops_dagster.domains.public_cloud.gcp_billing_export import GcpBillingExportLayout
from finops_dagster.domains.public_cloud.resource import PublicCloudResource, public_cloud_from_env
from finops_dagster.domains.public_cloud.settings import public_cloud_settings
from finops_dagster.domains.public_cloud.tags import parse_tags, tag_value
from finops_dagster.mart.staging import stage_domain_load
from finops_dagster.reference.catalog import DATA_DIR
from finops_dagster.reference.loader import upsert_products
from finops_dagster.reference.snapshot import read_snapshot
from finops_dagster.settings import SettingError
from finops_dagster_tests.support.domain_runs import (
    UNALLOCATED,
    DomainRun,
    check_evaluations,
    etl_run,
    fact_rows,
    failures,
    open_domain_run,
)
from finops_dagster_tests.support.samples import SAMPLES

SOURCE_SETTINGS = (
    "FINOPS_FOCUS_",
    "FINOPS_PUBLIC_CLOUD_",
    "FINOPS_GCP_",
    "FINOPS_AZURE_",
    "FINOPS_AWS_",
    "FINOPS_REPORTING_CURRENCY",
)
FOCUS_SAMPLE = SAMPLES / "focus" / "focus1.0_sample_1000.csv"
FOCUS_HEADER = (
    "BilledCost,EffectiveCost,BillingCurrency,BillingPeriodStart,ChargePeriodStart,ChargeCategory,"
    "ServiceCategory,ServiceName,ProviderName,SubAccountId,SubAccountName,PricingQuantity,PricingUnit,Tags,"
    "x_Extra"
)


class PublicCloudRun(DomainRun):
    asset_nodes = ("public_cloud_releves", "fact_releve")

    def domain_resources(self) -> dict[str, Any]:
        return {"public_cloud": PublicCloudResource(sources=list(public_cloud_settings().sources))}


@pytest.fixture
def estate() -> Estate:
    return build_estate(applications=40, seed=3)


@pytest.fixture
def domain(
    estate: Estate, monkeypatch: pytest.MonkeyPatch, resources: dict[str, Any], mart: psycopg.Connection
) -> Iterator[PublicCloudRun]:
    with open_domain_run(
        PublicCloudRun,
        domain="public_cloud",
        source_settings=SOURCE_SETTINGS,
        estate=estate,
        day=dt.date(2026, 11, 20),
        monkeypatch=monkeypatch,
        resources=resources,
        mart=mart,
    ) as run:
        yield run


def usd_to_eur(month: dt.date) -> Decimal:
    """The rate of the month as the reference file says, read here without the pipeline's loader."""
    with (DATA_DIR / "exchange_rates.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["period_month"] == month.isoformat() and row["from_currency"] == "USD":
                return Decimal(row["rate"])
    raise AssertionError(f"no USD rate for {month}")


def published(mart: psycopg.Connection, month: dt.date) -> dict[str, Decimal]:
    row = mart.execute(
        "SELECT coalesce(sum(billed_cost), 0), coalesce(sum(total_cost), 0), count(*), "
        "coalesce(sum(source_record_count), 0) FROM finops.fact_releve "
        "WHERE period_month = %s AND domain_id = 'public_cloud'",
        (month,),
    ).fetchone()
    assert row is not None
    return {"billed": row[0], "total": row[1], "releves": Decimal(row[2]), "line_items": Decimal(row[3])}


def rejects(mart: psycopg.Connection, month: dt.date) -> list[tuple[Any, ...]]:
    return mart.execute(
        "SELECT source, source_ref, reason, cost, currency, raw_payload FROM finops.releve_reject "
        "WHERE domain_id = 'public_cloud' AND period_month = %s ORDER BY source_ref",
        (month,),
    ).fetchall()


def assert_close(actual: Decimal, expected: Decimal, rows: Decimal) -> None:
    """Equal within the relevé contract's rounding: half a unit of the sixth decimal per relevé."""
    assert abs(actual - expected) <= Decimal("0.0000005") * (rows + 1), (actual, expected)


def write_focus(path: Path, rows: list[str], *, header: str = FOCUS_HEADER, bom: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = ("\ufeff" if bom else "") + header + "\n" + "".join(row + "\n" for row in rows)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode("utf-8")))
    else:
        path.write_text(text, encoding="utf-8")
    return path


def as_parquet(csv_file: Path, parquet_file: Path) -> Path:
    """The same FOCUS rows as a Parquet file (every column as text)."""
    parquet_file.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect() as conn:
        conn.execute(
            f"COPY (SELECT * FROM read_csv('{csv_file}', all_varchar = true, header = true, "
            f"nullstr = 'NULL')) TO '{parquet_file}' (FORMAT parquet)"
        )
    return parquet_file


def costs_by_application(mart: psycopg.Connection) -> dict[str, Decimal]:
    query = "SELECT application_id, sum(total_cost) FROM finops.fact_releve GROUP BY 1"
    return dict(mart.execute(query).fetchall())


def focus_row(
    cost: str,
    *,
    month: str = "2026-10",
    currency: str = "EUR",
    service: str = "Virtual Machines",
    category: str = "Compute",
    charge: str = "Usage",
    provider: str = "Microsoft",
    sub_account: str = "sub-1",
    sub_account_name: str = "shared",
    tags: str = "NULL",
    quantity: str = "1",
    unit: str = "Hours",
) -> str:
    return ",".join(
        (
            cost,
            cost,
            currency,
            f"{month}-01 00:00:00",
            f"{month}-03 10:00:00",
            charge,
            category,
            service,
            provider,
            sub_account,
            sub_account_name,
            quantity,
            unit,
            tags,
            "ignored",
        )
    )


# --------------------------------------------------------------------------------------------
# The real-world samples
# --------------------------------------------------------------------------------------------


def test_focus_sample_totals_match_an_independent_sum(
    domain: PublicCloudRun, mart: psycopg.Connection
) -> None:
    month = dt.date(2024, 9, 1)
    with FOCUS_SAMPLE.open(encoding="utf-8-sig", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["ChargePeriodStart"].startswith("2024-09")]
    expected = sum((Decimal(row["EffectiveCost"]) for row in rows), Decimal(0))
    domain.setenv(FINOPS_FOCUS_PATHS=str(FOCUS_SAMPLE.parent))

    result = domain.run(month)

    assert result.success, failures(result)
    figures = published(mart, month)
    assert figures["line_items"] == len(rows) == 1000
    assert_close(figures["billed"], expected, figures["releves"])
    assert_close(figures["total"], expected * usd_to_eur(month), figures["releves"] * 2)
    load = mart.execute(
        "SELECT source_costs, reject_count, details FROM finops.domain_load WHERE run_id = %s",
        (result.run_id,),
    ).fetchone()
    assert load is not None
    assert Decimal(load[0]["USD"]) == expected and load[1] == 0
    assert load[2]["exchange_rates"] == {
        "USD": f"{usd_to_eur(month)} (indicative monthly average (replace with the treasury's rates))"
    }
    assert any(
        "converted at an indicative rate" in str(entry) for entry in domain.instance.all_logs(result.run_id)
    )
    check = check_evaluations(result)[("public_cloud_releves", "reconciliation")]
    assert check.passed, check.description
    currencies = mart.execute(
        "SELECT DISTINCT currency, billed_currency, source FROM finops.fact_releve "
        "WHERE domain_id = 'public_cloud'"
    ).fetchall()
    assert currencies == [("EUR", "USD", "focus:USD")]
    assert etl_run(mart, result.run_id)["status"] == "SUCCESS"


def test_focus_sample_credit_and_tax_categories_are_kept(
    domain: PublicCloudRun, mart: psycopg.Connection
) -> None:
    month = dt.date(2024, 9, 1)
    domain.setenv(FINOPS_FOCUS_PATHS=str(FOCUS_SAMPLE), FINOPS_FOCUS_COST_COLUMN="BilledCost")
    with FOCUS_SAMPLE.open(encoding="utf-8-sig", newline="") as handle:
        sample = list(csv.DictReader(handle))
    credits = sum((Decimal(r["BilledCost"]) for r in sample if r["ChargeCategory"] == "Credit"), Decimal(0))
    billed = sum((Decimal(r["BilledCost"]) for r in sample), Decimal(0))

    result = domain.run(month)

    assert result.success, failures(result)
    figures = published(mart, month)
    assert_close(figures["billed"], billed, figures["releves"])
    assert credits < 0
    details = mart.execute(
        "SELECT details FROM finops.domain_load WHERE run_id = %s", (result.run_id,)
    ).fetchone()
    assert details is not None
    assert details[0]["charge_categories"] == {"Adjustment": 2, "Credit": 1, "Usage": 997}


def gcp_expected(path: Path) -> dict[str, Decimal]:
    """Net cost (cost + credits) per month of usage_start_time, read with csv and ast."""
    totals: dict[str, Decimal] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            credits = sum(
                (Decimal(str(c["amount"])) for c in ast.literal_eval(row["credits"] or "[]")), Decimal(0)
            )
            month = row["usage_start_time"][:7]
            totals[month] = totals.get(month, Decimal(0)) + Decimal(row["cost"]) + credits
    return totals


@pytest.mark.parametrize(
    "sample", ["koku_gcp_billing_export_202011.csv", "koku_gcp_billing_export_2022-08-01.csv"]
)
def test_gcp_billing_export_samples_match_an_independent_sum(mart: psycopg.Connection, sample: str) -> None:
    """Read and folded as the asset does (the samples' months are before the partitions' first month,
    so no Dagster run can select them)."""
    path = SAMPLES / "gcp" / sample
    expected = gcp_expected(path)
    (month_key,) = expected
    month = dt.date.fromisoformat(month_key + "-01")
    read = ExportReader(GcpBillingExportLayout(), [str(path)], "FINOPS_GCP_BILLING_EXPORT_PATHS").read_month(
        month, dt.datetime.now(dt.UTC)
    )
    assert sum((group.cost for group in read.groups), Decimal(0)) == expected[month_key]
    assert read.problems == [] and read.files_read == 1

    fold = ChargeFold(
        month=month,
        run_id="r",
        computed_at=dt.datetime.now(dt.UTC),
        snapshot=read_snapshot(mart, "public_cloud"),
        exchange_rates=exchange_rates(mart, month, "EUR"),
        settings=FoldSettings(("app-id",), "EUR", False, families_by_service_category()),
    )
    for group in read.groups:
        fold.add(group)
    load = fold.finish({})
    billed = sum((releve.billed_cost or Decimal(0) for releve in load.releves), Decimal(0))
    assert_close(billed, expected[month_key], Decimal(len(load.releves)))
    assert load.source_costs == {"USD": expected[month_key]}
    assert {releve.product_id.split(":")[0] for releve in load.releves} == {"Google Cloud"}
    assert {releve.application_id for releve in load.releves} == {UNALLOCATED}


# --------------------------------------------------------------------------------------------
# Allocation, currencies, bad input
# --------------------------------------------------------------------------------------------


def test_allocation_by_tag_then_rule_then_unallocated(
    domain: PublicCloudRun, mart: psycopg.Connection, estate: Estate, tmp_path: Path
) -> None:
    tagged, ruled = estate.applications[0].code, estate.applications[1].code
    write_focus(
        tmp_path / "azure" / "2026-10.csv",
        [
            focus_row("10.5", tags=f'"{{"" App-ID "": ""{tagged.lower()}""}}"'),
            focus_row("2.25", sub_account_name=f"{ruled.lower()}-prod"),
            focus_row("1.125", tags='"{""app-id"": ""not-an-application""}"'),
            focus_row("-0.5", charge="Credit"),
        ],
    )
    domain.setenv(FINOPS_FOCUS_PATHS=str(tmp_path / "azure" / "*.csv"))

    result = domain.run(dt.date(2026, 10, 1))

    assert result.success, failures(result)
    costs = costs_by_application(mart)
    assert costs == {tagged: Decimal("10.5"), ruled: Decimal("2.25"), UNALLOCATED: Decimal("0.625")}
    details = mart.execute("SELECT details FROM finops.domain_load").fetchone()
    assert details is not None and details[0]["unknown_application_tags"] == {"not-an-application": 1}
    product = mart.execute(
        "SELECT family_id, label FROM finops.dim_product WHERE product_id = 'Microsoft:Virtual Machines'"
    ).fetchone()
    assert product == ("PUB_COMPUTE", "Microsoft Virtual Machines")


def test_unknown_tags_sharing_what_the_rules_read_are_placed_once_and_reported(
    domain: PublicCloudRun, mart: psycopg.Connection, estate: Estate, tmp_path: Path
) -> None:
    """Charges whose tags name no application but whose sub-account a rule maps are placed by the
    rule once each, however many tag values share that sub-account; unknown tag values nothing
    placed are reported with their line items. The same from a CSV file (tags resolved after the
    scan) and a Parquet file (tags resolved before it)."""
    tagged, ruled = estate.applications[0].code, estate.applications[1].code
    rows = [
        focus_row("1", tags=f'"{{""app-id"": ""{tagged}""}}"'),
        focus_row("2", sub_account_name=f"{ruled.lower()}-prod", tags='"{""app-id"": ""ghost-1""}"'),
        focus_row("4", sub_account_name=f"{ruled.lower()}-prod", tags='"{""app-id"": ""ghost-2""}"'),
        focus_row("8", sub_account_name=f"{ruled.lower()}-prod"),
        focus_row("16", tags='"{""app-id"": ""ghost-3""}"'),
        focus_row("32", tags='"{""app-id"": ""ghost-3""}"', service="Storage Accounts"),
        focus_row("64", tags='"{""app-id"": ""ghost-4""}"'),
    ]
    as_parquet(write_focus(tmp_path / "azure" / "2026-10.csv", rows), tmp_path / "aws" / "2026-10.parquet")
    domain.setenv(FINOPS_FOCUS_PATHS=str(tmp_path / "**" / "*.*"))

    result = domain.run(dt.date(2026, 10, 1))

    assert result.success, failures(result)
    costs = costs_by_application(mart)
    assert costs == {tagged: Decimal("2"), ruled: Decimal("28"), UNALLOCATED: Decimal("224")}
    details = mart.execute("SELECT details FROM finops.domain_load").fetchone()
    assert details is not None
    assert details[0]["unknown_application_tags"] == {"ghost-3": 4, "ghost-4": 2}


def test_a_month_of_more_files_than_one_query_reads_is_summed_whole(
    domain: PublicCloudRun,
    mart: psycopg.Connection,
    estate: Estate,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Files are read a few per query; every file of every query counts once, bad rows included."""
    monkeypatch.setattr(export_reader, "FILES_PER_QUERY", 2)
    application = estate.applications[0].code
    tags = f'"{{""app-id"": ""{application}""}}"'
    for number in range(5):
        csv_file = write_focus(
            tmp_path / "exports" / f"part-{number}.csv",
            [focus_row(f"{2**number}", tags=tags), focus_row("100", month="2026-09")],
        )
        as_parquet(csv_file, tmp_path / "exports" / f"part-{number}.parquet")
    write_focus(tmp_path / "exports" / "part-bad.csv", [focus_row("not-a-number", tags=tags)])
    domain.setenv(FINOPS_FOCUS_PATHS=str(tmp_path / "exports"))

    result = domain.run(dt.date(2026, 10, 1))

    assert result.success, failures(result)
    costs = costs_by_application(mart)
    assert costs == {application: Decimal(2 * 31)}
    assert [reject[2] for reject in rejects(mart, dt.date(2026, 10, 1))] == [
        "EffectiveCost not-a-number is not a number"
    ]


def test_bad_rows_are_rejects_with_reasons_and_odd_files_are_reported(
    domain: PublicCloudRun, mart: psycopg.Connection, tmp_path: Path
) -> None:
    exports = tmp_path / "exports"
    write_focus(
        exports / "good.csv.gz", [focus_row("3.5"), focus_row("4", tags='"""env"": ""prod"""')], bom=True
    )
    write_focus(
        exports / "bad.csv",
        [
            focus_row("abc"),
            focus_row("NULL"),
            focus_row("7", currency="E1"),
            focus_row("2", quantity="lots"),
            focus_row("1.5"),
        ],
    )
    write_focus(exports / "september.csv", [focus_row("99", month="2026-09")])
    (exports / "empty.csv").write_text("")
    domain.setenv(FINOPS_FOCUS_PATHS=str(exports))
    month = dt.date(2026, 10, 1)

    result = domain.run(month)

    assert result.success, failures(result)
    found = [(reason, cost, currency) for _, _, reason, cost, currency, _ in rejects(mart, month)]
    assert sorted(found, key=str) == sorted(
        [
            ("EffectiveCost abc is not a number", None, None),
            ("EffectiveCost is empty", None, None),
            ("billing currency E1 is not an ISO 4217 code", Decimal("7.000000"), None),
            ("PricingQuantity lots is not a number", Decimal("2.000000"), "EUR"),
        ],
        key=str,
    )
    refs = {ref for _, ref, *_ in rejects(mart, month)}
    assert any(ref.endswith("bad.csv#row 1") for ref in refs)
    assert published(mart, month)["billed"] == 0  # EUR needs no conversion: billed_cost stays NULL
    total = mart.execute("SELECT sum(total_cost) FROM finops.fact_releve").fetchone()
    assert total is not None and total[0] == Decimal("9.000000")
    assert check_evaluations(result)[("public_cloud_releves", "reconciliation")].passed
    metadata = result.asset_materializations_for_node("public_cloud_releves")[0].metadata
    sources = metadata["sources"].value
    assert "empty.csv: empty file" in sources and "september.csv: no line item in 2026-10" in sources
    assert metadata["skipped_files"].value == 2


def test_a_currency_without_rate_is_a_reject_with_its_billed_cost(
    domain: PublicCloudRun, mart: psycopg.Connection, tmp_path: Path
) -> None:
    write_focus(tmp_path / "f.csv", [focus_row("12.5", currency="CHF"), focus_row("1", currency="USD")])
    domain.setenv(FINOPS_FOCUS_PATHS=str(tmp_path / "f.csv"))
    month = dt.date(2026, 10, 1)

    result = domain.run(month)

    assert result.success, failures(result)
    ((source, _, reason, cost, currency, _),) = rejects(mart, month)
    assert (source, reason, cost, currency) == (
        "focus",
        "no exchange rate CHF→EUR for 2026-10 (reference/data/exchange_rates.csv)",
        Decimal("12.5"),
        "CHF",
    )
    ((billed, billed_currency, total),) = mart.execute(
        "SELECT billed_cost, billed_currency, total_cost FROM finops.fact_releve"
    ).fetchall()
    assert (billed, billed_currency, total) == (
        Decimal("1"),
        "USD",
        usd_to_eur(month).quantize(Decimal("0.000001")),
    )
    assert check_evaluations(result)[("public_cloud_releves", "reconciliation")].passed


def test_missing_focus_columns_fail_the_run_naming_them(
    domain: PublicCloudRun, mart: psycopg.Connection, tmp_path: Path
) -> None:
    header = FOCUS_HEADER.replace("ServiceCategory,", "").replace("BillingCurrency,", "")
    row = focus_row("1").split(",")
    del row[6], row[2]
    write_focus(tmp_path / "old.csv", [",".join(row)], header=header)
    domain.setenv(FINOPS_FOCUS_PATHS=str(tmp_path))

    result = domain.run(dt.date(2026, 10, 1))

    assert not result.success
    run = etl_run(mart, result.run_id)
    assert run["status"] == "FAILED"
    assert "old.csv is not a FOCUS export this pipeline can read" in run["error_summary"]
    assert "missing column(s) BillingCurrency, ServiceCategory" in run["error_summary"]
    assert mart.execute("SELECT count(*) FROM finops.fact_releve").fetchone() == (0,)


def test_parquet_with_doubles_and_focus_1_3_provider_column(
    domain: PublicCloudRun, mart: psycopg.Connection, tmp_path: Path
) -> None:
    path = tmp_path / "aws" / "part-0.parquet"
    path.parent.mkdir()
    with duckdb.connect() as conn:
        conn.execute(f"""
        COPY (SELECT 0.1::DOUBLE AS BilledCost, 0.1::DOUBLE AS EffectiveCost, 'USD' AS BillingCurrency,
                     TIMESTAMP '2026-10-01' AS BillingPeriodStart,
                     TIMESTAMP '2026-10-05 03:00' AS ChargePeriodStart,
                     'Usage' AS ChargeCategory, 'Storage' AS ServiceCategory, 'Amazon S3' AS ServiceName,
                     'AWS' AS ServiceProviderName, MAP {{'app-id': 'x'}} AS Tags
              FROM range(10))
        TO '{path}' (FORMAT parquet)
    """)
    domain.setenv(FINOPS_FOCUS_PATHS=str(tmp_path / "**" / "*.parquet"))
    month = dt.date(2026, 10, 1)

    result = domain.run(month)

    assert result.success, failures(result)
    (row,) = fact_rows(mart, month)
    assert row[2] == "AWS:Amazon S3" and row[3] == "PUB_STORAGE"
    assert published(mart, month)["billed"] == Decimal("1.000000")  # ten times 0.1, exactly


def test_a_month_computed_again_gives_the_same_releves(
    domain: PublicCloudRun, mart: psycopg.Connection
) -> None:
    domain.setenv(FINOPS_FOCUS_PATHS=str(FOCUS_SAMPLE))
    month = dt.date(2024, 9, 1)
    first = domain.run(month)
    before = fact_rows(mart, month)
    second = domain.run(month)
    assert first.success and second.success
    assert fact_rows(mart, month) == before and before


def test_settings_fail_at_start_naming_the_variable(
    domain: PublicCloudRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SettingError, match="FINOPS_FOCUS_PATHS is not set"):
        public_cloud_from_env()
    monkeypatch.setenv("FINOPS_FOCUS_PATHS", "/nowhere")
    monkeypatch.setenv("FINOPS_FOCUS_COST_COLUMN", "ListCost")
    with pytest.raises(
        SettingError, match="FINOPS_FOCUS_COST_COLUMN must be one of EffectiveCost, BilledCost"
    ):
        public_cloud_settings()
    monkeypatch.setenv("FINOPS_FOCUS_COST_COLUMN", "BilledCost")
    monkeypatch.setenv("FINOPS_PUBLIC_CLOUD_SOURCES", "focus,oracle")
    with pytest.raises(SettingError, match="unknown source 'oracle'"):
        public_cloud_settings()


def test_no_export_at_all_fails_the_run(
    domain: PublicCloudRun, mart: psycopg.Connection, tmp_path: Path
) -> None:
    domain.setenv(FINOPS_FOCUS_PATHS=str(tmp_path / "*.parquet"))
    result = domain.run(dt.date(2026, 10, 1))
    assert not result.success
    assert "FINOPS_FOCUS_PATHS matches no FOCUS export" in etl_run(mart, result.run_id)["error_summary"]


def test_cur_sample_through_the_asset(domain: PublicCloudRun, mart: psycopg.Connection) -> None:
    path = SAMPLES / "aws" / "sample-cur20-synthetic.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        expected = sum(
            (Decimal(row["line_item_unblended_cost"]) for row in csv.DictReader(handle)), Decimal(0)
        )
    domain.setenv(FINOPS_PUBLIC_CLOUD_SOURCES="aws_cur", FINOPS_AWS_CUR_PATHS=str(path))
    month = dt.date(2025, 1, 1)

    result = domain.run(month)

    assert result.success, failures(result)
    figures = published(mart, month)
    assert figures["billed"] == expected == Decimal("0.0652") and figures["line_items"] == 4
    sources = {row[0] for row in mart.execute("SELECT source FROM finops.fact_releve").fetchall()}
    assert sources == {"aws_cur:USD"}


def test_tag_keys_match_without_case_spaces_or_dash_underscore() -> None:
    tags = {" App_ID ": " pay-001 ", "env": "prod"}
    assert tag_value(tags, ("application", "app-id")) == "pay-001"
    assert tag_value(tags, ("owner",)) is None
    assert parse_tags('"CostCenter": "1234","env": "prod"') == {"CostCenter": "1234", "env": "prod"}
    assert parse_tags("NULL") == {} and parse_tags("{not json") == {}


def test_a_microsoft_focus_export_with_every_published_column_is_read(tmp_path: Path) -> None:
    """Microsoft's FOCUS 1.0 column metadata (x_ extension columns included) describes a file the
    FOCUS reader can read: a row written with every one of its columns becomes a charge group."""
    metadata = json.loads((SAMPLES / "azure" / "FocusCost_1.0.metadata.json").read_text(encoding="utf-8"))
    samples = {"Decimal": "2.5", "DateTime": "2026-10-05T00:00:00Z", "JSON": '{"app-id": "pay"}'}
    columns = [column["ColumnName"] for column in metadata["Columns"]]
    values = {column["ColumnName"]: samples.get(column["DataType"], "text") for column in metadata["Columns"]}
    values.update(
        BillingCurrency="EUR",
        ChargeCategory="Usage",
        ServiceCategory="Compute",
        x_ResourceGroupName="rg-pay-prod",
    )
    path = tmp_path / "part-0.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerow(values)
    assert len(columns) > 90 and "x_ResourceGroupName" in columns

    read = ExportReader(FocusLayout(), [str(path)], "FINOPS_FOCUS_PATHS").read_month(
        dt.date(2026, 10, 1), dt.datetime.now(dt.UTC)
    )

    (group,) = read.groups
    assert (group.cost, group.billing_currency, group.resource_group) == (
        Decimal("2.5"),
        "EUR",
        "rg-pay-prod",
    )
    assert group.tags == {"app-id": "pay"} and read.problems == []


EVERY_EXPORT_SAMPLE = [
    (FocusLayout(), "focus/focus1.0_sample_1000.csv", dt.date(2024, 9, 1)),
    (GcpBillingExportLayout(), "gcp/koku_gcp_billing_export_202011.csv", dt.date(2020, 11, 1)),
    (GcpBillingExportLayout(), "gcp/koku_gcp_billing_export_2022-08-01.csv", dt.date(2022, 8, 1)),
    (AzureCostDetailsLayout(), "azure/EA_ActualCost_Small.csv", dt.date(2023, 9, 1)),
    (AzureCostDetailsLayout(), "azure/EA_AmortizedCost_Small.csv", dt.date(2023, 9, 1)),
    (AzureCostDetailsLayout(), "azure/koku_azure_costexport_v2.csv", dt.date(2020, 9, 1)),
    (AzureCostDetailsLayout(), "azure/koku_azure_costreport_legacy.csv", dt.date(2019, 7, 1)),
    (AwsCurLayout(), "aws/koku_legacy_cur_athena_columns_2022-07.csv", dt.date(2022, 7, 1)),
    (AwsCurLayout(), "aws/sample-cur20-synthetic.csv", dt.date(2025, 1, 1)),
]


@pytest.mark.parametrize(("layout", "sample", "month"), EVERY_EXPORT_SAMPLE, ids=lambda value: str(value))
def test_every_export_sample_reconciles(
    mart: psycopg.Connection, layout: ExportLayout, sample: str, month: dt.date
) -> None:
    """Each sample read, allocated, converted and staged as the asset does, then balanced by the
    reconciliation check's own query (some samples' months are before the partitions' first one)."""
    snapshot = read_snapshot(mart, "public_cloud")
    fold = ChargeFold(
        month=month,
        run_id=f"sample-{sample}",
        computed_at=dt.datetime.now(dt.UTC),
        snapshot=snapshot,
        exchange_rates=exchange_rates(mart, month, "EUR"),
        settings=FoldSettings(("app-id", "application", "app"), "EUR", False, families_by_service_category()),
    )
    reader = ExportReader(layout, [str(SAMPLES / sample)], "PATHS")
    fold.add_source(reader.read_month(month, dt.datetime.now(dt.UTC), fold.table))
    load = fold.finish({})
    upsert_products(mart, fold.products.values())
    stage_domain_load(mart, load, fold.run_id)

    balances = cost_balances(mart, "public_cloud", fold.run_id)

    assert all(balance.balanced for balance in balances), balances
    assert load.source_record_count > 0
    assert sum((b.source for b in balances), Decimal(0)) == sum(load.source_costs.values(), Decimal(0))
    assert bool(balances) == bool(
        load.source_costs
    )  # a sample with no readable currency has no cost to balance
