"""What every route shares: the caller's identity, the publish version, conditional requests, JSON.

`respond` reads the version of the views (the last successful publish, cached for
FINOPS_API_VERSION_TTL_MS) first; a request whose
`If-None-Match` (or, without it, `If-Modified-Since`) matches gets a 304 without touching the views.
Otherwise the body kept for this URL and publish (response_cache.py) goes out, or the route's reader
runs and its body is kept; either way with `ETag`, `Last-Modified` and
`Cache-Control: private, no-cache` (a client may keep it, and revalidates each time).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import psycopg
from fastapi import Query, Request
from fastapi.responses import Response

from finops_dagster.api.auth import ANONYMOUS, Principal, TokenVerifier
from finops_dagster.api.conditional import http_date, not_modified
from finops_dagster.api.db import Mart, Version, read_version
from finops_dagster.api.dimensions import KnownValues
from finops_dagster.api.response_cache import CachedResponse, ResponseCache, cache_token
from finops_dagster.api.settings import ApiSettings

log = logging.getLogger(__name__)

ViewParam = Annotated[
    Literal["direct", "allocated"],
    Query(
        description="direct (default): what each application consumed; allocated: after the allocation "
        "rules (shared and unallocated costs given to the applications that use them)"
    ),
]
"""The `view` parameter of every route that reads cost aggregates (400 on anything else)."""

Reader = Callable[[psycopg.AsyncConnection[Any], Version], Awaitable[Any]]


@dataclass
class ApiState:
    settings: ApiSettings
    mart: Mart
    known: KnownValues
    verifier: TokenVerifier | None
    versions: VersionCache
    totals: PublishCache
    responses: ResponseCache


class PublishCache:
    """Values that only change when the views do (the total of a listing), kept until the next
    publish: paging through a listing, or a dashboard polling it, counts its rows once per publish."""

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._token: str | None = None
        self._values: dict[Any, int] = {}

    def get(self, version: Version, key: Any) -> int | None:
        return self._values.get(key) if self._token == version.token else None

    def put(self, version: Version, key: Any, value: int) -> None:
        if self._token != version.token or len(self._values) >= self._size:
            self._values, self._token = {}, version.token
        self._values[key] = value


class BadInput(ValueError):
    """A parameter the API cannot use (400); the message names it."""


def reject_unknown_parameters(request: Request) -> None:
    """A misspelt filter (`?domian=`) would otherwise be ignored and return every row."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    allowed = {param.alias for param in dependant.query_params}
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise BadInput(
            f"unknown query parameter(s) {', '.join(unknown)} "
            f"(this endpoint takes: {', '.join(sorted(allowed))})"
        )
    for name in request.query_params:
        if len(request.query_params.getlist(name)) > 1:
            raise BadInput(f"{name}: give it once")


def state_of(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


async def authenticate(request: Request) -> Principal:
    """The FastAPI dependency of every data route: a verified caller, or the demo's anonymous one."""
    state = state_of(request)
    if state.verifier is None:
        return ANONYMOUS
    return await state.verifier.verify(request.headers.get("authorization"))


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class VersionCache:
    """The last publish, re-read at most every `ttl_s` (0: on every request).

    The version changes once a night; reading it on every request would double the round trips of
    the cheapest requests. A response may therefore carry the previous publish's validators for up to
    `ttl_s` after a publish (no client ever gets a 304 for data older than that)."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._version: Version | None = None
        self._read_at = float("-inf")

    def fresh(self) -> Version | None:
        if self._version is not None and time.monotonic() - self._read_at < self.ttl_s:
            return self._version
        return None

    async def read(self, conn: psycopg.AsyncConnection[Any]) -> Version:
        started = time.monotonic()
        self._version = await read_version(conn)
        self._read_at = started
        return self._version


async def respond(request: Request, read: Reader) -> Response:
    state = state_of(request)
    path, query = request.scope["path"], request.scope["query_string"]
    async with AsyncExitStack() as stack:
        conn: psycopg.AsyncConnection[Any] | None = None
        version = state.versions.fresh()
        if version is None:
            conn = await stack.enter_async_context(state.mart.connection())
            version = await state.versions.read(conn)
        etag = version.etag(path, request.url.query)
        headers = {"ETag": etag, "Cache-Control": "private, no-cache", "Vary": "Authorization"}
        if version.published_at is not None:
            headers["Last-Modified"] = http_date(version.published_at)
        if not_modified(request.headers, etag, version.published_at):
            return Response(status_code=304, headers=headers)
        token = cache_token(version.token)
        cached = state.responses.get(path, query, token)
        if cached is not None:
            return Response(content=cached.body, media_type="application/json", headers=headers)
        if conn is None:
            conn = await stack.enter_async_context(state.mart.connection())
        body = await read(conn, version)
    content = json.dumps(body, default=_default, ensure_ascii=False, separators=(",", ":")).encode()
    state.responses.put(
        path,
        query,
        CachedResponse(token, content, tuple(headers.items()), etag, version.published_at,
                       request.scope.get("route")),
    )
    return Response(content=content, media_type="application/json", headers=headers)
