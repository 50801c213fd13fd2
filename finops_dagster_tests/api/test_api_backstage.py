"""The Backstage Cost Insights routes: shapes of CostInsightsApi, numbers against SQL on the views."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

import finops_dagster.api.backstage as backstage
import finops_dagster.api.response_cache as response_cache
from finops_dagster.api.models import BackstageAlert, BackstageCost, BackstageEntity, BackstageGroup
from finops_dagster_tests.support.api_mart import Published
from finops_dagster_tests.support.live_api import LiveApi

MONTHS = [dt.date(2025, month, 1) for month in (1, 2, 3, 4)]


def _series(published: Published, query: str, *params: Any) -> dict[dt.date, Decimal]:
    return dict(published.rows(query, params))  # type: ignore[arg-type]


def _no_null(body: Any, allowed: frozenset[str] = frozenset()) -> None:
    """The plugin's types make fields optional, never nullable (but an Entity's id): no null anywhere."""
    if isinstance(body, dict):
        for name, value in body.items():
            assert value is not None or name in allowed, f"{name} is null"
            _no_null(value, allowed)
    elif isinstance(body, list):
        for item in body:
            _no_null(item, allowed)


def _check_cost(
    body: dict[str, Any],
    identifier: str,
    months: list[dt.date],
    amounts: dict[dt.date, Decimal],
    period_months: int,
) -> None:
    _no_null(body)
    BackstageCost.model_validate(body)
    assert body["id"] == identifier and body["grain"] == "month" and body["currency"] == "EUR"
    assert [point["date"] for point in body["aggregation"]] == [month.isoformat() for month in months]
    for point, month in zip(body["aggregation"], months, strict=True):
        assert Decimal(point["amountExact"]) == amounts.get(month, Decimal(0))
        assert point["amount"] == pytest.approx(float(amounts.get(month, 0)))
    previous = sum(
        (amounts.get(m, Decimal(0)) for m in months[-2 * period_months : -period_months]), Decimal(0)
    )
    current = sum((amounts.get(m, Decimal(0)) for m in months[-period_months:]), Decimal(0))
    assert Decimal(body["change"]["amountExact"]) == current - previous
    if previous:
        assert Decimal(body["change"]["ratioExact"]) == (current - previous) / previous
    else:
        assert "ratio" not in body["change"] and "ratioExact" not in body["change"]


def test_groups_and_their_projects(api: LiveApi, published: Published) -> None:
    groups = api.get("/api/v1/backstage/groups").json()
    for group in groups:
        BackstageGroup.model_validate(group)
    assert [g["id"] for g in groups] == [
        row[0]
        for row in published.rows("SELECT DISTINCT group_id FROM finops.mv_cost_group_month ORDER BY 1")
    ]
    assert [g["id"] for g in groups] == ["GRP-A", "GRP-B", "UNALLOCATED"]
    projects = api.get("/api/v1/backstage/groups/GRP-A/projects").json()
    assert [p["id"] for p in projects] == [
        row[0]
        for row in published.rows(
            "SELECT DISTINCT application_id FROM finops.mv_cost_application_month "
            "WHERE group_id = 'GRP-A' ORDER BY 1"
        )
    ]
    assert [p["id"] for p in projects] == ["BACKUP", "BILLING", "PAYMENTS"]


@pytest.mark.parametrize(
    ("intervals", "months", "period_months"),
    [
        ("R2/P1M/2025-05-01", MONTHS[2:], 1),
        ("R2/P30D/2025-05-01", MONTHS[2:], 1),  # days read as whole months
        ("R2/P2M/2025-05-01", MONTHS, 2),
        (
            "R2/P3M/2025-04-15",
            [dt.date(2024, 11, 1), dt.date(2024, 12, 1), *MONTHS],
            3,
        ),  # months without cost: 0
    ],
)
def test_group_cost_series_and_change(
    api: LiveApi, published: Published, intervals: str, months: list[dt.date], period_months: int
) -> None:
    body = api.get("/api/v1/backstage/groups/GRP-A/cost", params={"intervals": intervals}).json()
    amounts = _series(
        published,
        "SELECT period_month, total_cost FROM finops.mv_cost_group_month "
        "WHERE group_id = 'GRP-A' AND currency = 'EUR'",
    )
    _check_cost(body, "GRP-A", months, amounts, period_months)
    assert set(body["trendline"]) == {"slope", "intercept"}


def test_project_cost_is_grouped_by_domain(api: LiveApi, published: Published) -> None:
    body = api.get("/api/v1/backstage/projects/SEARCH/cost", params={"intervals": "R2/P2M/2025-05-01"}).json()
    amounts = _series(
        published,
        "SELECT period_month, total_cost FROM finops.mv_cost_application_month "
        "WHERE application_id = 'SEARCH'",
    )
    _check_cost(body, "SEARCH", MONTHS, amounts, 2)
    assert "ratio" not in body["change"]  # nothing in January and February: no ratio, not infinity
    [by_domain] = body["groupedCosts"]["domain"]
    domain_amounts = _series(
        published,
        "SELECT period_month, total_cost FROM finops.mv_cost_app_domain_month "
        "WHERE application_id = 'SEARCH' AND domain_id = 'open_legacy'",
    )
    _check_cost(by_domain, "open_legacy", MONTHS, domain_amounts, 2)


@pytest.mark.parametrize("scope", [{}, {"group": "GRP-A"}, {"project": "BILLING"}])
def test_product_insights_per_family(api: LiveApi, published: Published, scope: dict[str, str]) -> None:
    body = api.get(
        "/api/v1/backstage/products/OL_COMPUTE/insights", params={"intervals": "R2/P1M/2025-04-01", **scope}
    ).json()
    BackstageEntity.model_validate(body)
    _no_null(body, frozenset({"id"}))
    condition = {
        "group": "AND application_id IN (SELECT application_id FROM finops.mv_cost_application_month "
        "WHERE group_id = %(v)s)",
        "project": "AND application_id = %(v)s",
    }
    where = "".join(condition[name] for name in scope)
    rows = published.rows(
        "SELECT product_id, sum(total_cost) FILTER (WHERE period_month = '2025-02-01'), "
        "sum(total_cost) FILTER (WHERE period_month = '2025-03-01') FROM finops.mv_cost_app_product_month "
        f"WHERE family_id = 'OL_COMPUTE' {where} GROUP BY product_id ORDER BY product_id",
        {"v": next(iter(scope.values()))} if scope else None,
    )
    products = body["entities"]["product"]
    assert [
        (p["id"], Decimal(p["aggregationExact"][0]), Decimal(p["aggregationExact"][1])) for p in products
    ] == [(product, previous or 0, current or 0) for product, previous, current in rows]
    assert Decimal(body["aggregationExact"][0]) == sum(row[1] or 0 for row in rows)
    assert Decimal(body["aggregationExact"][1]) == sum(row[2] or 0 for row in rows)
    assert body["id"] == "OL_COMPUTE" and body["grain"] == "month"


def test_alerts_are_the_group_anomalies_of_the_month(api: LiveApi, published: Published) -> None:
    alerts = api.get("/api/v1/backstage/groups/GRP-A/alerts", params={"period": "2025-04"}).json()
    for alert in alerts:
        BackstageAlert.model_validate(alert)
    rows = published.rows(
        "SELECT application_id, anomaly_kind, total_cost, trailing_avg_cost FROM finops.mv_anomalies_month "
        "WHERE period_month = '2025-04-01' AND application_id IN (SELECT application_id "
        "FROM finops.mv_cost_application_month WHERE group_id = 'GRP-A') ORDER BY application_id, domain_id"
    )
    assert [(a["project"], a["kind"]) for a in alerts] == [(row[0], row[1]) for row in rows]
    assert ("BACKUP", "DROP") in [(a["project"], a["kind"]) for a in alerts]  # gone after February
    for alert, row in zip(alerts, rows, strict=True):
        assert Decimal(alert["change"]["amountExact"]) == row[2] - row[3]
        assert alert["title"].startswith(row[0]) and alert["month"] == "2025-04"
        # the plugin's growth chart reads both ends as quarters: April against January to March
        assert (alert["periodStart"], alert["periodEnd"]) == ("2025-Q1", "2025-Q2")
        assert alert["comparedMonths"] == 3 and "the 3 months from 2025-01" in alert["subtitle"]
    _no_null(alerts)
    # without a period: the latest complete month that was published (April, the clock is past it)
    assert api.get("/api/v1/backstage/groups/GRP-A/alerts").json() == alerts


def test_last_complete_billing_date(api: LiveApi) -> None:
    assert api.get("/api/v1/backstage/last-complete-billing-date").json() == {
        "date": "2025-04-30",
        "grain": "month",
    }


def _plugin_split(body: dict[str, Any], intervals: str) -> tuple[float, float]:
    """What Cost Insights itself computes from a Cost's points for a duration in days
    (getPreviousPeriodTotalCost): before `end - 1 day - D` is the previous period, the rest current."""
    _, duration, end = intervals.split("/")
    boundary = dt.date.fromisoformat(end) - dt.timedelta(days=1 + int(duration[1:-1]))
    previous = sum(p["amount"] for p in body["aggregation"] if dt.date.fromisoformat(p["date"]) < boundary)
    return previous, sum(p["amount"] for p in body["aggregation"]) - previous


@pytest.mark.parametrize("intervals", ["R2/P90D/2025-05-01", "R2/P90D/2025-06-01", "R2/P30D/2025-04-01"])
def test_periods_in_days_are_split_as_the_plugin_splits_them(api: LiveApi, intervals: str) -> None:
    body = api.get("/api/v1/backstage/groups/GRP-A/cost", params={"intervals": intervals}).json()
    previous, current = _plugin_split(body, intervals)
    assert body["change"]["amount"] == pytest.approx(current - previous)
    if previous:
        assert body["change"]["ratio"] == pytest.approx((current - previous) / previous)


def test_every_family_of_the_catalog_answers(api: LiveApi) -> None:
    """The README configures every family as a Cost Insights product: one without cost is an empty
    entity, not an error card; a family nobody knows is a 404."""
    body = api.get("/api/v1/backstage/products/NT_SCM/insights", params={"intervals": "R2/P1M/2025-04-01"})
    assert body.status_code == 200
    assert body.json() == {
        "id": "NT_SCM",
        "aggregation": [0.0, 0.0],
        "aggregationExact": ["0", "0"],
        "change": {"amount": 0.0, "amountExact": "0"},
        "entities": {"product": []},
        "currency": "EUR",
        "grain": "month",
    }
    unknown = api.get("/api/v1/backstage/products/NOPE/insights", params={"intervals": "R2/P1M/2025-04-01"})
    assert unknown.status_code == 404
    assert "neither the reference catalog nor the views" in unknown.json()["detail"]


def test_no_billing_date_before_a_complete_month_is_503(
    api: LiveApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    january = dt.datetime(2025, 1, 20, tzinfo=dt.UTC)
    for module in (backstage, response_cache):
        monkeypatch.setattr(module, "utc_now", lambda: january)
    response = api.get("/api/v1/backstage/last-complete-billing-date")
    assert response.status_code == 503 and "no month is both over and published" in response.json()["detail"]


def test_the_schema_declares_no_null_the_plugin_forbids(api: LiveApi) -> None:
    schemas = api.get("/openapi.json").json()["components"]["schemas"]

    def nullable(schema: dict[str, Any]) -> bool:
        return any(option.get("type") == "null" for option in schema.get("anyOf", []))

    for name in ("BackstageGroup", "BackstageProject", "BackstageCost", "ChangeStatistic", "BillingDate",
                 "BackstageAlert", "DateAggregation", "Trendline"):
        for field, schema in schemas[name]["properties"].items():
            assert not nullable(schema) and "default" not in schema, f"{name}.{field}"
        assert schemas[name]["additionalProperties"] is False
    assert set(schemas["BackstageGroup"]["required"]) == {"id", "name"}
    assert "ratio" not in schemas["ChangeStatistic"]["required"]
    assert {"trendline", "groupedCosts"}.isdisjoint(schemas["BackstageCost"]["required"])
    assert schemas["BillingDate"]["properties"]["date"]["type"] == "string"
    assert nullable(schemas["BackstageEntity"]["properties"]["id"])  # Maybe<string> in the plugin
