"""The read API's settings, read from the environment once at start.

Like the pipeline's, every invalid or missing setting raises `SettingError` naming the variable, so a
misconfigured API refuses to start rather than serving with, say, authentication silently off.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from finops_dagster.settings import SettingError, env_bool, env_int, env_str

AUTH_MODES = ("oidc", "none")
ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
CURRENCY = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True)
class OidcSettings:
    """Who may call the API: tokens of `issuer` for `audience`, carrying `required_role` in `role_claim`."""

    issuer: str
    audience: str
    jwks_url: str | None
    role_claim: str
    required_role: str
    algorithms: tuple[str, ...]
    leeway_s: int
    jwks_timeout_s: float
    jwks_min_refresh_s: int


@dataclass(frozen=True)
class ConnectionLimits:
    """What one HTTP connection may take (finops_dagster/api/connections.py enforces it)."""

    max_header_bytes: int = 16_384
    header_timeout_s: float = 10.0
    idle_timeout_s: int = 5
    max_connections: int = 1000


@dataclass(frozen=True)
class ApiSettings:
    postgres_url: str = field(repr=False)
    db_role: str | None
    oidc: OidcSettings | None
    max_page_size: int
    default_page_size: int
    pool_min: int
    pool_max: int
    statement_timeout_ms: int
    backstage_currency: str
    version_ttl_ms: int
    metrics: str = "on"
    """`on` (/metrics on the API's port), `off`, or `port` (on `metrics_port` only)."""
    metrics_port: int | None = None
    connections: ConnectionLimits = field(default_factory=ConnectionLimits)
    allow_privileged_login: bool = False
    response_cache_mb: int = 64
    """Memory for rendered responses, per process (0: no response cache)."""
    """Start even when the database login can do more than the reader role (said loudly)."""

    @property
    def auth_disabled(self) -> bool:
        return self.oidc is None


def _postgres_url() -> str:
    """FINOPS_API_POSTGRES_URL, else the pipeline's mart settings: POSTGRES_URL (or POSTGRES_HOST,
    POSTGRES_PORT, POSTGRES_DB), with POSTGRES_USER / POSTGRES_PASSWORD overriding the URL's."""
    for name in ("FINOPS_API_POSTGRES_URL", "POSTGRES_URL"):
        url = os.environ.get(name, "").strip()
        if url:
            break
    else:
        host = os.environ.get("POSTGRES_HOST", "").strip()
        if not host:
            raise SettingError(
                "FINOPS_API_POSTGRES_URL or POSTGRES_URL (or POSTGRES_HOST) must be set: the API reads the "
                "data mart's views. On the demo's data: finops-dagster api --demo"
            )
        name = "POSTGRES_HOST"
        url = make_conninfo(
            host=host, port=env_str("POSTGRES_PORT", "5432"), dbname=env_str("POSTGRES_DB", "finops")
        )
    overrides = {}
    if name != "FINOPS_API_POSTGRES_URL":
        for variable, key in (("POSTGRES_USER", "user"), ("POSTGRES_PASSWORD", "password")):
            if os.environ.get(variable):
                overrides[key] = os.environ[variable]
    try:
        conninfo_to_dict(url)
        return make_conninfo(url, **overrides) if overrides else url
    except psycopg.ProgrammingError:
        raise SettingError(
            f"{name} is not a valid libpq URL or key=value string (is a special character of the password "
            "percent-encoded?)"
        ) from None


def _oidc_settings() -> OidcSettings:
    issuer = env_str("FINOPS_API_OIDC_ISSUER", "")
    audience = env_str("FINOPS_API_OIDC_AUDIENCE", "")
    missing = [
        name
        for name, value in (("FINOPS_API_OIDC_ISSUER", issuer), ("FINOPS_API_OIDC_AUDIENCE", audience))
        if not value
    ]
    if missing:
        raise SettingError(
            f"{' and '.join(missing)} must be set: the API checks OIDC bearer tokens "
            "(or set FINOPS_API_AUTH=none, for a demo only)"
        )
    algorithms = tuple(
        part.strip()
        for part in env_str("FINOPS_API_OIDC_ALGORITHMS", "RS256,ES256").split(",")
        if part.strip()
    )
    if any(algorithm.upper().startswith("HS") or algorithm.lower() == "none" for algorithm in algorithms):
        raise SettingError("FINOPS_API_OIDC_ALGORITHMS: only asymmetric algorithms (RS*, PS*, ES*, EdDSA)")
    return OidcSettings(
        issuer=issuer,
        audience=audience,
        jwks_url=env_str("FINOPS_API_OIDC_JWKS_URL", "") or None,
        role_claim=env_str("FINOPS_API_OIDC_ROLE_CLAIM", "roles"),
        required_role=env_str("FINOPS_API_OIDC_REQUIRED_ROLE", "finops-reader"),
        algorithms=algorithms,
        leeway_s=env_int("FINOPS_API_OIDC_LEEWAY_S", 30),
        jwks_timeout_s=env_int("FINOPS_API_OIDC_JWKS_TIMEOUT_MS", 5000, minimum=1) / 1000,
        jwks_min_refresh_s=env_int("FINOPS_API_OIDC_JWKS_MIN_REFRESH_S", 30),
    )


def api_settings() -> ApiSettings:
    """The API's settings from the environment; fails naming the first wrong variable."""
    auth = env_str("FINOPS_API_AUTH", "oidc").lower()
    if auth not in AUTH_MODES:
        raise SettingError(f"FINOPS_API_AUTH must be one of {', '.join(AUTH_MODES)}, got {auth!r}")
    role = env_str("FINOPS_API_DB_ROLE", "finops_reader")
    if role.lower() == "none":
        db_role = None
    elif ROLE_NAME.match(role):
        db_role = role
    else:
        raise SettingError(f"FINOPS_API_DB_ROLE must be a plain role name (or none), got {role!r}")
    max_page = env_int("FINOPS_API_MAX_PAGE_SIZE", 1000, minimum=1)
    default_page = env_int("FINOPS_API_DEFAULT_PAGE_SIZE", 100, minimum=1)
    if default_page > max_page:
        raise SettingError("FINOPS_API_DEFAULT_PAGE_SIZE must be <= FINOPS_API_MAX_PAGE_SIZE")
    pool_min = env_int("FINOPS_API_POOL_MIN", 2, minimum=1)
    pool_max = env_int("FINOPS_API_POOL_MAX", 16, minimum=1)
    if pool_max < pool_min:
        raise SettingError("FINOPS_API_POOL_MAX must be >= FINOPS_API_POOL_MIN")
    currency = env_str("FINOPS_API_BACKSTAGE_CURRENCY", "EUR")
    if not CURRENCY.match(currency):
        raise SettingError(f"FINOPS_API_BACKSTAGE_CURRENCY must be an ISO 4217 code, got {currency!r}")
    return ApiSettings(
        postgres_url=_postgres_url(),
        db_role=db_role,
        oidc=None if auth == "none" else _oidc_settings(),
        max_page_size=max_page,
        default_page_size=default_page,
        pool_min=pool_min,
        pool_max=pool_max,
        statement_timeout_ms=env_int("FINOPS_API_STATEMENT_TIMEOUT_MS", 5000, minimum=1),
        backstage_currency=currency,
        version_ttl_ms=env_int("FINOPS_API_VERSION_TTL_MS", 1000),
        connections=_connection_limits(),
        allow_privileged_login=env_bool("FINOPS_API_ALLOW_PRIVILEGED_LOGIN", False),
        response_cache_mb=env_int("FINOPS_API_RESPONSE_CACHE_MB", 64),
        **_metrics_settings(),
    )


def _connection_limits() -> ConnectionLimits:
    from finops_dagster.api.connections import default_max_connections

    return ConnectionLimits(
        max_header_bytes=env_int("FINOPS_API_MAX_HEADER_BYTES", 16_384, minimum=1024),
        header_timeout_s=env_int("FINOPS_API_HEADER_TIMEOUT_MS", 10_000, minimum=100) / 1000,
        idle_timeout_s=env_int("FINOPS_API_IDLE_TIMEOUT_S", 5, minimum=1),
        max_connections=env_int("FINOPS_API_MAX_CONNECTIONS", default_max_connections(), minimum=4),
    )


def _metrics_settings() -> dict[str, Any]:
    """FINOPS_API_METRICS: `on` (default), `off`, or `port:NNNN` to serve them apart from the API
    (a port the API's ingress does not expose)."""
    value = env_str("FINOPS_API_METRICS", "on").lower()
    if value in ("on", "off"):
        return {"metrics": value, "metrics_port": None}
    kind, _, port = value.partition(":")
    if kind == "port" and port.isdigit() and 0 < int(port) < 65536:
        return {"metrics": "port", "metrics_port": int(port)}
    raise SettingError(f"FINOPS_API_METRICS must be on, off or port:NNNN, got {value!r}")


__all__ = ["ApiSettings", "OidcSettings", "SettingError", "api_settings", "env_bool"]
