"""What every answer carries at the edge: security headers on data, errors and cached answers alike;
no redirect built from the request's Host; no HTML page loading scripts from elsewhere."""

from __future__ import annotations

import httpx

from finops_dagster_tests.support.live_api import LiveApi

EXPECTED = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def _has_security_headers(response: httpx.Response) -> None:
    for name, value in EXPECTED.items():
        assert response.headers[name] == value, name
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy


def test_every_answer_has_the_security_headers(api: LiveApi) -> None:
    for response in (
        api.get("/api/v1/costs/domains"),
        api.get("/api/v1/costs/domains"),  # the second one from the response cache
        api.get("/api/v1/costs/domains", params={"from": "nope"}),  # 400
        api.get("/api/v1/backstage/groups/NOPE/projects"),  # 404
        api.get("/no/such/path"),
        api.get("/healthz"),
        api.get("/openapi.json"),
    ):
        _has_security_headers(response)


def test_no_redirect_is_built_from_the_host_header(api: LiveApi) -> None:
    response = api.get("/api/v1/costs/domains/", headers={"Host": "evil.example"}, follow_redirects=False)
    assert response.status_code == 404
    assert "location" not in response.headers


def test_no_html_page_loads_scripts_from_a_cdn(api: LiveApi) -> None:
    assert api.get("/docs").status_code == 404
    assert api.get("/redoc").status_code == 404
    assert api.get("/openapi.json").json()["info"]["title"] == "FinOps costs API"
