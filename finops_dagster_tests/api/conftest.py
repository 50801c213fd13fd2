"""The read API's test harness: a mart published by the real pipeline, an OIDC issuer, a live API.

- `published`: a mart of its own (per session) into which the `finops_nightly` job published four
  months of a small CMDB in two runs (January–March, then March–April again), so the views, the run
  ledger and the publish ledger hold what production would. Applications move from month to month,
  so rankings and anomalies have something to say.
- `issuer`: an RSA key pair, its JWKS served over a real socket (pytest-httpserver), and a token
  factory signing with PyJWT.
- `live_api`: the API under uvicorn on a free local port, in a thread, called over HTTP with httpx.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from dagster import instance_for_test
from psycopg import sql
from pytest_httpserver import HTTPServer

from finops_dagster.api.app import create_app
from finops_dagster.api.server import uvicorn_config
from finops_dagster.api.settings import ApiSettings, api_settings
from finops_dagster.mart.etl_runs import RANGE_END_TAG, RANGE_START_TAG, RunLedger
from finops_dagster.pipeline import build_definitions
from finops_dagster.resources.mongo import MongoResource
from finops_dagster.resources.postgres import PostgresResource
from finops_dagster_tests.conftest import database_url
from finops_dagster_tests.support.cmdb_documents import application, nights, vm
from finops_dagster_tests.support.ports import free_port

JANUARY, FEBRUARY, MARCH, APRIL = (dt.date(2025, month, 1) for month in (1, 2, 3, 4))
ISSUER = "https://issuer.test/realms/finops"
AUDIENCE = "finops-api"
ROLE = "finops-reader"
GROUPS = {"PAYMENTS": "GRP-A", "BILLING": "GRP-A", "BACKUP": "GRP-A", "CRM": "GRP-B", "SEARCH": "GRP-B"}

# What each application runs in each month: (vCPUs, RAM MiB, disk GB) per VM. Changes between months
# give spikes, drops, a new application (SEARCH in March) and one that disappears (BACKUP after February).
ESTATE: dict[dt.date, dict[str, list[tuple[int, int, int]]]] = {
    JANUARY: {
        "PAYMENTS": [(4, 8192, 100)],
        "BILLING": [(8, 16384, 200)],
        "CRM": [(16, 65536, 500)],
        "BACKUP": [(2, 2048, 1000)],
    },
    FEBRUARY: {
        "PAYMENTS": [(4, 8192, 100), (2, 4096, 50)],
        "BILLING": [(8, 16384, 200)],
        "CRM": [(16, 65536, 500)],
        "BACKUP": [(2, 2048, 1000)],
    },
    MARCH: {
        "PAYMENTS": [(4, 8192, 100), (2, 4096, 50)],
        "BILLING": [(24, 65536, 800)],
        "CRM": [(16, 65536, 500)],
        "SEARCH": [(4, 8192, 100)],
    },
    APRIL: {
        "PAYMENTS": [(1, 1024, 10)],
        "BILLING": [(24, 65536, 800)],
        "CRM": [(16, 65536, 500)],
        "SEARCH": [(8, 16384, 200)],
    },
}


def month_documents(month: dt.date) -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for day in nights(month, 2):
        documents += [application(code, day=day, group=group) for code, group in GROUPS.items()]
        for code, machines in ESTATE[month].items():
            for index, (cpus, memory, disk) in enumerate(machines):
                documents.append(
                    vm(
                        f"{code.lower()}-{index}",
                        day=day,
                        cpus=str(cpus),
                        memory=str(memory),
                        disks_size=str(disk),
                        app=code,
                    )
                )
        # an unallocated VM: cost with no application group
        documents.append(vm("orphan", day=day, cpus="1", memory="1024", disks_size="10"))
    return documents


@dataclass(frozen=True)
class Published:
    url: str
    runs: list[str]
    resources: dict[str, Any]

    def publish(self, first: dt.date, last: dt.date) -> str:
        """Run the pipeline again over these months (same CMDB: the same relevés, a new publish)."""
        with pytest.MonkeyPatch.context() as patch:
            _pipeline_settings(patch)
            run_id = _run(self.resources, first, last)
        self.runs.append(run_id)
        return run_id

    def rows(self, query: str | sql.Composed, params: Any = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(query, params or None).fetchall()


def _run(resources: dict[str, Any], first: dt.date, last: dt.date) -> str:
    with instance_for_test() as instance:
        job = build_definitions(resources).resolve_job_def("finops_nightly")
        result = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            tags={RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()},
        )
    assert result.success, "the pipeline failed to publish the API's test months"
    return result.run_id


def _pipeline_settings(patch: pytest.MonkeyPatch) -> None:
    patch.setenv("FINOPS_DOMAINS_ENABLED", "open_legacy")
    # months of this made-up estate move a lot: the volume check must not block them
    patch.setenv("FINOPS_VOLUME_WARN_DEVIATION", "1000")
    patch.setenv("FINOPS_VOLUME_ERROR_DEVIATION", "1000")
    # a small estate: its changes are far below the production cost floor, and all of them count here
    patch.setenv("FINOPS_ANOMALY_MIN_COST", "0")


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
            _pipeline_settings(patch)
            runs = [_run(resources, JANUARY, MARCH), _run(resources, MARCH, APRIL)]
        yield Published(url, runs, resources)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# --------------------------------------------------------------------------------------------
# OIDC issuer
# --------------------------------------------------------------------------------------------


@dataclass
class Issuer:
    key: rsa.RSAPrivateKey
    kid: str
    jwks_url: str

    def token(
        self,
        *,
        roles: list[str] | None = None,
        audience: str = AUDIENCE,
        issuer: str = ISSUER,
        expires_in: int = 300,
        key: rsa.RSAPrivateKey | None = None,
        kid: str | None = None,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload = {
            "iss": issuer,
            "aud": audience,
            "sub": "backstage",
            "iat": now,
            "exp": now + expires_in,
            "roles": [ROLE] if roles is None else roles,
            **claims,
        }
        return jwt.encode(payload, key or self.key, algorithm="RS256", headers={"kid": kid or self.kid})

    def headers(self, **kwargs: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(**kwargs)}"}


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


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


# --------------------------------------------------------------------------------------------
# The API, live
# --------------------------------------------------------------------------------------------


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


@pytest.fixture(scope="module")
def api(published: Published, issuer: Issuer) -> Iterator[LiveApi]:
    """The API on the published mart, authenticated as a caller with the reader role."""
    with pytest.MonkeyPatch.context() as patch:
        settings = settings_for(patch, published.url, issuer)
    with live_api(settings, issuer.headers(expires_in=3600)) as running:
        yield running
