"""HEAD is answered on every route as GET would be, without the body."""

from __future__ import annotations

from finops_dagster_tests.support.live_api import LiveApi


def test_head_is_get_without_the_body(api: LiveApi) -> None:
    for path in ("/api/v1/costs/domains", "/api/v1/backstage/groups", "/healthz", "/openapi.json"):
        get = api.get(path)
        head = api.client.head(path)
        assert head.status_code == 200, path
        assert head.content == b""
        assert head.headers["content-length"] == get.headers["content-length"]
        assert head.headers.get("etag") == get.headers.get("etag")


def test_head_is_authenticated_like_get(api: LiveApi) -> None:
    refused = api.client.head("/api/v1/costs/domains", headers={"Authorization": "Bearer nope"})
    assert refused.status_code == 401 and refused.content == b""
