"""The read API's fixtures: a mart published by the real pipeline, an OIDC issuer, a live API.

- `published`: a mart of its own (per session) into which the `finops_nightly` job published four
  months of a small CMDB in two runs (January–March, then March–April again), so the views, the run
  ledger and the publish ledger hold what production would (the estate: support/api_mart.py).
- `issuer`: an RSA key pair, its JWKS served over a real socket (pytest-httpserver), and a token
  factory signing with PyJWT (support/oidc_issuer.py).
- `api`: the API under uvicorn on a free local port, in a thread, called over HTTP with httpx, as a
  caller with the reader role (support/live_api.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import jwt
import psycopg
import pytest
from psycopg import sql
from pytest_httpserver import HTTPServer

from finops_dagster.mart.etl_runs import RunLedger
from finops_dagster.resources.mongo import MongoResource
from finops_dagster.resources.postgres import PostgresResource
from finops_dagster_tests.conftest import database_url
from finops_dagster_tests.support.api_mart import (
    APRIL,
    ESTATE,
    JANUARY,
    MARCH,
    Published,
    month_documents,
    pipeline_settings,
    run_nightly,
)
from finops_dagster_tests.support.live_api import LiveApi, live_api, settings_for
from finops_dagster_tests.support.oidc_issuer import Issuer, new_key


@pytest.fixture(scope="session")
def published(server_url: str, template_db: str) -> Iterator[Published]:
    name = f"finops_api_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template_db)
            )
        )
    url = database_url(server_url, name)
    cmdb = MongoResource(url=f"mongomock://{uuid.uuid4().hex}")
    for month in ESTATE:
        cmdb.db()["cmdb_ci"].insert_many(month_documents(month))
    postgres = PostgresResource(url=url)
    resources = {"postgres": postgres, "cmdb": cmdb, "run_ledger": RunLedger(postgres=postgres)}
    try:
        with pytest.MonkeyPatch.context() as patch:
            pipeline_settings(patch)
            runs = [run_nightly(resources, JANUARY, MARCH), run_nightly(resources, MARCH, APRIL)]
        yield Published(url, runs, resources)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))




@pytest.fixture(scope="session")
def issuer_server() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


@pytest.fixture(scope="session")
def issuer(issuer_server: HTTPServer) -> Issuer:
    key = new_key()
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update({"kid": "key-1", "use": "sig", "alg": "RS256"})
    issuer_server.expect_request("/jwks").respond_with_json({"keys": [jwk]})
    return Issuer(key=key, kid="key-1", jwks_url=issuer_server.url_for("/jwks"))




@pytest.fixture(scope="module")
def api(published: Published, issuer: Issuer) -> Iterator[LiveApi]:
    """The API on the published mart, authenticated as a caller with the reader role."""
    with pytest.MonkeyPatch.context() as patch:
        settings = settings_for(patch, published.url, issuer)
    with live_api(settings, issuer.headers(expires_in=3600)) as running:
        yield running
