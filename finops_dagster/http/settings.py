"""Per-source HTTP settings from the environment: `<PREFIX>_URL`, timeouts, retries, TLS.

Defaults come from the global HTTP_TIMEOUT_MS and HTTP_RETRIES, each overridable per source
(`<PREFIX>_TIMEOUT_MS`, `<PREFIX>_RETRIES`). TLS verification is always on; `<PREFIX>_CA_BUNDLE`
or FINOPS_CA_BUNDLE points at the organisation's CA certificates (the spec's truststore).
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from finops_dagster.settings import SettingError, env_int


@dataclass(frozen=True)
class HttpSettings:
    source: str
    base_url: str
    timeout_s: float
    retries: int
    retry_budget_s: float
    ca_bundle: str | None
    breaker_failures: int
    breaker_reset_s: float


def required(name: str, purpose: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise SettingError(f"{name} is not set: {purpose}")
    return value


def http_settings(source: str, prefix: str) -> HttpSettings:
    """Settings of one HTTP source; a missing base URL fails naming `<PREFIX>_URL`."""
    base_url = required(f"{prefix}_URL", f"the base URL of the {source} API")
    if not base_url.startswith(("https://", "http://")):
        raise SettingError(f"{prefix}_URL must be an http(s) URL")
    timeout_ms = env_int(f"{prefix}_TIMEOUT_MS", env_int("HTTP_TIMEOUT_MS", 30_000, minimum=1), minimum=1)
    ca_bundle = os.environ.get(f"{prefix}_CA_BUNDLE") or os.environ.get("FINOPS_CA_BUNDLE") or None
    if ca_bundle and not Path(ca_bundle).is_file():
        raise SettingError(f"{prefix}_CA_BUNDLE / FINOPS_CA_BUNDLE: no such file {ca_bundle}")
    if ca_bundle:
        try:
            ssl.create_default_context(cafile=ca_bundle)
        except ssl.SSLError as error:
            raise SettingError(
                f"{prefix}_CA_BUNDLE / FINOPS_CA_BUNDLE: {ca_bundle} holds no usable "
                f"PEM certificate ({error.reason or error})"
            ) from None
    return HttpSettings(
        source=source,
        base_url=base_url.rstrip("/"),
        timeout_s=timeout_ms / 1000,
        retries=env_int(f"{prefix}_RETRIES", env_int("HTTP_RETRIES", 3)),
        retry_budget_s=env_int(f"{prefix}_RETRY_BUDGET_S", 300, minimum=1),
        ca_bundle=ca_bundle,
        breaker_failures=env_int(f"{prefix}_BREAKER_FAILURES", 5, minimum=1),
        breaker_reset_s=env_int(f"{prefix}_BREAKER_RESET_S", 60, minimum=1),
    )
