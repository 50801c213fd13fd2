"""Optional OpenTelemetry traces: a span per run with a child per step, and a span per API request,
exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set.

This module is imported only when that setting is set (`observe.run_end.tracing_enabled`, checked by
the run's end and by the API's app), so a deployment without a collector neither needs the `otel`
extra nor pays for its import. The exporter reads the standard OTEL_* settings
(endpoint, headers, timeout); the service is `finops-dagster` unless OTEL_SERVICE_NAME says otherwise.

A run's spans are written when the run ends, from the times the run ledger recorded and the Dagster
instance's step events, so one function covers every way a run is started, and a run's trace says
what the instance recorded rather than what a step believed.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Iterable
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from finops_dagster import __version__

DEFAULT_SERVICE = "finops-dagster"
FLUSH_TIMEOUT_MS = 10_000

_provider: TracerProvider | None = None
_lock = threading.Lock()


def provider() -> TracerProvider:
    """The process's tracer provider, built once (its own, not the global one other code may set)."""
    global _provider
    with _lock:
        if _provider is None:
            resource = Resource.create({
                "service.name": os.environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE,
                "service.version": __version__,
            })
            _provider = TracerProvider(resource=resource)
            _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        return _provider


def _nanoseconds(moment: dt.datetime | float) -> int:
    seconds = moment.timestamp() if isinstance(moment, dt.datetime) else moment
    return int(seconds * 1_000_000_000)


def export_run(
    job: str, run_id: str, status: str, started: dt.datetime, ended: dt.datetime,
    steps: Iterable[tuple[str, float, float, bool]],
) -> None:
    """The run's span and one child per (step, start, end, failed), then a flush: the process of a
    headless run ends right after."""
    tracer = provider().get_tracer("finops_dagster.run")
    run = tracer.start_span(
        f"run {job}", start_time=_nanoseconds(started),
        attributes={"finops.run_id": run_id, "finops.job": job, "finops.status": status},
    )
    parent = trace.set_span_in_context(run)
    for step, start, end, failed in steps:
        span = tracer.start_span(f"step {step}", context=parent, start_time=_nanoseconds(start),
                                 attributes={"finops.step": step, "finops.run_id": run_id})
        if failed:
            span.set_status(Status(StatusCode.ERROR, "step failed"))
        span.end(end_time=_nanoseconds(end))
    if status != "SUCCESS":
        run.set_status(Status(StatusCode.ERROR, status))
    run.end(end_time=_nanoseconds(ended))
    provider().force_flush(FLUSH_TIMEOUT_MS)


class TracingMiddleware:
    """A server span per HTTP request, named by method and route template, continuing the caller's
    trace (W3C traceparent). Only the route, the method and the status are recorded: no header, no
    query string."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.tracer = provider().get_tracer("finops_dagster.api")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carrier = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope.get("headers", [])
                   if key.lower() in (b"traceparent", b"tracestate")}
        method = str(scope.get("method", "GET"))
        status = 500

        async def send_and_see(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        with self.tracer.start_as_current_span(
            method, context=propagate.extract(carrier), kind=SpanKind.SERVER
        ) as span:
            try:
                await self.app(scope, receive, send_and_see)
            finally:
                _describe(span, scope, method, status)


def _describe(span: Any, scope: Scope, method: str, status: int) -> None:
    path = getattr(scope.get("route"), "path", None)
    route = path if isinstance(path, str) else "unmatched"
    span.update_name(f"{method} {route}")
    span.set_attributes({"http.request.method": method, "http.route": route,
                         "http.response.status_code": status})
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))
