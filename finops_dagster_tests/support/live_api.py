"""The read API served as `finops-dagster api` serves it (same uvicorn configuration), in a thread,
called over HTTP with httpx; its settings given through the environment as an operator gives them."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from finops_dagster.api.app import create_app
from finops_dagster.api.server import uvicorn_config
from finops_dagster.api.settings import ApiSettings, api_settings
from finops_dagster_tests.support.oidc_issuer import AUDIENCE, ISSUER, Issuer
from finops_dagster_tests.support.ports import free_port


@dataclass
class LiveApi:
    base_url: str
    settings: ApiSettings
    client: httpx.Client

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, **kwargs)


@contextmanager
def live_api(
    settings: ApiSettings, headers: dict[str, str] | None = None, *, access_log: bool = False
) -> Iterator[LiveApi]:
    """The API served as `finops-dagster api` serves it (same uvicorn configuration), in a thread."""
    import uvicorn

    port = free_port()
    options = {"host": "127.0.0.1", "port": port, "log_level": "warning", "access_log": access_log}
    config = uvicorn_config(create_app(settings), settings, **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise AssertionError("the API did not start")
        time.sleep(0.02)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, headers=headers or {}, timeout=30) as client:
            yield LiveApi(base, settings, client)
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def settings_for(monkeypatch: pytest.MonkeyPatch, url: str, issuer: Issuer | None, **env: str) -> ApiSettings:
    """The API's settings as an operator would give them, through the environment."""
    for name in ("POSTGRES_URL", "POSTGRES_HOST", "POSTGRES_USER", "POSTGRES_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FINOPS_API_POSTGRES_URL", url)
    if issuer is None:
        monkeypatch.setenv("FINOPS_API_AUTH", "none")
    else:
        monkeypatch.setenv("FINOPS_API_AUTH", "oidc")
        monkeypatch.setenv("FINOPS_API_OIDC_ISSUER", ISSUER)
        monkeypatch.setenv("FINOPS_API_OIDC_AUDIENCE", AUDIENCE)
        monkeypatch.setenv("FINOPS_API_OIDC_JWKS_URL", issuer.jwks_url)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return api_settings()
