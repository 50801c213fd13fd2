"""Rendered responses kept in memory per URL and publish, answered without FastAPI or SQL.

The views change once a night, at a publish; between two publishes the same URL always gets the same
body. So each 200 body is kept, keyed by its path and query string, for the publish it was read
from (`Version.token`), in an LRU bounded in bytes (FINOPS_API_RESPONSE_CACHE_MB, 0 turns it off).

`ResponseCacheMiddleware` answers a repeat request before routing: when the publish version is
fresh (re-read at most every FINOPS_API_VERSION_TTL_MS, by the next request that reaches a route) and
the caller's token verifies (from the verifier's memory of tokens, without a signature check), the
kept body goes out with its ETag, or a 304. Everything else (a miss, an invalid token, an error,
a stale version) goes down to the routes, which read the views and fill the cache. A response is
therefore at most FINOPS_API_VERSION_TTL_MS older than the last publish, as the validators already
were. Every caller with the reader role sees the same data, so one entry serves all of them.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from finops_dagster.api.auth import Forbidden, IssuerUnavailable, Unauthorized
from finops_dagster.api.conditional import not_modified
from finops_dagster.releve import utc_now

CACHED_PREFIX = "/api/v1/"


def cache_token(publish_token: str) -> str:
    """The publish, and the current UTC month: a few answers (freshness, the last complete month)
    also depend on which month is running, and must not outlive it."""
    now = utc_now()
    return f"{publish_token}|{now.year:04d}-{now.month:02d}"


@dataclass(frozen=True)
class CachedResponse:
    token: str
    body: bytes
    headers: tuple[tuple[str, str], ...]
    etag: str
    last_modified: dt.datetime | None
    route: Any
    """The route that rendered it: the metrics label a cached answer by its template too."""


class ResponseCache:
    """An LRU of rendered bodies for one publish at a time, bounded by `max_bytes` of bodies."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._token: str | None = None
        self._entries: OrderedDict[tuple[str, bytes], CachedResponse] = OrderedDict()
        self._bytes = 0

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def get(self, path: str, query: bytes, token: str) -> CachedResponse | None:
        entry = self._entries.get((path, query))
        if entry is None or entry.token != token:
            return None
        self._entries.move_to_end((path, query))
        return entry

    def put(self, path: str, query: bytes, entry: CachedResponse) -> None:
        size = len(entry.body)
        if not self.enabled or size > self.max_bytes // 16:
            return  # a body that large would push out many others
        if entry.token != self._token:
            self._entries.clear()
            self._bytes, self._token = 0, entry.token
        previous = self._entries.pop((path, query), None)
        if previous is not None:
            self._bytes -= len(previous.body)
        self._entries[(path, query)] = entry
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= len(evicted.body)

    def __len__(self) -> int:
        return len(self._entries)


class ResponseCacheMiddleware:
    """Answers GET requests under /api/v1/ from the ResponseCache of the app's state."""

    def __init__(self, app: ASGIApp, state: Any) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"].startswith(CACHED_PREFIX):
            entry = await self._servable(scope)
            if entry is not None:
                scope["route"] = entry.route
                await _send(send, entry, Headers(scope=scope))
                return
        await self.app(scope, receive, send)

    async def _servable(self, scope: Scope) -> CachedResponse | None:
        cache: ResponseCache = self.state.responses
        version = self.state.versions.fresh() if cache.enabled else None
        if version is None:
            return None
        entry = cache.get(scope["path"], scope["query_string"], cache_token(version.token))
        if entry is None:
            return None
        if self.state.verifier is not None:
            try:
                await self.state.verifier.verify(Headers(scope=scope).get("authorization"))
            except (Unauthorized, Forbidden, IssuerUnavailable):
                return None  # the routes answer it, with the refusal's own body
        return entry


async def _send(send: Send, entry: CachedResponse, request_headers: Headers) -> None:
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in entry.headers]
    if not_modified(request_headers, entry.etag, entry.last_modified):
        await send({"type": "http.response.start", "status": 304, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return
    headers += [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(entry.body)).encode("ascii")),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": entry.body})
