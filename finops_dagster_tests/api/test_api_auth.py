"""Authentication against a real issuer's JWKS over a socket: valid, expired, wrong audience, wrong
issuer, wrong signature, unknown key, missing role; the demo switch; nothing of a token in any answer."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import jwt
import pytest
from pytest_httpserver import HTTPServer

from finops_dagster.api.app import create_app
from finops_dagster.api.settings import ApiSettings, SettingError, api_settings
from finops_dagster_tests.support.api_mart import Published
from finops_dagster_tests.support.live_api import LiveApi, live_api, settings_for
from finops_dagster_tests.support.oidc_issuer import Issuer, new_key

DATA = "/api/v1/costs/domains"


@pytest.fixture(scope="module")
def secured(published: Published, issuer: Issuer) -> Iterator[LiveApi]:
    """The API with OIDC on, and no default token: each test sends its own."""
    with pytest.MonkeyPatch.context() as patch:
        settings = settings_for(patch, published.url, issuer)
    with live_api(settings) as running:
        yield running


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _refused(api: LiveApi, token: str | None, status: int, reason: str) -> None:
    response = api.get(DATA, headers=_bearer(token) if token else {})
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status and reason in body["detail"]
    if token:
        assert token not in response.text
        if token.count(".") == 2:
            assert token.split(".")[1] not in response.text  # not even the claims
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')


def test_a_valid_token_with_the_role_reads(secured: LiveApi, issuer: Issuer) -> None:
    response = secured.get(DATA, headers=issuer.headers())
    assert response.status_code == 200
    assert response.json()["total"] > 0


def test_no_token_or_another_scheme_is_401(secured: LiveApi) -> None:
    _refused(secured, None, 401, "bearer token is required")
    response = secured.get(DATA, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert response.status_code == 401 and "Bearer <token>" in response.json()["detail"]
    _refused(secured, "not-a-jwt", 401, "not a well-formed JWT")


def test_an_expired_token_is_401(secured: LiveApi, issuer: Issuer) -> None:
    _refused(secured, issuer.token(expires_in=-3600), 401, "expired")


def test_a_remembered_token_still_expires(published: Published, issuer: Issuer,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_for(monkeypatch, published.url, issuer, FINOPS_API_OIDC_LEEWAY_S="0")
    token = issuer.token(expires_in=2)
    with live_api(settings) as api:
        assert api.get(DATA, headers=_bearer(token)).status_code == 200
        assert api.get(DATA, headers=_bearer(token)).status_code == 200  # remembered
        time.sleep(2.5)
        _refused(api, token, 401, "expired")


def test_a_token_for_another_audience_is_401(secured: LiveApi, issuer: Issuer) -> None:
    _refused(secured, issuer.token(audience="some-other-api"), 401, "audience")


def test_a_token_of_another_issuer_is_401(secured: LiveApi, issuer: Issuer) -> None:
    _refused(secured, issuer.token(issuer="https://evil.test/"), 401, "issuer")


def test_a_forged_signature_is_401(secured: LiveApi, issuer: Issuer) -> None:
    # signed with another key, claiming the issuer's kid
    _refused(secured, issuer.token(key=new_key()), 401, "signature does not verify")
    # a genuine token whose claims were altered after signing
    header, _, signature = issuer.token().split(".")
    forged_claims = jwt.utils.base64url_encode(
        b'{"iss":"https://issuer.test/realms/finops","aud":"finops-api","exp":9999999999,"roles":["finops-reader"]}'
    ).decode()
    _refused(secured, f"{header}.{forged_claims}.{signature}", 401, "signature does not verify")


def test_a_key_the_issuer_does_not_publish_is_401(secured: LiveApi, issuer: Issuer) -> None:
    _refused(secured, issuer.token(key=new_key(), kid="rotated-away"), 401, "key the issuer does not publish")


def test_symmetric_or_unsigned_tokens_are_refused(secured: LiveApi, issuer: Issuer) -> None:
    claims = {
        "iss": "https://issuer.test/realms/finops",
        "aud": "finops-api",
        "exp": 9999999999,
        "roles": ["finops-reader"],
    }
    hs256 = jwt.encode(
        claims, "a-shared-secret-long-enough-for-hmac-sha256", algorithm="HS256", headers={"kid": issuer.kid}
    )
    _refused(secured, hs256, 401, "algorithm is not accepted")
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": issuer.kid})
    _refused(secured, unsigned, 401, "algorithm is not accepted")


def test_a_token_without_the_role_is_403(secured: LiveApi, issuer: Issuer) -> None:
    _refused(secured, issuer.token(roles=["something-else"]), 403, "role 'finops-reader' is missing")
    _refused(secured, issuer.token(roles=[]), 403, "does not grant read access")


def test_the_role_claim_is_configurable(
    published: Published, issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(
        monkeypatch,
        published.url,
        issuer,
        FINOPS_API_OIDC_ROLE_CLAIM="realm_access.roles",
        FINOPS_API_OIDC_REQUIRED_ROLE="costs:read",
    )
    with live_api(settings) as api:
        granted = issuer.token(roles=[], realm_access={"roles": ["costs:read", "other"]})
        assert api.get(DATA, headers=_bearer(granted)).status_code == 200
        assert api.get(DATA, headers=issuer.headers()).status_code == 403  # top-level roles no longer count
    settings = settings_for(
        monkeypatch,
        published.url,
        issuer,
        FINOPS_API_OIDC_ROLE_CLAIM="scope",
        FINOPS_API_OIDC_REQUIRED_ROLE="finops.read",
    )
    with live_api(settings) as api:
        assert api.get(DATA, headers=_bearer(issuer.token(scope="openid finops.read"))).status_code == 200


def test_an_unreachable_issuer_is_503_not_a_pass(
    published: Published, issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(
        monkeypatch,
        published.url,
        issuer,
        FINOPS_API_OIDC_JWKS_URL="http://127.0.0.1:9/jwks",
        FINOPS_API_OIDC_JWKS_TIMEOUT_MS="500",
    )
    with live_api(settings) as api:
        response = api.get(DATA, headers=issuer.headers())
        assert response.status_code == 503
        assert "signing keys could not be fetched" in response.json()["detail"]


def test_the_jwks_is_discovered_from_the_issuer(
    published: Published, issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    try:
        base = server.url_for("/realms/finops")
        server.expect_request("/realms/finops/.well-known/openid-configuration").respond_with_json(
            {"issuer": base, "jwks_uri": issuer.jwks_url}
        )
        settings = settings_for(monkeypatch, published.url, issuer, FINOPS_API_OIDC_ISSUER=base)
        monkeypatch.delenv("FINOPS_API_OIDC_JWKS_URL")
        settings = api_settings()
        assert settings.oidc is not None and settings.oidc.jwks_url is None
        with live_api(settings) as api:
            assert api.get(DATA, headers=issuer.headers(issuer=base)).status_code == 200
    finally:
        server.stop()


def test_public_paths_need_no_token(secured: LiveApi) -> None:
    assert secured.get("/openapi.json").status_code == 200
    assert secured.get("/healthz").json() == {"status": "ok", "authentication": "oidc"}
    assert secured.get("/api/v1/freshness").status_code == 401
    assert secured.get("/api/v1/backstage/groups").status_code == 401


def test_oidc_is_the_default_and_needs_its_settings(
    published: Published, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_for(monkeypatch, published.url, None)
    monkeypatch.delenv("FINOPS_API_AUTH")
    with pytest.raises(SettingError, match="FINOPS_API_OIDC_ISSUER and FINOPS_API_OIDC_AUDIENCE must be set"):
        api_settings()
    monkeypatch.setenv("FINOPS_API_AUTH", "off")
    with pytest.raises(SettingError, match="FINOPS_API_AUTH must be one of oidc, none"):
        api_settings()


def test_disabling_authentication_is_explicit_and_announced(
    published: Published, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(monkeypatch, published.url, None)
    assert settings.auth_disabled
    assert "Authentication is disabled" in create_app(settings).openapi()["info"]["description"]
    with caplog.at_level(logging.WARNING, logger="finops_dagster.api"), live_api(settings) as api:
        assert api.get(DATA).status_code == 200
        assert api.get("/healthz").json()["authentication"] == "disabled"
    assert any("AUTHENTICATION IS DISABLED" in record.getMessage() for record in caplog.records)


# --------------------------------------------------------------------------------------------
# The issuer's keys: refetches rate-limited whatever the issuer does, never a queue behind it
# --------------------------------------------------------------------------------------------


def _concurrently(api: LiveApi, tokens: list[str], path: str = DATA) -> list[int]:
    def call(token: str) -> int:
        return httpx.get(api.base_url + path, headers=_bearer(token), timeout=30).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(call, tokens))


def _jwks_settings(
    monkeypatch: pytest.MonkeyPatch, published: Published, issuer: Issuer, url: str
) -> ApiSettings:
    timeout = {"FINOPS_API_OIDC_JWKS_TIMEOUT_MS": "500"}
    return settings_for(monkeypatch, published.url, issuer, FINOPS_API_OIDC_JWKS_URL=url, **timeout)


def test_unknown_kids_cost_the_answering_issuer_one_fetch_per_interval(
    published: Published, issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    try:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(issuer.key.public_key(), as_dict=True)
        server.expect_request("/jwks").respond_with_json({"keys": [{**jwk, "kid": issuer.kid, "use": "sig"}]})
        with live_api(_jwks_settings(monkeypatch, published, issuer, server.url_for("/jwks"))) as api:
            assert api.get(DATA, headers=issuer.headers()).status_code == 200
            forged = [issuer.token(key=new_key(), kid=f"forged-{n}") for n in range(100)]
            assert set(_concurrently(api, forged)) == {401}
            assert len(server.log) == 1  # the first fetch; the forged kids fall within its interval
    finally:
        server.stop()


def test_a_failing_issuer_is_asked_once_per_interval(
    published: Published, issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    try:
        server.expect_request("/jwks").respond_with_data("down", status=500)
        with live_api(_jwks_settings(monkeypatch, published, issuer, server.url_for("/jwks"))) as api:
            statuses = _concurrently(api, [issuer.token(kid=f"k-{n}") for n in range(100)])
            assert set(statuses) == {503}
            assert len(server.log) == 1
    finally:
        server.stop()


@contextmanager
def _hanging_issuer() -> Iterator[tuple[str, list[socket.socket]]]:
    """Accepts connections and never answers them."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/jwks", accepted
    finally:
        stop.set()
        thread.join(timeout=5)
        for connection in accepted:
            connection.close()
        listener.close()


def test_requests_do_not_queue_behind_a_hanging_issuer(
    published: Published, issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _hanging_issuer() as (url, accepted), live_api(
        _jwks_settings(monkeypatch, published, issuer, url)
    ) as api:
        started = time.monotonic()
        statuses = _concurrently(api, [issuer.token(kid=f"k-{n}") for n in range(40)])
        elapsed = time.monotonic() - started
        assert set(statuses) == {503}
        assert elapsed < 3  # one shared fetch, cut at the 0.5 s timeout: not 40 fetches in a row
        assert len(accepted) == 1
        healthz_started = time.monotonic()
        assert api.get("/healthz").status_code == 200
        assert time.monotonic() - healthz_started < 0.5
        # within the interval, nothing more is asked of the issuer, and the answer is immediate
        again = time.monotonic()
        assert api.get(DATA, headers=issuer.headers()).status_code == 503
        assert time.monotonic() - again < 0.4 and len(accepted) == 1
