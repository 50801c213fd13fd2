"""Every cost endpoint's numbers against direct SQL on the views, over a mart the pipeline published.

The expected rows are written here as plain SQL on the materialized views, independently of the
API's query builder; the API is read page by page (small pages, so paging and its stable order are
exercised too) and must give the same rows, in the same order, with amounts as exact decimal strings.
"""

from __future__ import annotations

from typing import Any

import pytest

from finops_dagster.api.routes import PAGES
from finops_dagster_tests.support.api_mart import Published
from finops_dagster_tests.support.live_api import LiveApi

MONTH = "to_char(period_month, 'YYYY-MM')"
QUARTER = """to_char(date_trunc('quarter', period_month), 'YYYY-"Q"Q')"""


def all_pages(
    api: LiveApi, path: str, params: dict[str, Any], page_size: int = 3, model: str | None = None
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        response = api.get(path, params={**params, "page": page, "page_size": page_size})
        assert response.status_code == 200, response.text
        body = response.json()
        if model:
            PAGES[model].model_validate(body)
        assert body["page"] == page and body["page_size"] == page_size
        items += body["items"]
        if page * page_size >= body["total"]:
            assert len(items) == body["total"]
            return items
        assert len(body["items"]) == page_size
        page += 1


def expected(
    published: Published, query: str, params: tuple[Any, ...], columns: list[str]
) -> list[dict[str, Any]]:
    return [dict(zip(columns, row, strict=True)) for row in published.rows(query, params)]


# (endpoint, query parameters, SQL on the views giving the rows in order, SQL parameters, item model).
# `ORDER BY +total_cost` sorts by the view's numeric column, not by the `total_cost::text` output column.
CASES: list[tuple[str, dict[str, Any], str, tuple[Any, ...], str]] = [
    (
        "/api/v1/costs/domains",
        {},
        f"SELECT {MONTH}, domain_id, currency, total_cost::text, releve_count, application_count "
        "FROM finops.mv_cost_domain_month ORDER BY period_month, domain_id, currency",
        (),
        "DomainCost",
    ),
    (
        "/api/v1/costs/domains",
        {"grain": "quarter", "domain": "open_legacy"},
        f"SELECT {QUARTER}, domain_id, currency, sum(total_cost)::text, sum(releve_count), count(*) "
        "FROM finops.mv_cost_domain_month WHERE domain_id = 'open_legacy' "
        "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        (),
        "DomainQuarterCost",
    ),
    (
        "/api/v1/costs/families",
        {"from": "2025-02", "to": "2025-03"},
        f"SELECT {MONTH}, domain_id, family_id, currency, total_cost::text, releve_count "
        "FROM finops.mv_cost_family_month WHERE period_month BETWEEN '2025-02-01' AND '2025-03-01' "
        "ORDER BY period_month, domain_id, family_id, currency",
        (),
        "FamilyCost",
    ),
    (
        "/api/v1/costs/families",
        {"grain": "quarter", "family": "OL_COMPUTE"},
        f"SELECT {QUARTER}, domain_id, family_id, currency, sum(total_cost)::text, sum(releve_count), "
        "count(*) FROM finops.mv_cost_family_month WHERE family_id = 'OL_COMPUTE' "
        "GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
        (),
        "FamilyQuarterCost",
    ),
    (
        "/api/v1/costs/groups",
        {},
        f"SELECT {MONTH}, group_id, currency, total_cost::text, application_count "
        "FROM finops.mv_cost_group_month ORDER BY period_month, group_id, currency",
        (),
        "GroupCost",
    ),
    (
        "/api/v1/costs/groups",
        {"grain": "quarter", "group": "GRP-A", "from": "2025-02"},
        f"SELECT {QUARTER}, group_id, currency, sum(total_cost)::text, count(*) "
        "FROM finops.mv_cost_group_month WHERE group_id = 'GRP-A' AND period_month >= '2025-01-01' "
        "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        (),
        "GroupQuarterCost",
    ),
    (
        "/api/v1/costs/applications",
        {"group": "GRP-A"},
        f"SELECT {MONTH}, application_id, currency, group_id, total_cost::text, releve_count "
        "FROM finops.mv_cost_application_month WHERE group_id = 'GRP-A' "
        "ORDER BY period_month, application_id, currency",
        (),
        "ApplicationCost",
    ),
    (
        "/api/v1/costs/applications",
        {"grain": "quarter"},
        """SELECT to_char(period_quarter, 'YYYY-"Q"Q'), application_id, currency, group_id, """
        "total_cost::text, months_count FROM finops.mv_cost_app_quarter "
        "ORDER BY period_quarter, application_id, currency",
        (),
        "ApplicationQuarterCost",
    ),
    (
        "/api/v1/costs/applications",
        {"sort": "-total_cost", "to": "2025-02"},
        f"SELECT {MONTH}, application_id, currency, group_id, total_cost::text, releve_count "
        "FROM finops.mv_cost_application_month WHERE period_month <= '2025-02-01' "
        "ORDER BY +total_cost DESC, period_month, application_id, currency",
        (),
        "ApplicationCost",
    ),
    (
        "/api/v1/costs/products",
        {"from": "2025-03", "to": "2025-04", "family": "OL_COMPUTE"},
        f"SELECT {MONTH}, domain_id, family_id, product_id, usage_unit, currency, sum(usage_quantity)::text, "
        "sum(total_cost)::text, sum(releve_count), count(*) FROM finops.mv_cost_app_product_month "
        "WHERE period_month BETWEEN '2025-03-01' AND '2025-04-01' AND family_id = 'OL_COMPUTE' "
        "GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6",
        (),
        "ProductCost",
    ),
    (
        "/api/v1/costs/products",
        {"grain": "quarter", "product": "OL_DISK_GB"},
        f"SELECT {QUARTER}, domain_id, family_id, product_id, usage_unit, currency, "
        "sum(usage_quantity)::text, sum(total_cost)::text, sum(releve_count) "
        "FROM finops.mv_cost_app_product_month "
        "WHERE product_id = 'OL_DISK_GB' GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6",
        (),
        "ProductQuarterCost",
    ),
    (
        "/api/v1/history/domains",
        {"from": "2025-02"},
        f"SELECT {MONTH}, domain_id, currency, total_cost::text, cumulative_cost_year_to_date::text, "
        "rolling_12m_cost::text, previous_year_cost::text FROM finops.mv_history_domain "
        "WHERE period_month >= '2025-02-01' ORDER BY period_month, domain_id, currency",
        (),
        "DomainHistory",
    ),
    (
        "/api/v1/rankings/applications",
        {"from": "2025-04", "to": "2025-04"},
        f"SELECT {MONTH}, application_id, currency, total_cost::text, cost_rank, previous_month_cost::text, "
        "month_over_month_change::text, month_over_month_ratio::text FROM finops.mv_rank_app_month "
        "WHERE period_month = '2025-04-01' ORDER BY currency, cost_rank, application_id",
        (),
        "ApplicationRank",
    ),
    (
        "/api/v1/rankings/applications",
        {"sort": "-month_over_month_change"},
        f"SELECT {MONTH}, application_id, currency, total_cost::text, cost_rank, previous_month_cost::text, "
        "month_over_month_change::text, month_over_month_ratio::text FROM finops.mv_rank_app_month "
        "ORDER BY +month_over_month_change DESC, period_month, currency, cost_rank, application_id",
        (),
        "ApplicationRank",
    ),
    (
        "/api/v1/rankings/applications",
        {"sort": "month_over_month_ratio", "application": "SEARCH"},
        f"SELECT {MONTH}, application_id, currency, total_cost::text, cost_rank, previous_month_cost::text, "
        "month_over_month_change::text, month_over_month_ratio::text FROM finops.mv_rank_app_month "
        "WHERE application_id = 'SEARCH' "
        "ORDER BY +month_over_month_ratio NULLS LAST, period_month, currency, cost_rank, application_id",
        (),
        "ApplicationRank",
    ),
    (
        "/api/v1/anomalies",
        {},
        f"SELECT {MONTH}, application_id, domain_id, currency, total_cost::text, trailing_avg_cost::text, "
        "trailing_months_present, compared_months, deviation_ratio::text, anomaly_kind "
        "FROM finops.mv_anomalies_month "
        "ORDER BY period_month, application_id, domain_id, currency",
        (),
        "Anomaly",
    ),
    (
        "/api/v1/anomalies",
        {"kind": "DROP", "domain": "open_legacy"},
        f"SELECT {MONTH}, application_id, domain_id, currency, total_cost::text, trailing_avg_cost::text, "
        "trailing_months_present, compared_months, deviation_ratio::text, anomaly_kind "
        "FROM finops.mv_anomalies_month "
        "WHERE anomaly_kind = 'DROP' ORDER BY period_month, application_id, domain_id, currency",
        (),
        "Anomaly",
    ),
    (
        "/api/v1/applications/CRM/breakdown",
        {},
        f"SELECT {MONTH}, application_id, domain_id, currency, total_cost::text, releve_count "
        "FROM finops.mv_cost_app_domain_month WHERE application_id = 'CRM' "
        "ORDER BY period_month, domain_id, currency",
        (),
        "ApplicationDomainCost",
    ),
    (
        "/api/v1/applications/BILLING/breakdown",
        {"by": "family", "from": "2025-03"},
        f"SELECT {MONTH}, application_id, domain_id, family_id, currency, total_cost::text, releve_count "
        "FROM finops.mv_cost_app_family_month "
        "WHERE application_id = 'BILLING' AND period_month >= '2025-03-01' "
        "ORDER BY period_month, domain_id, family_id, currency",
        (),
        "ApplicationFamilyCost",
    ),
    (
        "/api/v1/applications/PAYMENTS/breakdown",
        {"by": "product", "sort": "-total_cost"},
        f"SELECT {MONTH}, application_id, domain_id, family_id, product_id, usage_unit, currency, "
        "usage_quantity::text, total_cost::text, releve_count FROM finops.mv_cost_app_product_month "
        "WHERE application_id = 'PAYMENTS' "
        "ORDER BY +total_cost DESC, period_month, domain_id, family_id, product_id, usage_unit, currency",
        (),
        "ApplicationProductCost",
    ),
]


@pytest.mark.parametrize(
    ("path", "params", "query", "query_params", "model"),
    CASES,
    ids=[f"{case[0]}?{case[1]}" for case in CASES],
)
def test_endpoint_matches_sql_on_the_views(
    api: LiveApi,
    published: Published,
    path: str,
    params: dict[str, Any],
    query: str,
    query_params: tuple[Any, ...],
    model: str,
) -> None:
    items = all_pages(api, path, params, model=model)
    columns = list(items[0].keys()) if items else []
    assert items, f"{path} returned no rows: the test data should give some"
    assert items == expected(published, query, query_params, columns)


def test_amounts_are_exact_decimal_strings_with_their_currency(api: LiveApi) -> None:
    body = api.get("/api/v1/costs/applications", params={"from": "2025-01", "to": "2025-01"}).json()
    for item in body["items"]:
        assert isinstance(item["total_cost"], str) and "e" not in item["total_cost"].lower()
        assert item["total_cost"].split(".")[1].__len__() == 6  # numeric(24, 6) scale kept
        assert item["currency"] == "EUR"


def test_pages_are_stable_and_disjoint(api: LiveApi, published: Published) -> None:
    """Equal costs (ties) must not make a row appear on two pages or none."""
    keys = [
        (item["period"], item["application_id"])
        for item in all_pages(api, "/api/v1/costs/applications", {"sort": "currency"}, page_size=1)
    ]
    assert (
        len(keys)
        == len(set(keys))
        == published.rows("SELECT count(*) FROM finops.mv_cost_application_month")[0][0]
    )


def test_a_page_past_the_end_is_empty_and_still_counts(api: LiveApi) -> None:
    body = api.get("/api/v1/costs/domains", params={"page": 99, "page_size": 2}).json()
    assert body["items"] == [] and body["total"] == 4


def test_unknown_application_in_the_path_is_404(api: LiveApi) -> None:
    response = api.get("/api/v1/applications/NOPE/breakdown")
    assert response.status_code == 404
    assert response.json()["detail"].startswith("unknown application 'NOPE'")


def test_openapi_schema_documents_every_route(api: LiveApi) -> None:
    schema = api.get("/openapi.json").json()
    paths = set(schema["paths"])
    assert {
        "/api/v1/costs/domains",
        "/api/v1/costs/families",
        "/api/v1/costs/groups",
        "/api/v1/costs/applications",
        "/api/v1/costs/products",
        "/api/v1/history/domains",
        "/api/v1/rankings/applications",
        "/api/v1/anomalies",
        "/api/v1/applications/{application_id}/breakdown",
        "/api/v1/freshness",
        "/api/v1/backstage/last-complete-billing-date",
        "/api/v1/backstage/groups",
        "/api/v1/backstage/groups/{group}/projects",
        "/api/v1/backstage/groups/{group}/cost",
        "/api/v1/backstage/projects/{project}/cost",
        "/api/v1/backstage/products/{family}/insights",
        "/api/v1/backstage/groups/{group}/alerts",
    } <= paths
    assert "ApplicationRankPage" in schema["components"]["schemas"]
    assert schema["components"]["schemas"]["DomainCost"]["properties"]["total_cost"]["type"] == "string"
