"""The FastAPI application: routes, error bodies, the pool's life, and the authentication warning.

Errors all have one shape (`Problem`): 400 for a parameter the API cannot use (the message names it),
401/403 for authentication, 404 for an unknown application/group/family in a path, 503 while the views
are not populated or the identity provider's keys cannot be fetched. An unexpected error is a 500
whose body says only that: details go to the log, where no token or password is ever written.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest, start_http_server

from finops_dagster import __version__
from finops_dagster.api import access_log, backstage, months, rejects, routes
from finops_dagster.api.auth import Forbidden, IssuerUnavailable, TokenVerifier, Unauthorized
from finops_dagster.api.db import Mart, ViewsNotPopulated
from finops_dagster.api.dimensions import KnownValues, UnknownValue
from finops_dagster.api.head import HeadAsGetMiddleware
from finops_dagster.api.metrics import ApiMetrics, MetricsMiddleware
from finops_dagster.api.models import Problem
from finops_dagster.api.periods import BadPeriod
from finops_dagster.api.response_cache import ResponseCache, ResponseCacheMiddleware
from finops_dagster.api.security_headers import SECURITY_HEADERS, SecurityHeadersMiddleware
from finops_dagster.api.serving import ApiState, BadInput, PublishCache, VersionCache
from finops_dagster.api.settings import ApiSettings
from finops_dagster.observe.run_end import tracing_enabled

log = logging.getLogger("finops_dagster.api")

AUTH_DISABLED_WARNING = (
    "AUTHENTICATION IS DISABLED (FINOPS_API_AUTH=none): anyone who can reach this API reads every cost. "
    "For a demo only; set FINOPS_API_AUTH=oidc and the FINOPS_API_OIDC_* settings in any other deployment."
)

DESCRIPTION = """
Read-only FinOps costs from the data mart's materialized views: per application, application group,
technology domain, product family and product, by month or quarter; history; rankings; anomalies;
an application's breakdown; the freshness of each month; a month's rejects by reason code; and the
shapes Backstage Cost Insights reads.

* Amounts are exact decimal strings with their `currency` (the Backstage routes add floats for charts).
* Periods are months `YYYY-MM`; `from` and `to` are inclusive.
* Every response carries `ETag` and `Last-Modified` tied to the last successful publish; send them back
  (`If-None-Match`, `If-Modified-Since`) to get `304 Not Modified` until the next publish.
* Authentication: `Authorization: Bearer <OIDC access token>` carrying the configured role.
"""


def _problem(status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        Problem(status=status, error=error, detail=detail).model_dump(), status_code=status, headers=headers
    )


def _validation_detail(error: RequestValidationError) -> str:
    parts = []
    for item in error.errors():
        location = [str(part) for part in item.get("loc", ()) if part not in ("query", "path", "header")]
        name = ".".join(location) or "request"
        message = str(item.get("msg", "invalid"))
        if item.get("type") == "missing":
            message = "required"
        parts.append(f"{name}: {message}")
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> Response:
        return _problem(400, "bad_request", _validation_detail(error))

    @app.exception_handler(BadInput)
    @app.exception_handler(BadPeriod)
    async def bad_input(_: Request, error: Exception) -> Response:
        return _problem(400, "bad_request", str(error))

    @app.exception_handler(UnknownValue)
    async def unknown(_: Request, error: Exception) -> Response:
        status = getattr(error, "status", 400)
        return _problem(status, "not_found" if status == 404 else "bad_request", str(error))

    @app.exception_handler(Unauthorized)
    async def unauthorized(request: Request, error: Exception) -> Response:
        _count_refusal(request, error)
        description = getattr(error, "description", "invalid token").replace('"', "'")
        challenge = f'Bearer error="invalid_token", error_description="{description}"'
        return _problem(401, "unauthorized", description, {"WWW-Authenticate": challenge})

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, error: Exception) -> Response:
        _count_refusal(request, error)
        return _problem(403, "forbidden", str(error))

    @app.exception_handler(IssuerUnavailable)
    async def issuer_unavailable(_: Request, error: Exception) -> Response:
        return _problem(503, "unavailable", str(error), {"Retry-After": "30"})

    @app.exception_handler(ViewsNotPopulated)
    async def not_populated(_: Request, error: Exception) -> Response:
        return _problem(503, "unavailable", str(error), {"Retry-After": "300"})

    @app.exception_handler(psycopg.errors.QueryCanceled)
    async def too_slow(_: Request, error: Exception) -> Response:
        return _problem(
            503,
            "unavailable",
            "the query took longer than the API's statement timeout; narrow the period range or the filters",
        )

    @app.exception_handler(psycopg.OperationalError)
    async def mart_down(_: Request, error: Exception) -> Response:
        log.error("mart unavailable: %s", type(error).__name__)
        return _problem(503, "unavailable", "the data mart is unavailable", {"Retry-After": "10"})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        # answered by Starlette's outermost layer, outside SecurityHeadersMiddleware: its headers here
        headers = {name.decode(): value.decode() for name, value in SECURITY_HEADERS}
        return _problem(500, "internal_error", "unexpected error; see the API's log", headers)


def _count_refusal(request: Request, error: Exception) -> None:
    metrics: ApiMetrics | None = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.token_refused(getattr(error, "reason", "invalid"))


def _serve_metrics(app: FastAPI, settings: ApiSettings, metrics: ApiMetrics | None) -> None:
    """/metrics on the API's port (`on`), without authentication like /healthz: it says how the API
    is used, never what it serves. With `port:NNNN` it is served there only (see lifespan)."""
    app.state.metrics = metrics
    if metrics is None:
        return
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    if settings.metrics != "on":
        return

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


@contextmanager
def _metrics_port(settings: ApiSettings, metrics: ApiMetrics | None) -> Iterator[None]:
    """The metrics on a port of their own, for as long as the app runs."""
    if metrics is None or settings.metrics_port is None:
        yield
        return
    server, thread = start_http_server(settings.metrics_port, registry=metrics.registry)
    log.info("metrics on port %s (/metrics)", settings.metrics_port)
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _document_400_not_422(app: FastAPI, auth_disabled: bool) -> None:
    """Invalid parameters answer 400 with a Problem (install_error_handlers), not FastAPI's 422: the
    schema says so, and it names the bearer authentication (so an OpenAPI viewer can send one)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            components = schema.setdefault("components", {})
            for name in ("HTTPValidationError", "ValidationError"):
                components.get("schemas", {}).pop(name, None)
            if not auth_disabled:
                components["securitySchemes"] = {"oidcBearer": {
                    "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                    "description": "an access token of the configured OIDC issuer, for the API's audience, "
                                   "carrying the configured role",
                }}
                schema["security"] = [{"oidcBearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: ApiSettings) -> FastAPI:
    """The app for `settings`; the pool opens when the app starts (uvicorn, or a TestClient)."""
    mart = Mart(settings)
    metrics = None if settings.metrics == "off" else ApiMetrics(mart.pool.get_stats)
    state = ApiState(
        settings=settings,
        mart=mart,
        known=KnownValues(),
        verifier=None if settings.oidc is None else TokenVerifier(
            settings.oidc, metrics.jwks_refreshed if metrics else None
        ),
        versions=VersionCache(settings.version_ttl_ms / 1000),
        totals=PublishCache(),
        responses=ResponseCache(settings.response_cache_mb * 1024 * 1024),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if settings.auth_disabled:
            log.warning(AUTH_DISABLED_WARNING)
        access_log.install()
        await state.mart.open()
        # everything built so far (routes, models, the schema) lives as long as the process: keep it
        # out of the garbage collector's full passes, which would otherwise show up as latency spikes
        gc.collect()
        gc.freeze()
        try:
            with _metrics_port(settings, metrics):
                yield
        finally:
            await state.mart.close()

    app = FastAPI(
        title="FinOps costs API",
        version=__version__,
        description=DESCRIPTION
        + ("\n\n**Authentication is disabled on this instance (demo).**" if settings.auth_disabled else ""),
        lifespan=lifespan,
        responses={status: {"model": Problem} for status in (400, 401, 403, 404, 503)},
        # the schema is /openapi.json; no HTML page (Swagger UI and ReDoc would load scripts from a CDN)
        docs_url=None,
        redoc_url=None,
        # a redirect to the path with(out) its trailing slash would be built from the request's Host
        redirect_slashes=False,
    )
    app.state.api = state
    install_error_handlers(app)
    app.add_middleware(ResponseCacheMiddleware, state=state)
    app.add_middleware(HeadAsGetMiddleware)
    _serve_metrics(app, settings, metrics)
    if tracing_enabled():
        from finops_dagster.observe.tracing import TracingMiddleware

        app.add_middleware(TracingMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)  # the outermost: every answer, errors included
    app.include_router(routes.router)
    app.include_router(backstage.router)
    app.include_router(rejects.router)
    app.include_router(months.router)

    _document_400_not_422(app, settings.auth_disabled)

    @app.get("/healthz", include_in_schema=False)
    async def health() -> dict[str, Any]:
        """Liveness, without authentication: says nothing about the data."""
        return {"status": "ok", "authentication": "disabled" if settings.auth_disabled else "oidc"}

    return app
