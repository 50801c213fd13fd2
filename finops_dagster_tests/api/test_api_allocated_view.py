"""`?view=direct|allocated` on the cost and Backstage routes, over a mart the pipeline published with
allocation rules: the allocated numbers are the allocated tables' (read here by plain SQL), the
direct ones are unchanged and the default, and anything else is a 400."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg import sql

from finops_dagster.allocation.rules import COLUMNS
from finops_dagster.api.models import BackstageCost
from finops_dagster.api.routes import PAGES
from finops_dagster.mart.etl_runs import RunLedger
from finops_dagster.resources.mongo import MongoResource
from finops_dagster.resources.postgres import PostgresResource
from finops_dagster_tests.conftest import database_url
from finops_dagster_tests.support.api_mart import (
    APRIL,
    ESTATE,
    JANUARY,
    Published,
    month_documents,
    pipeline_settings,
    run_nightly,
)
from finops_dagster_tests.support.live_api import LiveApi, live_api, settings_for

RULES = (
    # the orphan VM's cost (UNALLOCATED) to every application of the domain, by its own cost
    "IDLE,v1,10,2025-01-01,,UNALLOCATED,open_legacy,,,domain,open_legacy,proportional,",
    # BACKUP (January and February only) evenly over group GRP-B: CRM, and SEARCH once it has cost
    "BACKUP-SHARE,v1,20,2025-01-01,,BACKUP,,,,group,GRP-B,even,",
)


@pytest.fixture(scope="module")
def allocated_mart(
    server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Published]:
    name = f"finops_alloc_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template_db)
            )
        )
    url = database_url(server_url, name)
    rules = tmp_path_factory.mktemp("rules") / "allocation_rules.csv"
    rules.write_text("\n".join([",".join(COLUMNS), *RULES]) + "\n")
    cmdb = MongoResource(url=f"mongomock://{uuid.uuid4().hex}")
    for month in ESTATE:
        cmdb.db()["cmdb_ci"].insert_many(month_documents(month))
    postgres = PostgresResource(url=url)
    resources = {"postgres": postgres, "cmdb": cmdb, "run_ledger": RunLedger(postgres=postgres)}
    try:
        with pytest.MonkeyPatch.context() as patch:
            pipeline_settings(patch)
            patch.setenv("FINOPS_ALLOCATION_RULES", str(rules))
            runs = [run_nightly(resources, JANUARY, APRIL)]
        yield Published(url, runs, resources)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def allocated_api(allocated_mart: Published) -> Iterator[LiveApi]:
    """The API as deployed (the reader role, through SET ROLE), without authentication."""
    with pytest.MonkeyPatch.context() as patch:
        settings = settings_for(patch, allocated_mart.url, None)
    with live_api(settings) as running:
        yield running


def costs(api: LiveApi, **params: str) -> dict[str, Decimal]:
    response = api.get("/api/v1/costs/applications", params={"from": "2025-01", "to": "2025-01", **params})
    assert response.status_code == 200, response.text
    PAGES["ApplicationCost"].model_validate(response.json())
    return {item["application_id"]: Decimal(item["total_cost"]) for item in response.json()["items"]}


def test_the_allocated_view_serves_the_allocated_costs(
    allocated_api: LiveApi, allocated_mart: Published
) -> None:
    expected = dict(
        allocated_mart.rows(
            "SELECT application_id, sum(total_cost) FROM finops.fact_releve_allocated "
            "WHERE period_month = '2025-01-01' GROUP BY 1"
        )
    )
    allocated = costs(allocated_api, view="allocated")
    assert allocated == expected
    direct = costs(allocated_api)
    assert costs(allocated_api, view="direct") == direct
    assert sum(allocated.values()) == sum(direct.values())
    assert direct["UNALLOCATED"] > 0 and allocated["UNALLOCATED"] == 0
    assert direct["BACKUP"] > 0 and allocated["BACKUP"] == 0
    # BACKUP's cost (with its share of IDLE) goes evenly to GRP-B's members, CRM and SEARCH (which has
    # no cost of its own until March): every amount in the lineage, and nothing else
    received = dict(
        allocated_mart.rows(
            "SELECT allocated_resource_id, sum(allocated_cost) FROM finops.fact_allocation "
            "WHERE period_month = '2025-01-01' GROUP BY 1"
        )
    )
    shared = dict(
        allocated_mart.rows(
            "SELECT allocated_resource_id, sum(allocated_cost) FROM finops.fact_allocation "
            "WHERE period_month = '2025-01-01' AND rule_id = 'BACKUP-SHARE' GROUP BY 1"
        )
    )
    assert set(shared) == {"CRM", "SEARCH"}
    assert abs(shared["CRM"] - shared["SEARCH"]) <= Decimal("0.000003")  # one quantum per product at most
    assert shared["CRM"] + shared["SEARCH"] == direct["BACKUP"] + received["BACKUP"]
    assert allocated["CRM"] == direct["CRM"] + received["CRM"]
    assert "SEARCH" not in direct and allocated["SEARCH"] == shared["SEARCH"]


def test_the_domain_totals_are_the_same_in_both_views(allocated_api: LiveApi) -> None:
    bodies = [
        allocated_api.get("/api/v1/costs/domains", params={"view": view}).json()["items"]
        for view in ("direct", "allocated")
    ]
    assert [(i["period"], i["total_cost"]) for i in bodies[0]] == [
        (i["period"], i["total_cost"]) for i in bodies[1]
    ]


@pytest.mark.parametrize(
    "path", ["/api/v1/costs/applications", "/api/v1/backstage/groups", "/api/v1/anomalies"]
)
@pytest.mark.parametrize("value", ["Allocated", "both", ""])
def test_another_view_is_a_400(allocated_api: LiveApi, path: str, value: str) -> None:
    response = allocated_api.get(path, params={"view": value})
    assert response.status_code == 400, response.text
    assert "view" in response.json()["detail"]


def test_backstage_shows_the_group_after_allocation(
    allocated_api: LiveApi, allocated_mart: Published
) -> None:
    params: dict[str, Any] = {"intervals": "R2/P1M/2025-03-01"}  # January and February
    direct = allocated_api.get("/api/v1/backstage/groups/GRP-B/cost", params=params).json()
    allocated = allocated_api.get(
        "/api/v1/backstage/groups/GRP-B/cost", params={**params, "view": "allocated"}
    )
    assert allocated.status_code == 200
    BackstageCost.model_validate(allocated.json())
    expected = dict(
        allocated_mart.rows(
            "SELECT period_month, total_cost::text FROM finops_allocated.mv_cost_group_month "
            "WHERE group_id = 'GRP-B' AND period_month < '2025-03-01' ORDER BY 1"
        )
    )
    assert [point["amountExact"] for point in allocated.json()["aggregation"]] == list(expected.values())
    for before, after in zip(direct["aggregation"], allocated.json()["aggregation"], strict=True):
        assert Decimal(after["amountExact"]) > Decimal(before["amountExact"])
    projects = allocated_api.get(
        "/api/v1/backstage/groups/GRP-A/projects", params={"view": "allocated"}
    ).json()
    assert {"id": "BACKUP", "name": "BACKUP"} in projects  # it consumed (its cost is 0 once allocated)


def test_the_openapi_schema_offers_the_two_views(allocated_api: LiveApi) -> None:
    schema = allocated_api.get("/openapi.json").json()
    for path in ("/api/v1/costs/applications", "/api/v1/backstage/groups/{group}/cost"):
        [view] = [p for p in schema["paths"][path]["get"]["parameters"] if p["name"] == "view"]
        assert view["schema"]["enum"] == ["direct", "allocated"] and view["schema"]["default"] == "direct"
