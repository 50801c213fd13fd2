"""`/api/v1/months/{month}` and its restatements, over a mart the pipeline published, one month closed
and restated after an allocation rule changed: the reader role sees them (grants of 018), with the
API's conventions (token, 400 and 404, answers per publish version, metrics by route template)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from dagster import instance_for_test
from psycopg import sql

from finops_dagster.allocation.rules import COLUMNS
from finops_dagster.api.months import MonthStatusBody, RestatementDetail, RestatementList
from finops_dagster.mart.etl_runs import RANGE_END_TAG, RANGE_START_TAG, RunLedger
from finops_dagster.mart.month_close import close_month
from finops_dagster.mart.publish import CLOSED_MONTHS_TAG, RESTATE, approve_restatement
from finops_dagster.pipeline import build_definitions
from finops_dagster.resources.mongo import MongoResource
from finops_dagster.resources.postgres import PostgresResource
from finops_dagster_tests.api.test_api_metrics import samples
from finops_dagster_tests.conftest import database_url
from finops_dagster_tests.support.api_mart import (
    ESTATE,
    FEBRUARY,
    JANUARY,
    Published,
    month_documents,
    pipeline_settings,
)
from finops_dagster_tests.support.live_api import LiveApi, live_api, settings_for
from finops_dagster_tests.support.oidc_issuer import Issuer

EVEN = "IDLE,v1,10,2025-01-01,,UNALLOCATED,open_legacy,,,domain,open_legacy,even,"
PROPORTIONAL = "IDLE,v2,10,2025-01-01,,UNALLOCATED,open_legacy,,,domain,open_legacy,proportional,"


@pytest.fixture(scope="module")
def restated(
    server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Published]:
    """January and February published; January closed by alice, then restated (the rule changed)."""
    name = f"finops_months_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template_db)
            )
        )
    url = database_url(server_url, name)
    rules = tmp_path_factory.mktemp("rules") / "allocation_rules.csv"
    cmdb = MongoResource(url=f"mongomock://{uuid.uuid4().hex}")
    for month in ESTATE:
        cmdb.db()["cmdb_ci"].insert_many(month_documents(month))
    postgres = PostgresResource(url=url)
    resources = {"postgres": postgres, "cmdb": cmdb, "run_ledger": RunLedger(postgres=postgres)}
    runs = []
    try:
        with pytest.MonkeyPatch.context() as patch, instance_for_test() as instance:
            pipeline_settings(patch)
            patch.setenv("FINOPS_ALLOCATION_RULES", str(rules))
            job = build_definitions(resources).resolve_job_def("finops_nightly")
            for rule, first, last, tags in (
                (EVEN, JANUARY, FEBRUARY, {}),
                (PROPORTIONAL, JANUARY, JANUARY, {CLOSED_MONTHS_TAG: RESTATE}),
            ):
                rules.write_text("\n".join([",".join(COLUMNS), rule]) + "\n")
                result = job.execute_in_process(
                    instance=instance,
                    raise_on_error=False,
                    tags={RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat(), **tags},
                )
                assert result.success
                runs.append(result.run_id)
                if not tags:
                    with psycopg.connect(url, autocommit=True) as conn:
                        close_month(conn, JANUARY, by="alice", note="signed")
        yield Published(url, runs, resources)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def months_api(restated: Published, issuer: Issuer) -> Iterator[LiveApi]:
    """The API as deployed (OIDC, the reader role), reading the version on every request."""
    with pytest.MonkeyPatch.context() as patch:
        settings = settings_for(patch, restated.url, issuer, FINOPS_API_VERSION_TTL_MS="0")
    with live_api(settings, issuer.headers(expires_in=3600)) as running:
        yield running


def get(api: LiveApi, path: str, **params: Any) -> dict[str, Any]:
    response = api.get(path, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_closed_and_an_open_month(months_api: LiveApi, restated: Published) -> None:
    january = get(months_api, "/api/v1/months/2025-01")
    MonthStatusBody.model_validate(january)
    assert (january["status"], january["version"], january["closed_by"], january["note"]) == (
        "CLOSED",
        1,
        "alice",
        "signed",
    )
    assert january["published_run_id"] == restated.runs[0] and january["closed_at"]
    assert set(january["inputs"]) >= {"source_data", "rate_card", "mapping", "allocation_rule"}
    february = get(months_api, "/api/v1/months/2025-02")
    assert (february["status"], february["version"], february["closed_by"]) == ("OPEN", 1, None)


def test_the_restatements_of_a_month_and_what_one_changes(months_api: LiveApi, restated: Published) -> None:
    listed = get(months_api, "/api/v1/months/2025-01/restatements")
    RestatementList.model_validate(listed)
    [item] = listed["items"]
    run = restated.runs[1]
    assert (item["run_id"], item["status"], item["base_version"], item["new_version"]) == (
        run,
        "PENDING",
        1,
        None,
    )
    assert item["changed_inputs"] == ["allocation_rule"]
    assert item["direct_before"] == item["direct_after"]
    assert get(months_api, "/api/v1/months/2025-02/restatements")["items"] == []

    detail = get(months_api, f"/api/v1/months/2025-01/restatements/{run}")
    RestatementDetail.model_validate(detail)
    expected = restated.rows(
        "SELECT application_id, product_id, allocated_before::text, allocated_after::text "
        "FROM finops.month_restatement_line WHERE run_id = %s ORDER BY 1, 2, 3",
        (run,),
    )
    assert [
        (line["application_id"], line["product_id"], line["allocated_before"], line["allocated_after"])
        for line in detail["lines"]
    ] == [tuple(row) for row in expected]
    assert len(detail["lines"]) == item["lines_changed"] > 0
    assert all(line["direct_change"] == "0.000000" for line in detail["lines"])
    assert sum(Decimal(line["allocated_change"]) for line in detail["lines"]) == 0  # nothing created or lost
    assert {tuple(line["changed_inputs"]) for line in detail["lines"]} == {("allocation_rule",)}


@pytest.mark.parametrize(
    ("path", "status", "fragment"),
    [
        ("/api/v1/months/2025-13", 400, "month: expected a month as YYYY-MM"),
        ("/api/v1/months/2024-12", 404, "month 2024-12 was never published"),
        ("/api/v1/months/2024-12/restatements", 404, "never published"),
        (
            "/api/v1/months/2025-01/restatements/no-such-run",
            404,
            "no restatement of 2025-01 by run 'no-such-run'",
        ),
        ("/api/v1/months/2025-01?view=allocated", 400, "unknown query parameter(s) view"),
    ],
)
def test_bad_months_and_runs(months_api: LiveApi, path: str, status: int, fragment: str) -> None:
    response = months_api.get(path)
    assert response.status_code == status, response.text
    assert fragment in response.json()["detail"]


def test_a_token_is_needed(months_api: LiveApi) -> None:
    assert months_api.client.get("/api/v1/months/2025-01", headers={"Authorization": ""}).status_code == 401


def test_the_schema_documents_the_routes(months_api: LiveApi) -> None:
    paths = months_api.get("/openapi.json").json()["paths"]
    for path in (
        "/api/v1/months/{month}",
        "/api/v1/months/{month}/restatements",
        "/api/v1/months/{month}/restatements/{run}",
    ):
        assert "200" in paths[path]["get"]["responses"] and "422" not in paths[path]["get"]["responses"]


def test_an_approval_is_a_new_version_of_every_answer(months_api: LiveApi, restated: Published) -> None:
    """The answers are kept per publish version: closing or approving changes it, so the next request
    sees the new state, with a new ETag; the requests are counted by route template."""
    before = months_api.get("/api/v1/months/2025-01")
    assert (
        months_api.get(
            "/api/v1/months/2025-01", headers={"If-None-Match": before.headers["ETag"]}
        ).status_code
        == 304
    )
    with psycopg.connect(restated.url, autocommit=True) as conn:
        approve_restatement(conn, JANUARY, restated.runs[1], by="bob", today=dt.date(2025, 6, 1))
    after = months_api.get("/api/v1/months/2025-01", headers={"If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200 and after.headers["ETag"] != before.headers["ETag"]
    assert (after.json()["version"], after.json()["approved_by"]) == (2, "bob")
    [item] = get(months_api, "/api/v1/months/2025-01/restatements")["items"]
    assert (item["status"], item["new_version"], item["approved_by"]) == ("APPROVED", 2, "bob")
    found = samples(months_api.get("/metrics").text)
    assert (
        found[
            (
                "finops_api_requests_total",
                (("method", "GET"), ("route", "/api/v1/months/{month}"), ("status", "200")),
            )
        ]
        >= 2
    )
