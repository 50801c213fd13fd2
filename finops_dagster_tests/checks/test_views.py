"""The view consistency check's query: every aggregate against fact_releve, on hand-built mart data."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import psycopg
import pytest

from finops_dagster.checks.checked_months import CheckedMonths
from finops_dagster.checks.views import MONTHLY_VIEWS, QUARTER_VIEW, every_mismatch, view_mismatches
from finops_dagster.mart.aggregates import rebuild_aggregates
from finops_dagster_tests.support.fact_rows import allocate_nothing, insert_fact

CHECKED_VIEWS = (*MONTHLY_VIEWS, QUARTER_VIEW)


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
    allocate_nothing(mart)
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


def test_a_run_checks_its_months_and_the_quarters_holding_them(published: psycopg.Connection) -> None:
    published.execute(
        "UPDATE finops.fact_releve SET total_cost = total_cost + 5 "
        "WHERE period_month = '2025-01-01' AND product_id = 'P000-open_legacy'"
    )
    april, february = CheckedMonths([dt.date(2025, 4, 1)]), CheckedMonths([dt.date(2025, 2, 1)])
    for view in CHECKED_VIEWS:
        assert view_mismatches(published, view, months=april) == [], view
    # February's run does not see January's month totals, but sees the first quarter's
    assert view_mismatches(published, "mv_cost_domain_month", months=february) == []
    assert view_mismatches(published, QUARTER_VIEW, months=february) == [
        (dt.date(2025, 1, 1), "EUR", Decimal("630.500000"), Decimal("635.500000"))
    ]
    first_quarter = [dt.date(2025, 1, 1), dt.date(2025, 2, 1), dt.date(2025, 3, 1)]
    assert february.with_their_quarters() == CheckedMonths(first_quarter)
    assert every_mismatch(published, april) == []
    assert len(every_mismatch(published)) == 2 * len(CHECKED_VIEWS)  # both views, every aggregate
    shown = "allocated.mv_cost_domain_month 2025-01-01 EUR: view 300.000000 vs fact 305.000000"
    assert shown in every_mismatch(published)
