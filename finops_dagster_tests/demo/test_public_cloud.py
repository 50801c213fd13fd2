"""The synthetic FOCUS exports the public_cloud domain, its tests and its benchmarks read.

These tests pin what the readers count on: the layout, determinism, every format readable with the
row count asked for, FOCUS column names (1.2 and 1.3 spellings), the charge-category mix, the
currencies, the untagged share and its sub-account naming, and the cut of the current month. Rows
are read with the standard ``csv`` module (and DuckDB for Parquet), never with the domain's reader.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import os
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from finops_dagster.demo.estate import FIXED_APPLICATIONS, Estate, build_estate
from finops_dagster.demo.public_cloud import (
    DEMO_PROVIDERS,
    FOCUS_12_COLUMNS,
    ORPHAN_ACCOUNTS,
    SUB_ACCOUNT_NAME_PATTERN,
    focus_totals,
    write_focus_exports,
)
from finops_dagster.demo.run import FOCUS_LINE_ITEMS_PER_MONTH, write_demo_focus_exports

TODAY = dt.date(2026, 10, 10)
MONTHS = [dt.date(2026, 9, 1), dt.date(2026, 10, 1)]
ITEMS = 3000
REQUIRED = [
    "BilledCost",
    "EffectiveCost",
    "ListCost",
    "ContractedCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodStart",
    "BillingPeriodEnd",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ConsumedQuantity",
    "ConsumedUnit",
    "PricingQuantity",
    "PricingUnit",
    "InvoiceIssuerName",
    "RegionId",
    "ResourceId",
    "ResourceName",
    "ServiceCategory",
    "ServiceName",
    "SkuId",
    "SkuPriceId",
    "SubAccountId",
    "SubAccountName",
    "Tags",
]
APP_TAG_KEYS = {"app-id", "application"}


@pytest.fixture(scope="module")
def estate() -> Estate:
    return build_estate()


@pytest.fixture(scope="module")
def exports(estate: Estate, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    directory = tmp_path_factory.mktemp("focus")
    return write_focus_exports(
        estate, directory, MONTHS, line_items_per_month=ITEMS, files_per_month=2, today=TODAY
    )


@pytest.fixture(scope="module")
def rows(exports: list[Path]) -> dict[tuple[str, str], list[dict[str, str | None]]]:
    """Rows per (provider key, YYYY-MM), read with the csv module; the bare NULL token becomes None."""
    result: dict[tuple[str, str], list[dict[str, str | None]]] = defaultdict(list)
    for path in exports:
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                result[(path.parent.parent.name, path.parent.name)].append(
                    {key: None if value == "NULL" else value for key, value in row.items()}
                )
    return result


def _provider_rows(
    rows: dict[tuple[str, str], list[dict[str, str | None]]], key: str
) -> list[dict[str, str | None]]:
    return [row for (provider, _), items in rows.items() if provider == key for row in items]


def _app_tag(tags: str | None) -> str | None:
    """The application tag's value, whatever the key's case and surrounding spaces, or None."""
    if not tags:
        return None
    for key, value in json.loads(tags).items():
        if key.strip().lower() in APP_TAG_KEYS:
            return str(value)
    return None


def test_layout_is_a_directory_per_provider_and_a_file_set_per_month(exports: list[Path]) -> None:
    root = exports[0].parents[2]
    expected = [
        root / provider.key / f"{month:%Y-%m}" / f"part-{part:03d}.csv"
        for provider in DEMO_PROVIDERS
        for month in MONTHS
        for part in range(2)
    ]
    assert exports == expected
    assert sorted(p for p in root.rglob("*") if p.is_file()) == sorted(expected)


def test_same_arguments_give_the_same_bytes(estate: Estate, tmp_path: Path, exports: list[Path]) -> None:
    again = write_focus_exports(
        estate, tmp_path, MONTHS, line_items_per_month=ITEMS, files_per_month=2, today=TODAY
    )
    assert [path.read_bytes() for path in again] == [path.read_bytes() for path in exports]
    other_seed = write_focus_exports(
        estate, tmp_path / "other", MONTHS[:1], line_items_per_month=ITEMS, files_per_month=2, seed=8
    )
    assert other_seed[0].read_bytes() != exports[0].read_bytes()


def test_rows_do_not_depend_on_the_split_into_files(estate: Estate, tmp_path: Path) -> None:
    one = write_focus_exports(estate, tmp_path / "one", MONTHS[:1], line_items_per_month=500)
    three = write_focus_exports(
        estate, tmp_path / "three", MONTHS[:1], line_items_per_month=500, files_per_month=3
    )
    for key in ("aws", "azure"):
        whole = next(p for p in one if p.parts[-3] == key).read_text().splitlines()
        parts = [p.read_text().splitlines() for p in three if p.parts[-3] == key]
        assert [len(part) - 1 for part in parts] == [166, 167, 167]
        assert whole == parts[0][:1] + [line for part in parts for line in part[1:]]


@pytest.mark.parametrize("fmt", ["csv", "csv.gz", "parquet"])
def test_every_format_is_readable_by_duckdb_with_the_row_count(
    estate: Estate, tmp_path: Path, fmt: str
) -> None:
    files = write_focus_exports(
        estate, tmp_path, MONTHS, line_items_per_month=1001, fmt=fmt, files_per_month=2, today=TODAY
    )
    assert all(path.name.endswith(f".{fmt}") for path in files)
    con = duckdb.connect()
    reader = "read_parquet('{}')" if fmt == "parquet" else "read_csv('{}', header = true, nullstr = 'NULL')"
    counts = [con.execute(f"SELECT count(*) FROM {reader.format(path)}").fetchone() for path in files]
    assert counts == [(500,), (501,)] * 4
    if fmt == "csv.gz":
        assert gzip.decompress(files[0].read_bytes()).startswith(b'"AvailabilityZone",BilledCost,')


def test_parquet_costs_are_exact_decimals_and_content_is_deterministic(
    estate: Estate, tmp_path: Path
) -> None:
    first = write_focus_exports(estate, tmp_path / "a", MONTHS[:1], line_items_per_month=700, fmt="parquet")
    second = write_focus_exports(estate, tmp_path / "b", MONTHS[:1], line_items_per_month=700, fmt="parquet")
    csv_files = write_focus_exports(estate, tmp_path / "c", MONTHS[:1], line_items_per_month=700)
    con = duckdb.connect()
    types = dict(
        con.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM '{first[0]}')").fetchall()
    )
    for column in ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "PricingQuantity"):
        assert types[column] == "DECIMAL(38,10)"
    assert types["ChargePeriodStart"] == types["BillingPeriodEnd"] == "TIMESTAMP"
    for a, b, c in zip(first, second, csv_files, strict=True):
        assert (
            con.execute(f"SELECT * FROM '{a}'").fetchall() == con.execute(f"SELECT * FROM '{b}'").fetchall()
        )
        from_csv = con.execute(
            "SELECT sum(CAST(BilledCost AS DECIMAL(38,10)))"
            f" FROM read_csv('{c}', nullstr = 'NULL', all_varchar = true)"
        ).fetchone()
        assert con.execute(f"SELECT sum(BilledCost) FROM '{a}'").fetchone() == from_csv


def test_focus_columns_with_both_provider_spellings(
    rows: dict[tuple[str, str], list[dict[str, str | None]]],
) -> None:
    aws, azure = (set(_provider_rows(rows, key)[0]) for key in ("aws", "azure"))
    for columns in (aws, azure):
        assert set(REQUIRED) <= columns
        assert len([name for name in columns if name.startswith("x_")]) == 2
    assert {"ProviderName", "PublisherName"} <= aws and not {"ServiceProviderName", "HostProviderName"} & aws
    assert {"ServiceProviderName", "HostProviderName"} <= azure and not {
        "ProviderName",
        "PublisherName",
    } & azure
    assert len(aws) == len(FOCUS_12_COLUMNS) + 2
    assert {row["ProviderName"] for row in _provider_rows(rows, "aws")} == {"AWS"}
    assert {row["ServiceProviderName"] for row in _provider_rows(rows, "azure")} == {"Microsoft"}


def test_one_provider_bills_in_a_currency_other_than_eur(
    rows: dict[tuple[str, str], list[dict[str, str | None]]],
) -> None:
    currencies = {
        key: {row["BillingCurrency"] for row in _provider_rows(rows, key)} for key in ("aws", "azure")
    }
    assert currencies == {"aws": {"USD"}, "azure": {"EUR"}}


def test_charge_category_mix(rows: dict[tuple[str, str], list[dict[str, str | None]]]) -> None:
    for key in ("aws", "azure"):
        items = _provider_rows(rows, key)
        categories = Counter(row["ChargeCategory"] for row in items)
        assert set(categories) == {"Usage", "Purchase", "Credit", "Tax", "Adjustment"}
        assert categories["Usage"] > 0.85 * len(items)
        for row in items:
            billed, effective = Decimal(row["BilledCost"] or "x"), Decimal(row["EffectiveCost"] or "x")
            category = row["ChargeCategory"]
            if category == "Purchase":
                assert billed > 0 and effective == 0 and row["ChargeFrequency"] == "One-Time"
            elif category == "Credit":
                assert billed < 0 and effective == billed
            elif category == "Tax":
                assert row["ServiceCategory"] == "Other" and row["ServiceName"] in (None, "Tax")
                assert row["Tags"] is None
            elif category == "Usage":
                assert row["ChargeFrequency"] == "Usage-Based" and row["ConsumedQuantity"] is not None
        covered = [row for row in items if row["CommitmentDiscountStatus"] == "Used"]
        assert covered and all(
            Decimal(r["BilledCost"] or "x") == 0 < Decimal(r["EffectiveCost"] or "x") for r in covered
        )
        assert {row["ServiceName"] for row in items if row["ChargeCategory"] == "Tax"} == (
            {"Tax"} if key == "aws" else {None}
        )


def test_costs_are_decimal_text_with_at_most_ten_places(
    rows: dict[tuple[str, str], list[dict[str, str | None]]],
) -> None:
    for items in rows.values():
        for row in items[:200]:
            for column in ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost"):
                text = row[column] or ""
                assert "e" not in text.lower() and len(text.partition(".")[2]) <= 10


def test_sku_units_are_consistent_and_services_categorised(
    rows: dict[tuple[str, str], list[dict[str, str | None]]],
) -> None:
    for key in ("aws", "azure"):
        units: dict[str | None, set[tuple[str | None, str | None]]] = defaultdict(set)
        categories = set()
        for row in _provider_rows(rows, key):
            if row["ChargeCategory"] == "Usage":
                units[row["SkuId"]].add((row["PricingUnit"], row["ConsumedUnit"]))
            categories.add(row["ServiceCategory"])
        assert all(len(pairs) == 1 for pairs in units.values())
        assert {
            "Compute",
            "Storage",
            "Databases",
            "Networking",
            "Analytics",
            "AI and Machine Learning",
        } <= categories


def test_untagged_share_and_how_it_can_be_resolved(
    rows: dict[tuple[str, str], list[dict[str, str | None]]], estate: Estate
) -> None:
    slugs = {app.code.lower() for app in estate.applications}
    for key in ("aws", "azure"):
        total = resolvable = orphaned = untagged = Decimal(0)
        for row in _provider_rows(rows, key):
            cost = Decimal(row["BilledCost"] or "x")
            total += cost
            if _app_tag(row["Tags"]) is not None:
                continue
            untagged += cost
            match = SUB_ACCOUNT_NAME_PATTERN.match(row["SubAccountName"] or "")
            if match:
                assert match["application"] in slugs
                resolvable += cost
            elif row["SubAccountName"] in ORPHAN_ACCOUNTS:
                orphaned += cost
        assert Decimal("0.05") < untagged / total < Decimal("0.15")
        assert resolvable > 0 and orphaned > 0 and untagged > resolvable + orphaned


def test_tags_name_estate_applications_with_provider_spellings(
    rows: dict[tuple[str, str], list[dict[str, str | None]]], estate: Estate
) -> None:
    codes = {app.code.lower(): app.code for app in estate.applications}
    fixed = {code for code, _, _ in FIXED_APPLICATIONS}
    for key, spellings in (("aws", {"app-id", "App-ID"}), ("azure", {"Application", " app-id "})):
        keys: Counter[str] = Counter()
        cost_by_app: Counter[str] = Counter()
        value_cases = set()
        for row in _provider_rows(rows, key):
            value = _app_tag(row["Tags"])
            if value is None:
                continue
            keys.update(k for k in json.loads(row["Tags"] or "{}") if k.strip().lower() in APP_TAG_KEYS)
            assert value.lower() in codes
            value_cases.add("upper" if value.isupper() else "lower" if value.islower() else "mixed")
            cost_by_app[codes[value.lower()]] += float(Decimal(row["EffectiveCost"] or "x"))
        assert set(keys) == spellings
        assert value_cases == {"upper", "lower", "mixed"}
        top = sum(cost for _, cost in cost_by_app.most_common(10))
        assert top > 0.4 * sum(cost_by_app.values())
        assert {code for code, _ in cost_by_app.most_common(5)} & fixed
        names = {row["SubAccountName"] for row in _provider_rows(rows, key)}
        assert "payments-prod" in names


def test_the_current_month_stops_before_today(
    rows: dict[tuple[str, str], list[dict[str, str | None]]],
) -> None:
    for key in ("aws", "azure"):
        current = {(row["ChargePeriodStart"] or "")[:10] for row in rows[(key, "2026-10")]}
        past = {(row["ChargePeriodStart"] or "")[:10] for row in rows[(key, "2026-09")]}
        assert current == {f"2026-10-{day:02d}" for day in range(1, 10)}
        assert past == {f"2026-09-{day:02d}" for day in range(1, 31)}
        assert len(rows[(key, "2026-10")]) == ITEMS
        assert {row["InvoiceId"] for row in rows[(key, "2026-10")]} == {None}
        assert None not in {row["InvoiceId"] for row in rows[(key, "2026-09")]}
    assert {row["ChargePeriodStart"] for row in rows[("azure", "2026-10")]} >= {"2026-10-01T00:00:00Z"}
    assert {row["BillingPeriodEnd"] for row in rows[("aws", "2026-10")]} == {"2026-11-01 00:00:00"}


def test_months_without_a_day_before_today_have_no_files(estate: Estate, tmp_path: Path) -> None:
    files = write_focus_exports(
        estate,
        tmp_path,
        [dt.date(2026, 9, 1), dt.date(2026, 10, 1), dt.date(2026, 11, 1)],
        line_items_per_month=10,
        today=dt.date(2026, 10, 1),
    )
    assert {path.parent.name for path in files} == {"2026-09"}


def test_focus_totals_are_the_sums_of_the_files(
    exports: list[Path], rows: dict[tuple[str, str], list[dict[str, str | None]]]
) -> None:
    totals = focus_totals(exports)
    assert [(t.provider, f"{t.month:%Y-%m}", t.currency) for t in totals] == [
        ("aws", "2026-09", "USD"),
        ("aws", "2026-10", "USD"),
        ("azure", "2026-09", "EUR"),
        ("azure", "2026-10", "EUR"),
    ]
    for total in totals:
        items = rows[(total.provider, f"{total.month:%Y-%m}")]
        assert total.line_items == len(items) == ITEMS
        assert total.billed_cost == sum(Decimal(row["BilledCost"] or "x") for row in items)
        assert total.effective_cost == sum(Decimal(row["EffectiveCost"] or "x") for row in items)
        assert total.billed_cost != total.effective_cost


def test_the_demo_writes_its_months_and_points_the_domain_at_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FINOPS_DOMAINS_ENABLED", "public_cloud")
    monkeypatch.delenv("FINOPS_FOCUS_PATHS", raising=False)
    monkeypatch.delenv("FINOPS_PUBLIC_CLOUD_SOURCES", raising=False)

    directory = write_demo_focus_exports(tmp_path, 3, dt.date(2026, 12, 16))

    assert directory == tmp_path / "focus" and os.environ["FINOPS_FOCUS_PATHS"] == str(
        directory / "*" / "{month}" / "*"
    )
    with duckdb.connect() as conn:
        counts = {
            str(path.relative_to(directory)): conn.execute(
                f"SELECT count(*) FROM read_csv('{path}', all_varchar = true)"
            ).fetchone()
            for path in directory.rglob("*.csv")
        }
    full, current = (FOCUS_LINE_ITEMS_PER_MONTH,), (round(FOCUS_LINE_ITEMS_PER_MONTH * 15 / 31),)
    assert counts == {
        f"{provider}/{month}/part-000.csv": current if month == "2026-12" else full
        for provider in ("aws", "azure")
        for month in ("2026-10", "2026-11", "2026-12")
    }


def test_the_demo_leaves_configured_public_cloud_sources_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FINOPS_DOMAINS_ENABLED", "public_cloud")
    monkeypatch.setenv("FINOPS_FOCUS_PATHS", "/data/focus")
    assert write_demo_focus_exports(tmp_path, 3, dt.date(2026, 12, 16)) is None
    assert not (tmp_path / "focus").exists()
