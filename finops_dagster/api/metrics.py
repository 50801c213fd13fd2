"""The API's Prometheus metrics, served on /metrics (or on a port of their own, or not at all).

Requests are counted by route template (`/api/v1/applications/{application_id}/breakdown`), never by
raw path, so an application id cannot grow the series without bound; refusals of tokens are counted
by a fixed reason word, never anything of the token. The registry is the app's own (not the
process's global one), so two apps in one process, as in the tests, do not share counters.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Around the 500 ms p99 the alert watches, with room on both sides."""
UNMATCHED = "unmatched"
"""The route label of a request no route matched (a 404 on an unknown path)."""
NOT_COUNTED = frozenset({"/metrics"})
"""Prometheus' own scrapes would otherwise outnumber the traffic of a quiet API."""

POOL_GAUGES = {
    "pool_size": ("finops_api_db_pool_connections", "Connections the API's pool holds."),
    "pool_available": ("finops_api_db_pool_connections_idle", "Connections idle in the pool."),
    "pool_max": ("finops_api_db_pool_connections_max", "The pool's maximum size (FINOPS_API_POOL_MAX)."),
    "requests_waiting": ("finops_api_db_pool_requests_waiting", "Requests waiting for a connection now."),
}
POOL_COUNTERS = {
    "requests_num": ("finops_api_db_pool_requests", "Connections requested from the pool."),
    "requests_queued": ("finops_api_db_pool_requests_queued", "Requests that had to wait for a connection."),
    "requests_errors": ("finops_api_db_pool_request_errors", "Requests for a connection that failed."),
    "connections_errors": ("finops_api_db_pool_connection_errors", "Failed attempts to open a connection."),
}
POOL_WAIT = ("finops_api_db_pool_wait_seconds", "Time requests spent waiting for a connection.")


class PoolCollector(Collector):
    """The psycopg pool's own statistics, read at scrape time."""

    def __init__(self, stats: Callable[[], dict[str, int]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        for key, (name, help_text) in POOL_GAUGES.items():
            yield GaugeMetricFamily(name, help_text, value=stats.get(key, 0))
        for key, (name, help_text) in POOL_COUNTERS.items():
            yield CounterMetricFamily(name, help_text, value=stats.get(key, 0))
        yield CounterMetricFamily(*POOL_WAIT, value=stats.get("requests_wait_ms", 0) / 1000)


class ApiMetrics:
    """Every metric of the API, in one registry of its own."""

    def __init__(self, pool_stats: Callable[[], dict[str, int]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "finops_api_requests", "HTTP requests answered, by method, route template and status.",
            ("method", "route", "status"), registry=self.registry,
        )
        self.latency = Histogram(
            "finops_api_request_duration_seconds", "Time to answer a request, by method and route template.",
            ("method", "route"), buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.in_flight = Gauge(
            "finops_api_requests_in_flight", "Requests being answered now.", registry=self.registry
        )
        self.jwks_refreshes = Counter(
            "finops_api_jwks_refreshes", "Fetches of the issuer's signing keys, by outcome.",
            ("outcome",), registry=self.registry,
        )
        self.token_refusals = Counter(
            "finops_api_token_refusals", "Requests refused for their bearer token, by reason (401 and 403).",
            ("reason",), registry=self.registry,
        )
        self.registry.register(PoolCollector(pool_stats))

    def jwks_refreshed(self, succeeded: bool) -> None:
        self.jwks_refreshes.labels("success" if succeeded else "failure").inc()

    def token_refused(self, reason: str) -> None:
        self.token_refusals.labels(reason).inc()


class MetricsMiddleware:
    """Counts and times every HTTP request by the template of the route that answered it."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in NOT_COUNTED:
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_and_see(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_and_see)
        finally:
            self.metrics.in_flight.dec()
            route = _route_template(scope)
            method = str(scope.get("method", "GET"))
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - started)
            self.metrics.requests.labels(method, route, str(status)).inc()


def _route_template(scope: Scope) -> str:
    """The path template of the route the router matched (it leaves the route in the scope)."""
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED
