"""The volume anomaly check's query, on hand-built mart data."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import psycopg
import pytest

from finops_dagster.checks.volume import VolumeFinding, volume_findings
from finops_dagster.mart.publish import ensure_month_partition
from finops_dagster.settings import VolumeThresholds

DOMAIN = "open_legacy"
THRESHOLDS = VolumeThresholds(
    warn_deviation=Decimal("0.25"), error_deviation=Decimal("0.5"), trailing_months=3
)
APRIL = dt.date(2025, 4, 1)


def insert_fact(
    conn: psycopg.Connection,
    month: dt.date,
    rows: int,
    total: str,
    *,
    domain: str = DOMAIN,
    application: str = "APP-A",
    currency: str = "EUR",
) -> None:
    """`rows` relevés of one application (one product each) adding up to `total`."""
    ensure_month_partition(conn, month)
    each = Decimal(total) / rows
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO finops.fact_releve (period_month, application_id, product_id, family_id, domain_id, "
            "usage_quantity, usage_unit, unit_cost, total_cost, currency, source, run_id, rate_card_version, "
            "source_record_count, computed_at) "
            "VALUES (%s, %s, %s, 'FAM', %s, 1, 'unit', %s, %s, %s, 'test', 'history', NULL, 1, now())",
            [
                (month, application, f"P{index:03d}-{domain}", domain, each, each, currency)
                for index in range(rows)
            ],
        )


def insert_load(conn: psycopg.Connection, run_id: str, month: dt.date, releves: int, total: str) -> None:
    conn.execute(
        "INSERT INTO finops.domain_load (domain_id, period_month, run_id, releve_count, reject_count, "
        "total_cost, source_record_count, source_totals) VALUES (%s, %s, %s, %s, 0, %s, %s, '{}')",
        (DOMAIN, month, run_id, releves, Decimal(total), releves),
    )


@pytest.fixture
def history(mart: psycopg.Connection) -> psycopg.Connection:
    """Three published months of 10 relevés / 1000 EUR before April 2025, plus data that must not count."""
    for month in (dt.date(2025, 1, 1), dt.date(2025, 2, 1), dt.date(2025, 3, 1)):
        insert_fact(mart, month, 10, "1000")
    insert_fact(mart, dt.date(2024, 12, 1), 90, "90000")  # four months back: outside the trailing window
    insert_fact(mart, APRIL, 40, "40000")  # the month itself, as previously published: not history
    insert_fact(mart, dt.date(2025, 2, 1), 30, "30000", domain="native")  # another domain
    return mart


def levels(findings: list[VolumeFinding]) -> dict[str, str]:
    return {finding.metric: finding.level for finding in findings}


def test_within_thresholds_is_ok(history: psycopg.Connection) -> None:
    insert_load(history, "run-ok", APRIL, 11, "1100")
    findings, not_compared = volume_findings(history, DOMAIN, "run-ok", THRESHOLDS)
    assert not_compared == []
    assert [
        (f.period_month, f.metric, f.value, f.trailing_average, f.deviation, f.level) for f in findings
    ] == [
        (APRIL, "releves", Decimal(11), Decimal(10), Decimal("0.1"), "OK"),
        (APRIL, "total_cost", Decimal("1100"), Decimal("1000"), Decimal("0.1"), "OK"),
    ]


def test_thirty_percent_off_warns(history: psycopg.Connection) -> None:
    insert_load(history, "run-up", APRIL, 13, "1300")
    insert_load(history, "run-down", dt.date(2025, 4, 1), 7, "700")
    assert levels(volume_findings(history, DOMAIN, "run-up", THRESHOLDS)[0]) == {
        "releves": "WARN",
        "total_cost": "WARN",
    }
    assert levels(volume_findings(history, DOMAIN, "run-down", THRESHOLDS)[0]) == {
        "releves": "WARN",
        "total_cost": "WARN",
    }


def test_sixty_percent_off_is_an_error(history: psycopg.Connection) -> None:
    insert_load(history, "run-spike", APRIL, 16, "1600")
    findings, _ = volume_findings(history, DOMAIN, "run-spike", THRESHOLDS)
    assert levels(findings) == {"releves": "ERROR", "total_cost": "ERROR"}
    assert [f.deviation for f in findings] == [Decimal("0.6"), Decimal("0.6")]


def test_cost_alone_can_be_off(history: psycopg.Connection) -> None:
    insert_load(history, "run-cheap", APRIL, 10, "400")
    assert levels(volume_findings(history, DOMAIN, "run-cheap", THRESHOLDS)[0]) == {
        "releves": "OK",
        "total_cost": "ERROR",
    }


def test_thresholds_are_exclusive_bounds(history: psycopg.Connection) -> None:
    insert_load(history, "run-edge", APRIL, 10, "1250")  # exactly 25 % off
    assert levels(volume_findings(history, DOMAIN, "run-edge", THRESHOLDS)[0])["total_cost"] == "OK"


def test_month_without_history_is_reported(history: psycopg.Connection) -> None:
    first = dt.date(2024, 6, 1)
    insert_load(history, "run-mixed", first, 5, "500")
    insert_load(history, "run-mixed", APRIL, 10, "1000")
    findings, not_compared = volume_findings(history, DOMAIN, "run-mixed", THRESHOLDS)
    assert not_compared == [(first, "no published history")]
    assert {f.period_month for f in findings} == {APRIL}
    assert levels(findings) == {"releves": "OK", "total_cost": "OK"}


def test_month_in_progress_is_not_compared(history: psycopg.Connection) -> None:
    insert_load(
        history, "run-early", APRIL, 10, "50"
    )  # 95 % below the trailing average, but April is running
    findings, not_compared = volume_findings(history, DOMAIN, "run-early", THRESHOLDS, in_progress=APRIL)
    assert (findings, not_compared) == ([], [(APRIL, "month in progress")])
    findings, _ = volume_findings(history, DOMAIN, "run-early", THRESHOLDS, in_progress=dt.date(2099, 1, 1))
    assert levels(findings) == {"releves": "OK", "total_cost": "ERROR"}


def test_run_without_loads_has_no_findings(history: psycopg.Connection) -> None:
    assert volume_findings(history, DOMAIN, "nobody", THRESHOLDS) == ([], [])
