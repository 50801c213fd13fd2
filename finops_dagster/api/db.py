"""The API's connections to the mart: a pool of read-only sessions acting as the reader role.

Every pooled connection runs `SET ROLE <FINOPS_API_DB_ROLE>` (finops_reader by default) and is made
read only with a statement timeout before it is handed out. So even when the API is given the mart
owner's URL (the demo does), what it runs has the reader's rights: the materialized views and the
publish ledger view, nothing else (sql/008_api_roles.sql).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from finops_dagster.api.settings import ApiSettings
from finops_dagster.settings import SettingError

VERSION_QUERY = "SELECT last_run_id, last_published_at FROM finops.api_publish_version"
# What the login itself may become, beside the reader role: `RESET ROLE` (or `SET ROLE other`) in a
# session goes back to the login's own rights, so they must be no more than the reader's. PostgreSQL's
# predefined roles (pg_*) are left out only when the reader has them too.
LOGIN_PRIVILEGES = """
SELECT r.rolsuper AS superuser,
       coalesce(array_agg(o.rolname ORDER BY o.rolname) FILTER (WHERE o.rolname IS NOT NULL), '{}') AS roles
FROM pg_roles AS r
LEFT JOIN pg_roles AS o
  ON o.rolname NOT IN (r.rolname, %(reader)s)
 AND pg_has_role(r.rolname, o.oid, 'MEMBER')
 AND NOT pg_has_role(%(reader)s, o.oid, 'MEMBER')
WHERE r.rolname = current_user
GROUP BY r.rolsuper
"""
READER_ROLE = "finops_reader"
"""The role of sql/008_api_roles.sql that a login of its own (FINOPS_API_DB_ROLE=none) is a member of."""
ACCESS_PROBE = "SELECT 1 FROM finops.mv_cost_domain_month LIMIT 0"


class ViewsNotPopulated(Exception):
    """The views exist but were never refreshed: the pipeline has not published yet (503)."""


@dataclass(frozen=True)
class Version:
    """What the views hold, as of the last successful publish (None before the first one)."""

    run_id: str | None
    published_at: dt.datetime | None

    @property
    def token(self) -> str:
        return f"{self.run_id}|{self.published_at.isoformat() if self.published_at else 'never'}"

    def etag(self, path: str, query: str) -> str:
        """A weak validator per representation: the publish it reflects and the exact request."""
        digest = hashlib.sha256(f"{self.token}\n{path}?{query}".encode()).hexdigest()[:32]
        return f'W/"{digest}"'


def describe(url: str) -> str:
    """host:port/database of a libpq URL, fit for a log line: never the user or the password."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "PostgreSQL (unparseable URL)"
    return (
        f"PostgreSQL {params.get('host') or 'localhost'}:{params.get('port') or '5432'}/"
        f"{params.get('dbname') or '(default database)'}"
    )


def _session_statements(settings: ApiSettings) -> list[sql.Composed | sql.SQL]:
    statements: list[sql.Composed | sql.SQL] = []
    if settings.db_role:
        statements.append(sql.SQL("SET ROLE {}").format(sql.Identifier(settings.db_role)))
    statements.append(sql.SQL("SET default_transaction_read_only = on"))
    statements.append(
        sql.SQL("SET statement_timeout = {}").format(sql.Literal(f"{settings.statement_timeout_ms}ms"))
    )
    statements.append(sql.SQL("SET application_name = 'finops-api'"))
    return statements


def login_escape(conn: psycopg.Connection[Any], reader: str | None) -> str | None:
    """What the API's login could do beyond `reader` once a session leaves that role (RESET ROLE):
    None when nothing (a login that is the reader, or only a member of it)."""
    row = conn.execute(LOGIN_PRIVILEGES, {"reader": reader or READER_ROLE}).fetchone()
    if row is None:
        return None
    superuser, roles = row
    if superuser:
        return "is a superuser"
    if roles:
        return f"is also a member of {', '.join(roles)}"
    return None


def check_access(settings: ApiSettings) -> str | None:
    """Fail at start, with a message naming the setting, when the API could not serve; return a
    warning when it can serve but has nothing to say yet (views never populated), or when its login
    has more rights than the reader and FINOPS_API_ALLOW_PRIVILEGED_LOGIN lets it start anyway."""
    where = describe(settings.postgres_url)
    try:
        with psycopg.connect(settings.postgres_url, autocommit=True, connect_timeout=10) as conn:
            privileged = _privileged_login(conn, settings, where)
            for statement in _session_statements(settings):
                try:
                    conn.execute(statement)
                except psycopg.errors.InsufficientPrivilege:
                    raise SettingError(
                        f"FINOPS_API_DB_ROLE: the API's database user on {where} may not "
                        f"SET ROLE {settings.db_role} (GRANT {settings.db_role} TO <the API's user>)"
                    ) from None
                except psycopg.errors.InvalidParameterValue:
                    raise SettingError(
                        f"FINOPS_API_DB_ROLE: role {settings.db_role} does not exist on {where} "
                        "(run `finops-dagster migrate`)"
                    ) from None
            try:
                conn.execute(VERSION_QUERY)
                conn.execute(ACCESS_PROBE)
            except psycopg.errors.ObjectNotInPrerequisiteState:
                unpopulated = (
                    f"the views of {where} have not been populated yet: requests get 503 until a publish"
                )
                return "\n".join(filter(None, (privileged, unpopulated)))
            except psycopg.errors.UndefinedTable:
                raise SettingError(f"{where} has no FinOps views yet: run `finops-dagster migrate`") from None
            except psycopg.errors.InsufficientPrivilege:
                raise SettingError(
                    f"FINOPS_API_DB_ROLE: {settings.db_role or 'the API user'} may not read the views on "
                    f"{where}"
                ) from None
            return privileged
    except psycopg.OperationalError as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if "password" in reason.lower():
            reason = "authentication failed"
        raise SettingError(
            f"FINOPS_API_POSTGRES_URL / POSTGRES_URL: {where} is unreachable: {reason}"
        ) from None


def _privileged_login(conn: psycopg.Connection[Any], settings: ApiSettings, where: str) -> str | None:
    """SettingError when the login can do more than the reader; the loud warning instead when
    FINOPS_API_ALLOW_PRIVILEGED_LOGIN allows it (the demo's superuser)."""
    escape = login_escape(conn, settings.db_role)
    if escape is None:
        return None
    message = (
        f"the API's database login on {where} {escape}: a session that leaves "
        f"{settings.db_role or 'its role'} (RESET ROLE) has those rights. Give the API a login that is "
        "only a member of finops_reader (README, The read API)"
    )
    if not settings.allow_privileged_login:
        raise SettingError(
            f"FINOPS_API_POSTGRES_URL: {message}; or set FINOPS_API_ALLOW_PRIVILEGED_LOGIN=true (a demo only)"
        )
    return f"PRIVILEGED DATABASE LOGIN: {message}"


class Mart:
    """The pool, and the two kinds of reads the routes make: the version probe and row queries."""

    def __init__(self, settings: ApiSettings) -> None:
        self._statements = _session_statements(settings)
        self.pool = AsyncConnectionPool(
            settings.postgres_url,
            min_size=settings.pool_min,
            max_size=settings.pool_max,
            kwargs={"autocommit": True, "prepare_threshold": 0},
            configure=self._configure,
            open=False,
            name="finops-api",
        )

    async def _configure(self, conn: psycopg.AsyncConnection[Any]) -> None:
        for statement in self._statements:
            await conn.execute(statement)

    async def open(self) -> None:
        await self.pool.open(wait=True, timeout=30)

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        async with self.pool.connection() as conn:
            yield conn


async def read_version(conn: psycopg.AsyncConnection[Any]) -> Version:
    cursor = await conn.execute(VERSION_QUERY)
    row = await cursor.fetchone()
    return Version(row[0], row[1]) if row else Version(None, None)


async def fetch(
    conn: psycopg.AsyncConnection[Any],
    query: sql.Composed | sql.SQL | str,
    params: Sequence[Any] | Mapping[str, Any] = (),
) -> list[dict[str, Any]]:
    """Rows as dicts. A view never refreshed raises ViewsNotPopulated (the pipeline never published)."""
    try:
        async with conn.cursor(row_factory=dict_row) as cursor:
            await cursor.execute(query, params)
            return await cursor.fetchall()
    except psycopg.errors.ObjectNotInPrerequisiteState:
        raise ViewsNotPopulated(
            "the views have not been populated yet: the pipeline has not published"
        ) from None
