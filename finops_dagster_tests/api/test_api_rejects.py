"""GET /api/v1/rejects: a month's published rejects by reason code, over HTTP, as the reader role.

The mart holds published rejects of two domains in October, a later run's staged rejects that were
never published, and a reject of November (`mart/reject_rows.py`); the API runs under uvicorn with
OIDC authentication, on a superuser URL that its sessions leave for the reader role.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from finops_dagster.api.rejects import RejectPage
from finops_dagster_tests.support.live_api import LiveApi, live_api, settings_for
from finops_dagster_tests.support.metric_samples import samples
from finops_dagster_tests.support.oidc_issuer import Issuer
from finops_dagster_tests.support.reject_rows import write_rejects

ROUTE = "/api/v1/rejects"


@pytest.fixture
def api(
    mart: psycopg.Connection, mart_url: str, issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LiveApi]:
    write_rejects(mart)
    for run in ("run-a", "run-b"):
        mart.execute(
            "INSERT INTO finops.etl_runs (run_id, status, trigger_type, job_name, ended_at, version) "
            "VALUES (%s, 'SUCCESS', 'MANUAL', 'finops_nightly', now(), 'test')",
            (run,),
        )
    settings = settings_for(monkeypatch, mart_url, issuer)
    with live_api(settings, issuer.headers(expires_in=3600)) as running:
        yield running


def page(api: LiveApi, **params: Any) -> dict[str, Any]:
    response = api.get(ROUTE, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    RejectPage.model_validate(body)
    return body


def test_a_month_is_summed_by_reason_and_listed(api: LiveApi) -> None:
    body = page(api, month="2026-10")
    assert (body["period"], body["domain"], body["reason"], body["total"]) == ("2026-10", None, None, 7)
    assert [
        (s["reason_code"], s["rejects"], s["records"], s["cost"], s["currency"]) for s in body["summary"]
    ] == [
        ("UNKNOWN_CI_CLASS", 2, 33, None, None),
        ("INVALID_AMOUNT", 1, None, "5.500000", "EUR"),
        ("INVALID_CURRENCY", 1, None, "7.000000", None),
        ("MALFORMED_ROW", 1, None, None, None),
        ("NO_EXCHANGE_RATE", 1, None, "123.450000", "USD"),
        ("NO_RATE", 1, 3, None, None),
    ]
    assert body["summary"][0]["description"].startswith("a CMDB document of a class")
    assert [(i["domain_id"], i["reason_code"], i["source_ref"]) for i in body["items"]] == [
        ("open_legacy", "NO_RATE", "PAYMENTS / OL_VCPU"),
        ("open_legacy", "UNKNOWN_CI_CLASS", "prn-1 (prn-1)"),
        ("open_legacy", "UNKNOWN_CI_CLASS", "ups-1 (ups-1)"),
        ("public_cloud", "INVALID_AMOUNT", "/exports/bill.csv#row 12"),
        ("public_cloud", "INVALID_CURRENCY", "/exports/bill.csv#row 7"),
        ("public_cloud", "MALFORMED_ROW", "/exports/bill.csv#row 9"),
        ("public_cloud", "NO_EXCHANGE_RATE", "aws:AmazonEC2:PAYMENTS"),
    ]
    rate = body["items"][0]
    assert (rate["usage_quantity"], rate["usage_unit"], rate["records"], rate["details"]) == (
        "4.000000",
        "vCPU-month",
        3,
        "no rate card for OL_VCPU valid in 2026-10",
    )
    assert "other.csv" not in str(body) and "secret" not in str(body)  # unpublished; payloads never served


def test_filters_and_pages(api: LiveApi) -> None:
    first = page(api, month="2026-10", domain="public_cloud", page_size=3)
    second = page(api, month="2026-10", domain="public_cloud", page_size=3, page=2)
    assert (first["total"], second["total"], len(first["items"]), len(second["items"])) == (4, 4, 3, 1)
    assert [item["reason_code"] for item in first["items"] + second["items"]] == [
        "INVALID_AMOUNT",
        "INVALID_CURRENCY",
        "MALFORMED_ROW",
        "NO_EXCHANGE_RATE",
    ]
    only = page(api, month="2026-10", reason="UNKNOWN_CI_CLASS")
    assert (only["reason"], only["total"], {i["reason_code"] for i in only["items"]}) == (
        "UNKNOWN_CI_CLASS",
        2,
        {"UNKNOWN_CI_CLASS"},
    )
    november = page(api, month="2026-11", domain="native")
    assert [(i["reason_code"], i["source"]) for i in november["items"]] == [("MALFORMED_RECORD", "gitlab")]
    assert page(api, month="2026-09") | {"summary": [], "items": []} == {
        "period": "2026-09",
        "domain": None,
        "reason": None,
        "summary": [],
        "items": [],
        "page": 1,
        "page_size": 100,
        "total": 0,
    }


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({}, "month: required"),
        ({"month": "2026-13"}, "month: expected a month as YYYY-MM"),
        ({"month": "October"}, "month: expected a month as YYYY-MM"),
        ({"month": "2026-10", "domain": "mainframe"}, "domain: expected one of open_legacy, private_cloud"),
        ({"month": "2026-10", "reason": "TYPO"}, "reason: expected one of NO_RATE, UNKNOWN_PRODUCT"),
        ({"month": "2026-10", "page_size": "0"}, "page_size: expected 1 to"),
        ({"month": "2026-10", "page": "0"}, "page: expected 1 to"),
        ({"month": "2026-10", "from": "2026-01"}, "unknown query parameter(s) from"),
    ],
)
def test_bad_parameters_are_400_naming_them(api: LiveApi, params: dict[str, str], fragment: str) -> None:
    response = api.get(ROUTE, params=params)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["detail"]


def test_authentication_and_role_are_required(api: LiveApi, issuer: Issuer) -> None:
    assert api.get(ROUTE, params={"month": "2026-10"}, headers={"Authorization": ""}).status_code == 401
    refused = api.get(ROUTE, params={"month": "2026-10"}, headers=issuer.headers(roles=["someone-else"]))
    assert refused.status_code == 403
    assert "UNKNOWN_CI_CLASS" not in refused.text


def test_answers_follow_the_publish_cache_and_metrics_conventions(api: LiveApi) -> None:
    first = api.get(ROUTE, params={"month": "2026-10"})
    assert first.status_code == 200 and first.headers["cache-control"] == "private, no-cache"
    again = api.get(ROUTE, params={"month": "2026-10"}, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    found = samples(api.get("/metrics").text)
    assert found[("finops_api_requests_total", (("method", "GET"), ("route", ROUTE), ("status", "200")))] == 1
    assert found[("finops_api_requests_total", (("method", "GET"), ("route", ROUTE), ("status", "304")))] == 1


def test_the_route_is_documented(api: LiveApi) -> None:
    schema = api.get("/openapi.json").json()
    operation = schema["paths"][ROUTE]["get"]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert set(parameters) == {"month", "domain", "reason", "page", "page_size"}
    assert parameters["month"]["required"] is True
    assert "UNKNOWN_CI_CLASS" in parameters["reason"]["description"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/RejectPage"
    )
    assert {"RejectPage", "RejectItem", "ReasonSummary"} <= set(schema["components"]["schemas"])
    assert "422" not in operation["responses"]


def test_the_reader_role_reads_the_published_rejects_not_the_table(mart: psycopg.Connection) -> None:
    write_rejects(mart)
    mart.execute("SET ROLE finops_reader")
    try:
        assert mart.execute("SELECT count(*) FROM finops.published_reject").fetchone() == (8,)
        assert mart.execute("SELECT count(*) FROM finops.reject_reason").fetchone() == (17,)
        columns = [
            c.name for c in mart.execute("SELECT * FROM finops.published_reject LIMIT 0").description or []
        ]
        assert "raw_payload" not in columns
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            mart.execute("SELECT raw_payload FROM finops.releve_reject")
    finally:
        mart.execute("RESET ROLE")
