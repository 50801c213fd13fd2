"""Rendered responses kept per URL and publish: a repeat request costs no SQL, a publish invalidates,
the memory is bounded, and a refused token is never served from the cache."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from finops_dagster.api.response_cache import CachedResponse, ResponseCache
from finops_dagster_tests.support.api_mart import APRIL, Published
from finops_dagster_tests.support.live_api import LiveApi, live_api, settings_for
from finops_dagster_tests.support.oidc_issuer import Issuer

LISTING = "/api/v1/costs/applications?group=GRP-A&from=2025-01&to=2025-04"


def _pool_requests(api: LiveApi) -> float:
    """Connections the API took from its pool so far (its own metric): one per request that ran SQL."""
    text = api.get("/metrics").text
    return float(re.search(r"^finops_api_db_pool_requests_total (\S+)$", text, re.MULTILINE)[1])  # type: ignore[index]


@pytest.fixture
def cached(published: Published, issuer: Issuer, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveApi]:
    """The version re-read at most once a minute: within a test, only the cache answers repeats."""
    settings = settings_for(monkeypatch, published.url, issuer, FINOPS_API_VERSION_TTL_MS="60000")
    with live_api(settings, issuer.headers(expires_in=3600)) as running:
        yield running


def test_a_repeat_request_costs_no_sql(cached: LiveApi) -> None:
    first = cached.get(LISTING)
    assert first.status_code == 200
    before = _pool_requests(cached)
    for _ in range(20):
        again = cached.get(LISTING)
        assert again.status_code == 200 and again.content == first.content
        assert again.headers["etag"] == first.headers["etag"]
    conditional = cached.get(LISTING, headers={"If-None-Match": first.headers["etag"]})
    assert conditional.status_code == 304
    assert _pool_requests(cached) == before
    # another URL is another entry: it reads the views once
    assert cached.get(LISTING + "&page_size=2").status_code == 200
    assert _pool_requests(cached) == before + 1


def test_a_refused_token_is_not_served_from_the_cache(cached: LiveApi, issuer: Issuer) -> None:
    assert cached.get(LISTING).status_code == 200
    assert cached.get(LISTING, headers={"Authorization": "Bearer forged"}).status_code == 401
    assert cached.get(LISTING, headers=issuer.headers(roles=["other"])).status_code == 403
    assert cached.get(LISTING, headers={"Authorization": ""}).status_code == 401


def test_a_publish_invalidates_the_kept_answers(
    published: Published, issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(monkeypatch, published.url, issuer, FINOPS_API_VERSION_TTL_MS="0")
    with live_api(settings, issuer.headers(expires_in=3600)) as api:
        before = api.get("/api/v1/freshness").json()
        assert api.get("/api/v1/freshness").json() == before  # kept
        run_id = published.publish(APRIL, APRIL)
        after = api.get("/api/v1/freshness").json()
        assert after["last_run_id"] == run_id != before["last_run_id"]


def _entry(token: str, size: int) -> CachedResponse:
    return CachedResponse(token, b"x" * size, (), 'W/"e"', None, None)


def test_the_cache_is_bounded_and_holds_one_publish() -> None:
    cache = ResponseCache(max_bytes=16_000)
    for index in range(100):
        cache.put("/p", str(index).encode(), _entry("v1", 900))
    assert len(cache) == 17  # 17 × 900 bytes fit in 16,000; the oldest went first
    assert cache.get("/p", b"0", "v1") is None and cache.get("/p", b"99", "v1") is not None
    assert cache.get("/p", b"99", "v2") is None  # another publish: not served
    cache.put("/p", b"new", _entry("v2", 10))
    assert len(cache) == 1  # a new publish drops the previous one's answers
    cache.put("/p", b"huge", _entry("v2", 5_000))  # over a sixteenth of the bound: not kept
    assert cache.get("/p", b"huge", "v2") is None
    assert not ResponseCache(0).enabled

