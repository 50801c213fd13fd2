"""The HTTP source machinery over real sockets: pagination, auth, retries, breaker, settings, secrets.

Every test talks to a pytest-httpserver on localhost. Backoff waits go to a recorder and time to a
fake clock (sleeping advances it), so retries are checked without waiting for them.
"""

from __future__ import annotations

import dataclasses
import datetime
import email.utils
import json
import logging
import random
import socket
import ssl
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import certifi
import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from finops_dagster.http.auth import Auth, OidcClientCredentials, StaticToken, auth_from_env
from finops_dagster.http.client import HttpSource
from finops_dagster.http.errors import SourceError
from finops_dagster.http.pagination import by_link_header, by_next_url, by_page_number, by_token
from finops_dagster.http.settings import HttpSettings, http_settings
from finops_dagster.settings import SettingError
from finops_dagster_tests.support.fake_time import FakeTime

SOURCE = "Test API"
TOKEN_PATH = "/oidc/token"


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


def base_settings(base_url: str, **overrides: Any) -> HttpSettings:
    settings = HttpSettings(
        source=SOURCE,
        base_url=base_url.rstrip("/"),
        timeout_s=5.0,
        retries=3,
        retry_budget_s=300.0,
        ca_bundle=None,
        breaker_failures=5,
        breaker_reset_s=60.0,
    )
    return dataclasses.replace(settings, **overrides)


@pytest.fixture
def make_source(httpserver: HTTPServer, fake: FakeTime) -> Iterator[Callable[..., HttpSource]]:
    made: list[HttpSource] = []

    def make(auth: Auth | None = None, base_url: str | None = None, **overrides: Any) -> HttpSource:
        source = HttpSource(
            base_settings(base_url or httpserver.url_for("/"), **overrides),
            auth,
            sleep=fake.sleep,
            clock=fake.clock,
            rng=random.Random(20240501),
        )
        made.append(source)
        return source

    yield make
    for source in made:
        source.close()


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers, content_type="application/json")


def sequence(*answers: tuple[int, Any, dict[str, str]]) -> Callable[[Request], Response]:
    """A handler giving the answers in turn, then the last one for ever."""
    queue = list(answers)

    def handler(request: Request) -> Response:
        status, body, headers = queue.pop(0) if len(queue) > 1 else queue[0]
        return json_response(body, status, headers)

    return handler


def hits(server: HTTPServer, path: str, method: str = "GET") -> list[Request]:
    return [request for request, _ in server.log if request.path == path and request.method == method]


def oidc(server: HTTPServer, fake: FakeTime, secret: str = "client-secret") -> OidcClientCredentials:
    return OidcClientCredentials(
        server.url_for(TOKEN_PATH), "finops-client", secret, "usage.read", fake.clock
    )


def token_endpoint(*tokens: str, expires_in: int = 300) -> Callable[[Request], Response]:
    queue = list(tokens)

    def handler(request: Request) -> Response:
        return json_response({"access_token": queue.pop(0), "token_type": "Bearer", "expires_in": expires_in})

    return handler


def backoff_bounds(n: int) -> tuple[float, float]:
    """The n-th wait (from 0) lies within [0.5, 1] × 0.5 s · 2^n."""
    return 0.5 * 0.5 * 2**n, 0.5 * 2**n


# --- pagination ------------------------------------------------------------------------------------


def test_link_header_pagination_yields_every_item_once(httpserver: HTTPServer, make_source: Callable) -> None:
    pages = 7
    url = httpserver.url_for("/projects")

    def handler(request: Request) -> Response:
        page = int(request.args.get("page", "1"))
        links = [f'<{url}?page=1&per_page=3>; rel="first"', f'<{url}?page={pages}&per_page=3>; rel="last"']
        if page < pages:
            links.insert(1, f'<{url}?page={page + 1}&per_page=3>; rel="next"')
        return json_response([page * 100 + i for i in range(3)], headers={"Link": ", ".join(links)})

    httpserver.expect_request("/projects").respond_with_handler(handler)

    items = list(by_link_header(make_source(), "/projects", {"per_page": 3}, lambda body: body))

    assert items == [page * 100 + i for page in range(1, pages + 1) for i in range(3)]
    requests = hits(httpserver, "/projects")
    assert [r.args.get("page") for r in requests] == [None, *map(str, range(2, pages + 1))]
    assert all(r.args["per_page"] == "3" for r in requests)


def test_next_url_pagination_absolute_and_relative_links(
    httpserver: HTTPServer, make_source: Callable
) -> None:
    pages = 6

    def handler(request: Request) -> Response:
        page = int(request.args.get("page", "0"))
        following = None
        if page < pages - 1:
            # Azure gives absolute nextLinks; some APIs give a path: both must be followed.
            relative = f"/usage?page={page + 1}&start=2024-05-01"
            following = relative if page % 2 else httpserver.url_for("/usage") + relative[len("/usage") :]
        return json_response({"value": [f"p{page}-{i}" for i in range(4)], "nextLink": following})

    httpserver.expect_request("/usage").respond_with_handler(handler)

    items = list(
        by_next_url(
            make_source(),
            "/usage",
            {"start": "2024-05-01"},
            lambda body: body["value"],
            lambda response: response.body.get("nextLink"),
        )
    )

    assert items == [f"p{page}-{i}" for page in range(pages) for i in range(4)]
    assert len(set(items)) == len(items)
    requests = hits(httpserver, "/usage")
    assert len(requests) == pages
    assert all(r.args["start"] == "2024-05-01" for r in requests)


def test_token_pagination_goes_through_empty_pages(httpserver: HTTPServer, make_source: Callable) -> None:
    book: dict[str | None, tuple[list[int], str | None]] = {
        None: ([1, 2], "t-a"),
        "t-a": ([], "t-b"),
        "t-b": ([], "t-c"),
        "t-c": ([3], "t-d"),
        "t-d": ([], "t-e"),
        "t-e": ([4, 5, 6], "t-f"),
        "t-f": ([7], None),
    }

    def handler(request: Request) -> Response:
        items, marker = book[request.args.get("marker")]
        return json_response({"items": items, "next_marker": marker})

    httpserver.expect_request("/servers").respond_with_handler(handler)

    items = list(
        by_token(
            make_source(),
            "/servers",
            {"limit": 3},
            "marker",
            lambda body: body["items"],
            lambda body: body["next_marker"],
        )
    )

    assert items == [1, 2, 3, 4, 5, 6, 7]
    requests = hits(httpserver, "/servers")
    assert [r.args.get("marker") for r in requests] == [None, "t-a", "t-b", "t-c", "t-d", "t-e", "t-f"]
    assert all(r.args["limit"] == "3" for r in requests)


def test_page_number_pagination_stops_at_the_empty_page(
    httpserver: HTTPServer, make_source: Callable
) -> None:
    def handler(request: Request) -> Response:
        page = int(request.args["page"])
        return json_response({"data": [f"{page}.{i}" for i in range(5)] if page <= 9 else []})

    httpserver.expect_request("/invoices").respond_with_handler(handler)

    items = list(by_page_number(make_source(), "/invoices", {"size": 5}, "page", lambda body: body["data"]))

    assert items == [f"{page}.{i}" for page in range(1, 10) for i in range(5)]
    assert [r.args["page"] for r in hits(httpserver, "/invoices")] == [str(p) for p in range(1, 11)]


def test_repeated_token_is_a_pagination_loop(httpserver: HTTPServer, make_source: Callable) -> None:
    following = {None: "a", "a": "b", "b": "a"}
    httpserver.expect_request("/loop").respond_with_handler(
        lambda request: json_response({"items": [1], "next": following[request.args.get("token")]})
    )

    with pytest.raises(SourceError, match="pagination loops") as caught:
        list(by_token(make_source(), "/loop", {}, "token", lambda b: b["items"], lambda b: b["next"]))

    assert str(caught.value) == f"{SOURCE}: pagination loops: page cursor 'a' was already visited"
    assert len(hits(httpserver, "/loop")) == 3


def test_next_link_pointing_back_is_a_pagination_loop(httpserver: HTTPServer, make_source: Callable) -> None:
    url = httpserver.url_for("/pages")

    def handler(request: Request) -> Response:
        other = 1 if request.args.get("page") == "2" else 2
        return json_response(
            ["x"], headers={"Link": f'<{url}?page={other}&api_key=QUERY-SENTINEL>; rel="next"'}
        )

    httpserver.expect_request("/pages").respond_with_handler(handler)

    with pytest.raises(SourceError, match="pagination loops") as caught:
        list(by_link_header(make_source(), "/pages", {"api_key": "QUERY-SENTINEL"}, lambda body: body))

    assert len(hits(httpserver, "/pages")) == 3
    assert "/pages?…" in str(caught.value)
    assert "QUERY-SENTINEL" not in str(caught.value)


def test_never_ending_pagination_is_cut_at_max_pages(httpserver: HTTPServer, make_source: Callable) -> None:
    httpserver.expect_request("/endless").respond_with_handler(
        lambda request: json_response([request.args["page"]])
    )

    with pytest.raises(SourceError) as caught:
        list(by_page_number(make_source(), "/endless", {}, "page", lambda body: body, max_pages=5))

    assert str(caught.value) == f"{SOURCE}: pagination never ends: more than 5 pages"
    assert caught.value.source == SOURCE
    assert len(hits(httpserver, "/endless")) == 5


# --- authentication --------------------------------------------------------------------------------


def test_401_fetches_a_new_token_once(httpserver: HTTPServer, make_source: Callable, fake: FakeTime) -> None:
    httpserver.expect_request(TOKEN_PATH, method="POST").respond_with_handler(token_endpoint("tok1", "tok2"))

    def api(request: Request) -> Response:
        if request.headers.get("Authorization") == "Bearer tok2":
            return json_response({"usage": [42]})
        return json_response({"error": "token revoked"}, 401)

    httpserver.expect_request("/usage").respond_with_handler(api)

    response = make_source(oidc(httpserver, fake)).get("/usage")

    assert response.body == {"usage": [42]}
    token_requests = hits(httpserver, TOKEN_PATH, "POST")
    assert len(token_requests) == 2
    assert token_requests[0].form.to_dict() == {
        "grant_type": "client_credentials",
        "client_id": "finops-client",
        "client_secret": "client-secret",
        "scope": "usage.read",
    }
    assert [r.headers["Authorization"] for r in hits(httpserver, "/usage")] == ["Bearer tok1", "Bearer tok2"]
    assert fake.sleeps == []


def test_second_401_after_refresh_is_refused(
    httpserver: HTTPServer, make_source: Callable, fake: FakeTime
) -> None:
    httpserver.expect_request(TOKEN_PATH, method="POST").respond_with_handler(token_endpoint("tok1", "tok2"))
    httpserver.expect_request("/usage").respond_with_json({"error": "nope"}, status=401)

    with pytest.raises(SourceError, match="authentication refused") as caught:
        make_source(oidc(httpserver, fake)).get("/usage")

    assert caught.value.status == 401
    assert "(GET /usage, HTTP 401, after 1 attempt)" in str(caught.value)
    assert len(hits(httpserver, TOKEN_PATH, "POST")) == 2
    assert len(hits(httpserver, "/usage")) == 2
    assert fake.sleeps == []


def test_static_token_401_is_refused_without_retry(httpserver: HTTPServer, make_source: Callable) -> None:
    httpserver.expect_request("/usage").respond_with_json({"error": "nope"}, status=401)

    with pytest.raises(SourceError, match="authentication refused"):
        make_source(StaticToken("abc", header="PRIVATE-TOKEN")).get("/usage")

    assert [r.headers["PRIVATE-TOKEN"] for r in hits(httpserver, "/usage")] == ["abc"]


def test_token_is_cached_until_shortly_before_expiry(
    httpserver: HTTPServer, make_source: Callable, fake: FakeTime
) -> None:
    httpserver.expect_request(TOKEN_PATH, method="POST").respond_with_handler(token_endpoint("tok1", "tok2"))
    httpserver.expect_request("/usage").respond_with_handler(
        lambda request: json_response({"seen": request.headers["Authorization"]})
    )
    source = make_source(oidc(httpserver, fake))

    assert source.get("/usage").body == {"seen": "Bearer tok1"}
    assert source.get("/usage").body == {"seen": "Bearer tok1"}
    fake.now += 269  # expires_in 300 minus the 30 s margin = 270 s of use
    assert source.get("/usage").body == {"seen": "Bearer tok1"}
    assert len(hits(httpserver, TOKEN_PATH, "POST")) == 1
    fake.now += 2
    assert source.get("/usage").body == {"seen": "Bearer tok2"}
    assert len(hits(httpserver, TOKEN_PATH, "POST")) == 2


def test_403_fails_at_once_naming_source_and_path(
    httpserver: HTTPServer, make_source: Callable, fake: FakeTime
) -> None:
    httpserver.expect_request("/reports/secure").respond_with_json({"error": "forbidden"}, status=403)

    with pytest.raises(SourceError) as caught:
        make_source().get("/reports/secure", {"month": "2024-05"})

    message = str(caught.value)
    assert message.startswith(f"{SOURCE}: access forbidden")
    assert "/reports/secure" in message
    assert "HTTP 403" in message
    assert "month" not in message
    assert (caught.value.status, caught.value.attempts) == (403, 1)
    assert len(hits(httpserver, "/reports/secure")) == 1
    assert fake.sleeps == []


# --- rate limits and retries -----------------------------------------------------------------------


def test_429_retry_after_seconds(httpserver: HTTPServer, make_source: Callable, fake: FakeTime) -> None:
    httpserver.expect_request("/costs").respond_with_handler(
        sequence((429, {"error": "slow down"}, {"Retry-After": "7"}), (200, {"rows": [1, 2]}, {}))
    )

    assert make_source().get("/costs").body == {"rows": [1, 2]}
    assert fake.sleeps == [7.0]
    assert len(hits(httpserver, "/costs")) == 2


def test_429_retry_after_http_date(httpserver: HTTPServer, make_source: Callable, fake: FakeTime) -> None:
    when = email.utils.formatdate(time.time() + 20, usegmt=True)
    httpserver.expect_request("/costs").respond_with_handler(
        sequence((429, {}, {"Retry-After": when}), (200, {"rows": []}, {}))
    )

    assert make_source().get("/costs").body == {"rows": []}
    assert len(fake.sleeps) == 1
    assert 17.5 <= fake.sleeps[0] <= 20.0


def test_429_azure_cost_management_retry_header(
    httpserver: HTTPServer, make_source: Callable, fake: FakeTime
) -> None:
    header = "x-ms-ratelimit-microsoft.costmanagement-entity-retry-after"
    httpserver.expect_request("/query").respond_with_handler(
        sequence((429, {}, {header: "12"}), (200, {"properties": {"rows": []}}, {}))
    )

    assert make_source().get("/query").body == {"properties": {"rows": []}}
    assert fake.sleeps == [12.0]


def test_5xx_then_success(httpserver: HTTPServer, make_source: Callable, fake: FakeTime) -> None:
    httpserver.expect_request("/flaky").respond_with_handler(
        sequence((502, {}, {}), (503, {}, {}), (200, {"ok": True}, {}))
    )

    assert make_source().get("/flaky").body == {"ok": True}
    assert len(hits(httpserver, "/flaky")) == 3
    assert len(fake.sleeps) == 2
    for n, slept in enumerate(fake.sleeps):
        low, high = backoff_bounds(n)
        assert low <= slept <= high


def test_persistent_5xx_gives_up_with_growing_backoff(
    httpserver: HTTPServer, make_source: Callable, fake: FakeTime
) -> None:
    httpserver.expect_request("/flaky").respond_with_json({"error": "down"}, status=503)

    with pytest.raises(SourceError) as caught:
        make_source(retries=4).get("/flaky", {"month": "2024-05"})

    assert str(caught.value) == f"{SOURCE}: gave up: server error (GET /flaky, HTTP 503, after 5 attempts)"
    assert (caught.value.source, caught.value.path, caught.value.status, caught.value.attempts) == (
        SOURCE,
        "/flaky",
        503,
        5,
    )
    assert len(hits(httpserver, "/flaky")) == 5
    assert len(fake.sleeps) == 4
    for n, slept in enumerate(fake.sleeps):
        low, high = backoff_bounds(n)
        assert low <= slept <= high, (n, slept)
    assert fake.sleeps == sorted(fake.sleeps)
    assert fake.sleeps[-1] > 2 * fake.sleeps[0]


def test_retry_after_beyond_the_budget_fails_at_once(
    httpserver: HTTPServer, make_source: Callable, fake: FakeTime
) -> None:
    httpserver.expect_request("/costs").respond_with_json({}, status=429, headers={"Retry-After": "60"})

    with pytest.raises(SourceError, match=r"retry budget of 10s exhausted: rate limited") as caught:
        make_source(retry_budget_s=10.0).get("/costs")

    assert (caught.value.status, caught.value.attempts) == (429, 1)
    assert len(hits(httpserver, "/costs")) == 1
    assert fake.sleeps == []


def test_retry_budget_is_spent_by_successive_waits(
    httpserver: HTTPServer, make_source: Callable, fake: FakeTime
) -> None:
    httpserver.expect_request("/costs").respond_with_json({}, status=429, headers={"Retry-After": "4"})

    with pytest.raises(SourceError, match=r"retry budget of 10s exhausted") as caught:
        make_source(retry_budget_s=10.0, retries=10).get("/costs")

    assert fake.sleeps == [4.0, 4.0]
    assert caught.value.attempts == 3
    assert len(hits(httpserver, "/costs")) == 3


def test_timeouts_are_retried_then_fail(
    httpserver: HTTPServer, make_source: Callable, fake: FakeTime
) -> None:
    release = threading.Event()

    def slow(request: Request) -> Response:
        release.wait(1.5)
        return json_response({"late": True})

    httpserver.expect_request("/slow").respond_with_handler(slow)
    started = time.monotonic()
    try:
        with pytest.raises(SourceError, match="timed out") as caught:
            make_source(timeout_s=0.3, retries=1).get("/slow")
        elapsed = time.monotonic() - started
    finally:
        release.set()
        deadline = time.monotonic() + 10
        while len(hits(httpserver, "/slow")) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)  # let the one-threaded server finish both stalled requests

    assert str(caught.value) == f"{SOURCE}: gave up: timed out after 0.3s (GET /slow, after 2 attempts)"
    assert caught.value.status is None
    assert len(fake.sleeps) == 1
    assert elapsed < 1.4  # neither attempt waited for the server's 1.5 s
    assert len(hits(httpserver, "/slow")) == 2


def test_connection_refused(make_source: Callable, fake: FakeTime) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(SourceError, match=r"connection failed \(ConnectError\)") as caught:
        make_source(base_url=f"http://127.0.0.1:{port}", retries=2).get("/usage")

    assert caught.value.attempts == 3
    assert caught.value.path == "/usage"
    assert len(fake.sleeps) == 2


# --- answers that are not usable -------------------------------------------------------------------


def test_malformed_json(httpserver: HTTPServer, make_source: Callable, fake: FakeTime) -> None:
    httpserver.expect_request("/usage").respond_with_data('{"rows": [1, 2', content_type="application/json")

    with pytest.raises(SourceError) as caught:
        make_source().get("/usage")

    assert str(caught.value) == f"{SOURCE}: malformed JSON answer (GET /usage, HTTP 200, after 1 attempt)"
    assert len(hits(httpserver, "/usage")) == 1
    assert fake.sleeps == []


def test_wrong_content_type(httpserver: HTTPServer, make_source: Callable) -> None:
    httpserver.expect_request("/usage").respond_with_data(
        "<html>Please log in</html>", content_type="text/html; charset=utf-8"
    )

    with pytest.raises(SourceError, match="expected a JSON answer, got 'text/html'"):
        make_source().get("/usage")

    assert len(hits(httpserver, "/usage")) == 1


def test_404_is_not_retried(httpserver: HTTPServer, make_source: Callable, fake: FakeTime) -> None:
    httpserver.expect_request("/gone").respond_with_json({"error": "not found"}, status=404)

    with pytest.raises(SourceError) as caught:
        make_source().get("/gone")

    assert str(caught.value) == f"{SOURCE}: request refused (GET /gone, HTTP 404, after 1 attempt)"
    assert len(hits(httpserver, "/gone")) == 1
    assert fake.sleeps == []


# --- circuit breaker -------------------------------------------------------------------------------


def test_circuit_opens_then_lets_one_trial_through(
    httpserver: HTTPServer, make_source: Callable, fake: FakeTime
) -> None:
    status = {"code": 500}
    httpserver.expect_request("/usage").respond_with_handler(
        lambda request: json_response({"ok": status["code"] == 200}, status["code"])
    )
    source = make_source(retries=0, breaker_failures=2, breaker_reset_s=60.0)

    for _ in range(2):
        with pytest.raises(SourceError, match="gave up: server error"):
            source.get("/usage")
    assert len(hits(httpserver, "/usage")) == 2

    with pytest.raises(SourceError) as caught:
        source.get("/usage")
    assert str(caught.value) == (
        f"{SOURCE}: circuit open after 2 failed calls; not calling again for 60s (GET /usage)"
    )
    fake.now += 59
    with pytest.raises(SourceError, match="circuit open"):
        source.get("/usage")
    assert len(hits(httpserver, "/usage")) == 2  # no request while open

    fake.now += 2
    status["code"] = 200
    assert source.get("/usage").body == {"ok": True}
    assert source.get("/usage").body == {"ok": True}
    assert len(hits(httpserver, "/usage")) == 4
    assert source.breaker.failures == 0


def test_failed_trial_reopens_the_circuit(
    httpserver: HTTPServer, make_source: Callable, fake: FakeTime
) -> None:
    httpserver.expect_request("/usage").respond_with_json({}, status=502)
    source = make_source(retries=0, breaker_failures=1, breaker_reset_s=30.0)

    with pytest.raises(SourceError, match="gave up"):
        source.get("/usage")
    with pytest.raises(SourceError, match="circuit open"):
        source.get("/usage")
    fake.now += 31
    with pytest.raises(SourceError, match="gave up"):
        source.get("/usage")  # the trial call
    with pytest.raises(SourceError, match="circuit open"):
        source.get("/usage")
    assert len(hits(httpserver, "/usage")) == 2


# --- settings --------------------------------------------------------------------------------------

ENV_NAMES = (
    "HTTP_TIMEOUT_MS",
    "HTTP_RETRIES",
    "FINOPS_CA_BUNDLE",
    "OIDC_TOKEN_URL",
    "OIDC_CLIENT_ID",
    "OIDC_CLIENT_SECRET",
    "OIDC_SCOPE",
)
SUFFIXES = ("URL", "TIMEOUT_MS", "RETRIES", "RETRY_BUDGET_S", "CA_BUNDLE", "BREAKER_FAILURES",
            "BREAKER_RESET_S", "AUTH", "TOKEN", "TOKEN_HEADER", "OIDC_TOKEN_URL", "OIDC_CLIENT_ID",
            "OIDC_CLIENT_SECRET", "OIDC_SCOPE")  # fmt: skip


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    for prefix in ("ZZSRC", "ZZOTHER"):
        for suffix in SUFFIXES:
            monkeypatch.delenv(f"{prefix}_{suffix}", raising=False)
    return monkeypatch


def test_settings_need_the_url(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingError, match=r"^ZZSRC_URL is not set: the base URL of the GitLab API"):
        http_settings("GitLab", "ZZSRC")
    clean_env.setenv("ZZSRC_URL", "ftp://example.org")
    with pytest.raises(SettingError, match=r"ZZSRC_URL must be an http\(s\) URL"):
        http_settings("Some API", "ZZSRC")


def test_settings_defaults(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ZZSRC_URL", "https://api.example.org/v1/")

    assert http_settings("Some API", "ZZSRC") == HttpSettings(
        source="Some API",
        base_url="https://api.example.org/v1",
        timeout_s=30.0,
        retries=3,
        retry_budget_s=300,
        ca_bundle=None,
        breaker_failures=5,
        breaker_reset_s=60,
    )


def test_settings_global_and_per_source_overrides(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ZZSRC_URL", "https://a.example.org")
    clean_env.setenv("ZZOTHER_URL", "https://b.example.org")
    clean_env.setenv("HTTP_TIMEOUT_MS", "1500")
    clean_env.setenv("HTTP_RETRIES", "6")
    clean_env.setenv("ZZSRC_TIMEOUT_MS", "250")
    clean_env.setenv("ZZSRC_RETRIES", "0")
    clean_env.setenv("ZZSRC_RETRY_BUDGET_S", "20")
    clean_env.setenv("ZZSRC_BREAKER_FAILURES", "2")
    clean_env.setenv("ZZSRC_BREAKER_RESET_S", "15")

    mine = http_settings("A", "ZZSRC")
    other = http_settings("B", "ZZOTHER")

    assert (mine.timeout_s, mine.retries, mine.retry_budget_s) == (0.25, 0, 20)
    assert (mine.breaker_failures, mine.breaker_reset_s) == (2, 15)
    assert (other.timeout_s, other.retries, other.retry_budget_s) == (1.5, 6, 300)


def test_settings_refuse_bad_numbers(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ZZSRC_URL", "https://a.example.org")
    clean_env.setenv("HTTP_RETRIES", "three")
    with pytest.raises(SettingError, match="HTTP_RETRIES must be a whole number"):
        http_settings("A", "ZZSRC")
    clean_env.delenv("HTTP_RETRIES")
    clean_env.setenv("ZZSRC_TIMEOUT_MS", "0")
    with pytest.raises(SettingError, match="ZZSRC_TIMEOUT_MS must be >= 1"):
        http_settings("A", "ZZSRC")


def test_settings_ca_bundle(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("ZZSRC_URL", "https://a.example.org")
    missing = tmp_path / "missing-ca.pem"
    clean_env.setenv("ZZSRC_CA_BUNDLE", str(missing))
    with pytest.raises(SettingError, match="ZZSRC_CA_BUNDLE / FINOPS_CA_BUNDLE: no such file") as caught:
        http_settings("A", "ZZSRC")
    assert str(missing) in str(caught.value)

    broken = tmp_path / "ca.pem"
    broken.write_text("-----BEGIN CERTIFICATE-----\n")
    clean_env.setenv("ZZSRC_CA_BUNDLE", str(broken))
    with pytest.raises(SettingError, match=r"ZZSRC_CA_BUNDLE / FINOPS_CA_BUNDLE: .* holds no usable PEM"):
        http_settings("A", "ZZSRC")

    clean_env.delenv("ZZSRC_CA_BUNDLE")
    clean_env.setenv("FINOPS_CA_BUNDLE", certifi.where())
    assert http_settings("A", "ZZSRC").ca_bundle == certifi.where()


def test_auth_from_env_none_and_token(clean_env: pytest.MonkeyPatch) -> None:
    with httpx.Client() as http:
        clean_env.setenv("ZZSRC_AUTH", "none")
        assert type(auth_from_env("ZZSRC")) is Auth
        assert auth_from_env("ZZSRC").headers(http) == {}

        clean_env.setenv("ZZSRC_AUTH", "token")
        with pytest.raises(SettingError, match=r"^ZZSRC_TOKEN is not set"):
            auth_from_env("ZZSRC")
        clean_env.setenv("ZZSRC_TOKEN", "abc")
        assert auth_from_env("ZZSRC").headers(http) == {"Authorization": "Bearer abc"}
        clean_env.setenv("ZZSRC_TOKEN_HEADER", "PRIVATE-TOKEN")
        assert auth_from_env("ZZSRC").headers(http) == {"PRIVATE-TOKEN": "abc"}

        clean_env.setenv("ZZSRC_AUTH", "kerberos")
        with pytest.raises(SettingError, match="ZZSRC_AUTH must be none, token or oidc, got 'kerberos'"):
            auth_from_env("ZZSRC")


def test_auth_from_env_oidc_names_the_missing_variable(clean_env: pytest.MonkeyPatch) -> None:
    # oidc is the default
    with pytest.raises(SettingError, match=r"^OIDC_TOKEN_URL \(or ZZSRC_OIDC_TOKEN_URL\) is not set"):
        auth_from_env("ZZSRC")
    clean_env.setenv("OIDC_TOKEN_URL", "https://sso.example.org/token")
    with pytest.raises(SettingError, match=r"^OIDC_CLIENT_ID \(or ZZSRC_OIDC_CLIENT_ID\) is not set"):
        auth_from_env("ZZSRC")
    clean_env.setenv("ZZSRC_OIDC_CLIENT_ID", "finops")
    with pytest.raises(SettingError, match=r"^OIDC_CLIENT_SECRET \(or ZZSRC_OIDC_CLIENT_SECRET\) is not set"):
        auth_from_env("ZZSRC")


def test_auth_from_env_oidc_per_source_override(
    clean_env: pytest.MonkeyPatch, httpserver: HTTPServer, make_source: Callable
) -> None:
    clean_env.setenv("ZZSRC_AUTH", "OIDC")
    clean_env.setenv("OIDC_TOKEN_URL", "https://sso.invalid/token")
    clean_env.setenv("ZZSRC_OIDC_TOKEN_URL", httpserver.url_for(TOKEN_PATH))
    clean_env.setenv("OIDC_CLIENT_ID", "global-client")
    clean_env.setenv("ZZSRC_OIDC_CLIENT_ID", "zz-client")
    clean_env.setenv("OIDC_CLIENT_SECRET", "global-secret")
    clean_env.setenv("OIDC_SCOPE", "read")
    httpserver.expect_request(TOKEN_PATH, method="POST").respond_with_handler(token_endpoint("tok1"))
    httpserver.expect_request("/usage").respond_with_handler(
        lambda request: json_response({"seen": request.headers["Authorization"]})
    )

    auth = auth_from_env("ZZSRC")

    assert isinstance(auth, OidcClientCredentials)
    assert make_source(auth).get("/usage").body == {"seen": "Bearer tok1"}
    assert hits(httpserver, TOKEN_PATH, "POST")[0].form.to_dict() == {
        "grant_type": "client_credentials",
        "client_id": "zz-client",
        "client_secret": "global-secret",
        "scope": "read",
    }


# --- TLS -------------------------------------------------------------------------------------------


def self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


def test_tls_is_verified_and_a_ca_bundle_is_honoured(tmp_path: Path, fake: FakeTime) -> None:
    cert_file, key_file = self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server = HTTPServer(host="localhost", port=0, ssl_context=context)
    server.expect_request("/usage").respond_with_json({"ok": True})
    server.start()
    try:
        untrusted = HttpSource(
            base_settings(server.url_for("/"), retries=0), sleep=fake.sleep, clock=fake.clock
        )
        with pytest.raises(SourceError, match=r"connection failed \(ConnectError\)"):
            untrusted.get("/usage")
        untrusted.close()

        trusted = HttpSource(
            base_settings(server.url_for("/"), ca_bundle=str(cert_file)), sleep=fake.sleep, clock=fake.clock
        )
        assert trusted.get("/usage").body == {"ok": True}
        trusted.close()
    finally:
        server.stop()


# --- secrets ---------------------------------------------------------------------------------------

CLIENT_SECRET = "S3CRET-CLIENT-SENTINEL"
STATIC_TOKEN = "T0KEN-SENTINEL"
ACCESS_TOKEN = "OIDC-ACCESS-SENTINEL"
QUERY_SECRET = "QUERY-SENTINEL"
SENTINELS = (CLIENT_SECRET, STATIC_TOKEN, ACCESS_TOKEN, QUERY_SECRET)


def test_no_secret_in_errors_or_logs(
    httpserver: HTTPServer, make_source: Callable, fake: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    def identity_provider(request: Request) -> Response:
        if request.form.get("client_id") == "revoked-client":
            return json_response({"error": "invalid_client"}, 401)
        return json_response({"access_token": ACCESS_TOKEN, "expires_in": 300})

    link = httpserver.url_for("/loop") + f"?api_key={QUERY_SECRET}"
    httpserver.expect_request(TOKEN_PATH, method="POST").respond_with_handler(identity_provider)
    httpserver.expect_request("/ok").respond_with_json({"rows": [1]})
    httpserver.expect_request("/loop").respond_with_json([1], headers={"Link": f'<{link}>; rel="next"'})
    for status in (401, 403, 500):
        httpserver.expect_request(f"/status/{status}").respond_with_json({"error": "x"}, status=status)
    params = {"api_key": QUERY_SECRET, "month": "2024-05"}
    auths: list[Auth] = [
        OidcClientCredentials(httpserver.url_for(TOKEN_PATH), "finops", CLIENT_SECRET, clock=fake.clock),
        StaticToken(STATIC_TOKEN),
        StaticToken(STATIC_TOKEN, header="PRIVATE-TOKEN"),
    ]
    errors: list[SourceError] = []

    for auth in auths:
        source = make_source(auth, retries=1)
        assert source.get("/ok", params).body == {"rows": [1]}
        for status in (401, 403, 500):
            with pytest.raises(SourceError, match=f"HTTP {status}") as caught:
                source.get(f"/status/{status}", params)
            errors.append(caught.value)
        with pytest.raises(SourceError, match="pagination loops") as caught:
            list(by_link_header(source, "/loop", params, lambda body: body))
        errors.append(caught.value)
    revoked = OidcClientCredentials(httpserver.url_for(TOKEN_PATH), "revoked-client", CLIENT_SECRET)
    with pytest.raises(SourceError, match="token request refused") as caught:
        make_source(revoked).get("/ok", params)
    errors.append(caught.value)

    # The secrets did go out on the wire...
    requests = [request for request, _ in httpserver.log]
    assert any(r.args.get("api_key") == QUERY_SECRET for r in requests)
    assert any(r.headers.get("Authorization") == f"Bearer {ACCESS_TOKEN}" for r in requests)
    assert any(r.headers.get("Authorization") == f"Bearer {STATIC_TOKEN}" for r in requests)
    assert any(r.headers.get("PRIVATE-TOKEN") == STATIC_TOKEN for r in requests)
    assert any(r.method == "POST" and r.form.get("client_secret") == CLIENT_SECRET for r in requests)
    # ...but never into an error, its repr, its traceback (chained causes included) or a log line.
    assert len(errors) == 13
    for error in errors:
        for text in (str(error), repr(error), "".join(traceback.format_exception(error))):
            leaked = [sentinel for sentinel in SENTINELS if sentinel in text]
            assert not leaked, (leaked, text)
    # Every log line but the fake API's own access log (werkzeug, the server side, not ours).
    logged = "\n".join(caplog.handler.format(r) for r in caplog.records if not r.name.startswith("werkzeug"))
    assert f"HTTP Request: GET {httpserver.url_for('/ok')} " in logged
    assert "receive_response_headers.complete" in logged
    assert "/status/500" in logged
    leaked = [sentinel for sentinel in SENTINELS if sentinel in logged]
    assert not leaked, logged


def test_a_next_link_to_another_host_is_refused_and_gets_no_credentials(httpserver: HTTPServer) -> None:
    stranger = HTTPServer()
    stranger.start()
    try:
        stranger.expect_request("/steal").respond_with_json({"items": ["x"], "next": None})
        httpserver.expect_request("/items").respond_with_json(
            {"items": ["a"], "next": stranger.url_for("/steal")})
        settings = HttpSettings("demo", httpserver.url_for("/").rstrip("/"), 2, 0, 30, None, 5, 60)
        source = HttpSource(settings, StaticToken("T0KEN-SENTINEL"))
        with pytest.raises(SourceError, match=r"refusing to call another host \(localhost\)"):
            list(by_next_url(source, "/items", {}, lambda body: body["items"], lambda r: r.body["next"]))
        assert stranger.log == []
    finally:
        stranger.stop()
