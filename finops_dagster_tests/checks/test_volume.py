"""The volume anomaly and view consistency checks' queries, on hand-built mart data."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import psycopg
import pytest

from finops_dagster.checks.reconciliation import (
    UnitBalance,
    balance_table,
    shown,
    superseded_loads,
    superseded_result,
)
from finops_dagster.checks.views import MONTHLY_VIEWS, QUARTER_VIEW, view_mismatches
from finops_dagster.checks.volume import VolumeFinding, volume_findings
from finops_dagster.mart.aggregates import rebuild_aggregates
from finops_dagster.mart.publish import ensure_month_partition
from finops_dagster.settings import VolumeThresholds

DOMAIN = "open_legacy"
THRESHOLDS = VolumeThresholds(
    warn_deviation=Decimal("0.25"), error_deviation=Decimal("0.5"), trailing_months=3
)
APRIL = dt.date(2025, 4, 1)
CHECKED_VIEWS = (*MONTHLY_VIEWS, QUARTER_VIEW)


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


# --------------------------------------------------------------------------------------------
# views vs fact_releve
# --------------------------------------------------------------------------------------------


@pytest.fixture
def published(mart: psycopg.Connection) -> psycopg.Connection:
    mart.execute("INSERT INTO finops.dim_application_group (group_id, label) VALUES ('GRP', 'Group')")
    mart.execute(
        "INSERT INTO finops.dim_application (application_id, label, group_id, source) VALUES "
        "('APP-A', 'A', 'GRP', 'test'), ('APP-B', 'B', 'GRP', 'test')"
    )
    insert_fact(mart, dt.date(2025, 1, 1), 3, "300")
    insert_fact(mart, dt.date(2025, 2, 1), 2, "250.5", application="APP-B")
    insert_fact(mart, dt.date(2025, 2, 1), 2, "80", application="UNALLOCATED")
    insert_fact(mart, dt.date(2025, 2, 1), 1, "42", application="APP-A", currency="USD")
    insert_fact(mart, dt.date(2025, 4, 1), 4, "400")
    rebuild_aggregates(mart, today=dt.date(2026, 1, 1), min_cost=Decimal(0))
    return mart


def test_views_match_fact_after_a_refresh(published: psycopg.Connection) -> None:
    for view in CHECKED_VIEWS:
        assert view_mismatches(published, view) == [], view
    # and not trivially empty: Jan GRP EUR, Feb GRP EUR, Feb UNALLOCATED EUR, Feb GRP USD, Apr GRP EUR
    assert published.execute("SELECT count(*) FROM finops.mv_cost_group_month").fetchone() == (5,)


def test_tampered_fact_shows_in_every_view(published: psycopg.Connection) -> None:
    published.execute(
        "UPDATE finops.fact_releve SET total_cost = total_cost + 5 "
        "WHERE period_month = '2025-02-01' AND application_id = 'APP-B' AND product_id = 'P000-open_legacy'"
    )
    february = dt.date(2025, 2, 1)
    for view in MONTHLY_VIEWS:
        assert view_mismatches(published, view) == [
            (february, "EUR", Decimal("330.500000"), Decimal("335.500000"))
        ], view
    assert view_mismatches(published, QUARTER_VIEW) == [
        (dt.date(2025, 1, 1), "EUR", Decimal("630.500000"), Decimal("635.500000"))
    ]

    rebuild_aggregates(published, today=dt.date(2026, 1, 1), min_cost=Decimal(0))
    assert all(view_mismatches(published, view) == [] for view in CHECKED_VIEWS)


def test_month_published_without_refresh_is_a_mismatch(published: psycopg.Connection) -> None:
    insert_fact(published, dt.date(2025, 5, 1), 1, "10")
    assert view_mismatches(published, "mv_cost_domain_month") == [
        (dt.date(2025, 5, 1), "EUR", None, Decimal("10.000000"))
    ]


def test_a_superseded_load_is_reported_as_superseded_not_as_a_loss(mart: psycopg.Connection) -> None:
    for run_id in ("run-a", "run-b"):
        mart.execute(
            "INSERT INTO finops.domain_load (domain_id, period_month, run_id, releve_count, reject_count, "
            "total_cost, source_record_count, source_totals) "
            "VALUES ('open_legacy', '2026-10-01', %s, 3, 0, 9, 3, %s)",
            (run_id, '{"GB-month": "12"}'),
        )
    mart.execute("UPDATE finops.domain_load SET superseded_by = 'run-b' WHERE run_id = 'run-a'")

    assert superseded_loads(mart, "open_legacy", "run-a") == [("2026-10", "run-b")]
    assert superseded_loads(mart, "open_legacy", "run-b") == []
    result = superseded_result([("2026-10", "run-b")])
    assert not result.passed
    assert result.description is not None
    assert result.description.startswith("superseded: 2026-10 by run run-b published after this run loaded")
    assert "off by" not in result.description


def test_amounts_are_shown_at_the_mart_scale_and_compared_exactly() -> None:
    assert shown(Decimal("3.71E-8")) == "0.000000"
    assert shown(Decimal("-4E-9")) == "0.000000"
    assert shown(Decimal("1234567.123456500000000000")) == "1,234,567.123456"  # half to even
    tiny = UnitBalance(APRIL, "EUR", Decimal("10.000000037100000000"), Decimal("10"), Decimal("0"), rows=1)
    assert tiny.difference == Decimal("3.71E-8") and tiny.balanced
    off = UnitBalance(APRIL, "EUR", Decimal("10.00001"), Decimal("10"), Decimal("0"), rows=1)
    assert not off.balanced
    table = balance_table([tiny, off], "billing currency")
    assert "| 2025-04 | EUR | 10.000000 | 10.000000 | 0.000000 | 0.000000 |" in table
    assert "| 2025-04 | EUR | 10.000010 | 10.000000 | 0.000000 | 0.000010 |" in table
    assert "E-" not in table
