"""The app for servers that import it by name: `uvicorn --factory finops_dagster.api.asgi:create`, and
`finops-dagster api --workers N` (each worker process builds its own app, pool and caches)."""

from __future__ import annotations

from fastapi import FastAPI

from finops_dagster.api.app import create_app
from finops_dagster.api.settings import api_settings


def create() -> FastAPI:
    return create_app(api_settings())
