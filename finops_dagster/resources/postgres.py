"""The data mart's PostgreSQL, as a Dagster resource.

Connection settings come from environment variables through `EnvVar`, so the UI shows variable
names, never a password. The schema is migrated before the first connection of a process
hands out, which makes a fresh empty database just work.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import psycopg
from dagster import ConfigurableResource, EnvVar
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from finops_dagster.settings import SettingError


class MartUnavailable(RuntimeError):
    """PostgreSQL could not be reached; the message names the server, never a credential."""


class PostgresResource(ConfigurableResource):
    """Where the data mart lives. `url` is a libpq URL or key=value string without secrets ideally;
    `user`/`password` override what it holds (POSTGRES_USER / POSTGRES_PASSWORD)."""

    url: str
    user: str | None = None
    password: str | None = None
    connect_timeout_s: int = 10

    _migrated: ClassVar[set[str]] = set()
    _migrate_lock: ClassVar[threading.Lock] = threading.Lock()

    def conninfo(self) -> str:
        overrides: dict[str, Any] = {
            "connect_timeout": self.connect_timeout_s,
            # long-lived connections (the run ledger's) notice a dead peer instead of hanging
            "keepalives": 1,
            "keepalives_idle": 60,
        }
        if self.user:
            overrides["user"] = self.user
        if self.password:
            overrides["password"] = self.password
        try:
            return make_conninfo(self.url, **overrides)
        except psycopg.ProgrammingError:
            raise SettingError(
                "POSTGRES_URL is not a valid libpq URL or key=value string (is a special character of the "
                "password percent-encoded?)"
            ) from None

    def describe(self) -> str:
        """Where the mart is, fit for a log line or an error: host, port and database only."""
        try:
            params = conninfo_to_dict(self.url)
        except psycopg.ProgrammingError:
            return "PostgreSQL (unparseable POSTGRES_URL)"
        host = params.get("host") or "localhost"
        port = params.get("port") or "5432"
        dbname = params.get("dbname") or "(default database)"
        return f"PostgreSQL {host}:{port}/{dbname}"

    def _open(self, *, autocommit: bool) -> psycopg.Connection:
        try:
            return psycopg.connect(self.conninfo(), autocommit=autocommit)
        except psycopg.OperationalError as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            if self.password:
                reason = reason.replace(self.password, "***")
            raise MartUnavailable(f"{self.describe()} is unreachable: {reason}") from None

    def open_connection(self, *, autocommit: bool = False) -> psycopg.Connection:
        """A long-lived connection to a migrated mart; the caller closes it."""
        self.ensure_migrated()
        return self._open(autocommit=autocommit)

    @contextmanager
    def connect(self, *, autocommit: bool = True) -> Iterator[psycopg.Connection]:
        """A connection to a migrated mart. Autocommit: every write of the project runs in an explicit
        `conn.transaction()` block, which is then a real transaction (not a savepoint of an implicit
        one left open across a long source read)."""
        self.ensure_migrated()
        with self._open(autocommit=autocommit) as conn:
            yield conn

    def ensure_migrated(self) -> None:
        """Apply pending migrations once per process and server, before the first write."""
        key = self.conninfo()
        if key in self._migrated:
            return
        from finops_dagster.mart.migrations import apply_migrations

        with self._migrate_lock:
            if key in self._migrated:
                return
            with self._open(autocommit=True) as conn:
                apply_migrations(conn)
            self._migrated.add(key)


def postgres_from_env() -> PostgresResource:
    """The mart resource as configured by POSTGRES_URL, or POSTGRES_HOST/PORT/DB, plus
    POSTGRES_USER/POSTGRES_PASSWORD. Fails naming the variables when none is set."""
    credentials: dict[str, Any] = {}
    if os.environ.get("POSTGRES_USER"):
        credentials["user"] = EnvVar("POSTGRES_USER")
    if os.environ.get("POSTGRES_PASSWORD"):
        credentials["password"] = EnvVar("POSTGRES_PASSWORD")
    if os.environ.get("POSTGRES_URL"):
        return PostgresResource(url=EnvVar("POSTGRES_URL"), **credentials)
    host = os.environ.get("POSTGRES_HOST", "").strip()
    if host:
        port = os.environ.get("POSTGRES_PORT", "5432").strip() or "5432"
        dbname = os.environ.get("POSTGRES_DB", "finops").strip() or "finops"
        return PostgresResource(url=make_conninfo(host=host, port=port, dbname=dbname), **credentials)
    raise SettingError(
        "POSTGRES_URL is not set (nor POSTGRES_HOST): the pipeline needs the data mart's PostgreSQL. "
        "Run `finops-dagster demo` for an embedded one."
    )
