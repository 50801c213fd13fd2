"""The API's /metrics: requests by route template and status, latency, in flight, the pool, JWKS
refreshes and token refusals by reason, over a live API; and the switch (on, off, a port of its own)."""

from __future__ import annotations

import logging

import httpx
import pytest

from finops_dagster.api.settings import SettingError
from finops_dagster_tests.support.api_mart import Published
from finops_dagster_tests.support.live_api import live_api, settings_for
from finops_dagster_tests.support.metric_samples import samples
from finops_dagster_tests.support.oidc_issuer import Issuer
from finops_dagster_tests.support.ports import free_port

DATA = "/api/v1/costs/domains"
BREAKDOWN = "/api/v1/applications/{application_id}/breakdown"


def test_requests_refusals_pool_and_jwks_are_counted(
    published: Published, issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(monkeypatch, published.url, issuer)
    wrong_audience = issuer.token(audience="another-api")
    good = issuer.headers()
    with live_api(settings) as api:
        for _ in range(3):
            assert api.get(DATA, params={"from": "2025-01"}, headers=good).status_code == 200
        assert api.get("/api/v1/applications/PAYMENTS/breakdown", headers=good).status_code == 200
        assert api.get("/api/v1/applications/CRM/breakdown", headers=good).status_code == 200
        assert api.get(DATA).status_code == 401
        assert api.get(DATA, headers={"Authorization": f"Bearer {wrong_audience}"}).status_code == 401
        assert api.get(DATA, headers=issuer.headers(roles=["someone-else"])).status_code == 403
        assert api.get("/no/such/path").status_code == 404
        exposition = api.get("/metrics")
    assert exposition.status_code == 200
    assert exposition.headers["content-type"].startswith("text/plain")
    found = samples(exposition.text)

    def value(name: str, **labels: str) -> float:
        return found[(name, tuple(sorted(labels.items())))]

    assert value("finops_api_requests_total", method="GET", route=DATA, status="200") == 3
    assert value("finops_api_requests_total", method="GET", route=BREAKDOWN, status="200") == 2
    assert value("finops_api_requests_total", method="GET", route=DATA, status="401") == 2
    assert value("finops_api_requests_total", method="GET", route=DATA, status="403") == 1
    assert value("finops_api_requests_total", method="GET", route="unmatched", status="404") == 1
    assert value("finops_api_request_duration_seconds_count", method="GET", route=DATA) == 6
    assert value("finops_api_request_duration_seconds_bucket", method="GET", route=DATA, le="+Inf") == 6
    assert value("finops_api_requests_in_flight") == 0
    assert value("finops_api_token_refusals_total", reason="missing") == 1
    assert value("finops_api_token_refusals_total", reason="audience") == 1
    assert value("finops_api_token_refusals_total", reason="role") == 1
    assert value("finops_api_jwks_refreshes_total", outcome="success") == 1
    assert value("finops_api_db_pool_connections_max") == settings.pool_max
    # three distinct URLs read the views; the repeated one is answered from the response cache
    assert value("finops_api_db_pool_requests_total") >= 3
    assert "/api/v1/applications/PAYMENTS" not in exposition.text
    assert wrong_audience not in exposition.text and good["Authorization"][7:] not in exposition.text
    assert not any(name == "finops_api_requests_total" and ("route", "/metrics") in labels
                   for name, labels in found)


def test_metrics_off_is_a_404(published: Published, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_for(monkeypatch, published.url, None, FINOPS_API_METRICS="off")
    with live_api(settings) as api:
        assert api.get(DATA).status_code == 200
        assert api.get("/metrics").status_code == 404


def test_metrics_on_a_port_of_their_own(published: Published, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    settings = settings_for(monkeypatch, published.url, None, FINOPS_API_METRICS=f"port:{port}")
    with live_api(settings) as api:
        assert api.get(DATA).status_code == 200
        assert api.get("/metrics").status_code == 404
        apart = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert apart.status_code == 200
    assert samples(apart.text)[
        ("finops_api_requests_total", (("method", "GET"), ("route", DATA), ("status", "200")))
    ] == 1
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)


@pytest.mark.parametrize("value", ["maybe", "port:", "port:99999", "port:abc"])
def test_a_wrong_metrics_switch_is_refused_naming_it(
    published: Published, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    with pytest.raises(SettingError, match="FINOPS_API_METRICS must be on, off or port:NNNN"):
        settings_for(monkeypatch, published.url, None, FINOPS_API_METRICS=value)


def test_a_metrics_port_with_several_workers_is_refused(
    published: Published, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from finops_dagster.cli import main

    settings_for(monkeypatch, published.url, None, FINOPS_API_METRICS=f"port:{free_port()}")
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        assert main(["api", "--workers", "2", "--port", str(free_port())]) == 2
    finally:  # the command configures the process's logging; give pytest's back
        root.handlers[:] = handlers
        root.setLevel(level)
    assert "FINOPS_API_METRICS=port:NNNN serves one process's metrics" in capsys.readouterr().err
