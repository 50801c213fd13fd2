"""The database roles: the reader sees the views and the publish ledger view, nothing else, and cannot
write anything; the API's sessions act as the reader even on a superuser URL; a login role that is a
member of the reader serves the API; the migration tolerates roles created by another database."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg
import pytest
from psycopg import sql

from finops_dagster.api.db import Mart, check_access
from finops_dagster.api.settings import SettingError
from finops_dagster.mart.aggregates import AGGREGATES
from finops_dagster.mart.migrations import apply_migrations
from finops_dagster_tests.conftest import database_url
from finops_dagster_tests.support.api_mart import Published
from finops_dagster_tests.support.live_api import live_api, settings_for
from finops_dagster_tests.support.oidc_issuer import Issuer

READABLE = {
    *AGGREGATES,
    "api_month_publish",
    "api_publish_version",
    "published_reject",
    "reject_reason",
    # the months' close status and restatements (sql/018_month_close.sql)
    "month_status",
    "month_restatement",
    "month_restatement_line",
}


def _as_reader(url: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(url, autocommit=True)
    conn.execute("SET ROLE finops_reader")
    return conn


def _relations(conn: psycopg.Connection[Any], kinds: str) -> list[str]:
    return [
        row[0]
        for row in conn.execute(
            "SELECT c.relname FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'finops' AND c.relkind = ANY(%s) ORDER BY 1",
            (list(kinds),),
        )
    ]


def test_the_reader_reads_the_views_and_nothing_else(published: Published) -> None:
    with _as_reader(published.url) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("finops_reader",)
        for view in sorted(READABLE):
            conn.execute(sql.SQL("SELECT * FROM finops.{} LIMIT 1").format(sql.Identifier(view)))
        tables = _relations(conn, "rpv")
        base = [name for name in tables if name not in READABLE]
        assert {
            "fact_releve",
            "etl_runs",
            "domain_load",
            "releve_reject",
            "dim_application",
            "open_legacy_releves",
            "schema_migrations",
        } <= set(base)
        for table in base:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql.SQL("SELECT 1 FROM finops.{} LIMIT 1").format(sql.Identifier(table)))
        # the partitions of fact_releve too
        assert any(name.startswith("fact_releve_") for name in base)


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO finops.fact_releve (period_month) VALUES ('2025-01-01')",
        "UPDATE finops.etl_runs SET status = 'FAILED'",
        "DELETE FROM finops.domain_load",
        "TRUNCATE finops.releve_reject",
        "INSERT INTO finops.mv_cost_domain_month VALUES ('2025-01-01', 'x', 'EUR', 1, 1, 1)",
        "REFRESH MATERIALIZED VIEW finops.mv_cost_domain_month",
        "CREATE TABLE finops.intruder (x int)",
        "CREATE TABLE public.intruder (x int)",
        "CREATE VIEW finops.intruder AS SELECT 1",
        "DROP MATERIALIZED VIEW finops.mv_history_domain",
        "ALTER MATERIALIZED VIEW finops.mv_cost_domain_month RENAME TO intruder",
        "GRANT SELECT ON finops.fact_releve TO finops_reader",
        "SELECT finops_reader_cannot_create_functions() FROM (SELECT 1) AS x",
    ],
)
def test_the_reader_cannot_write_anything(published: Published, statement: str) -> None:
    with _as_reader(published.url) as conn, pytest.raises(psycopg.Error):
        conn.execute(statement)
    # and it did nothing
    with psycopg.connect(published.url) as conn:
        assert conn.execute("SELECT count(*) FROM finops.fact_releve").fetchone()[0] > 0  # type: ignore[index]
        assert conn.execute(
            "SELECT to_regclass('finops.intruder'), to_regclass('public.intruder')"
        ).fetchone() == (None, None)


def test_the_api_sessions_act_as_the_reader_read_only(
    published: Published, monkeypatch: pytest.MonkeyPatch, issuer: Issuer
) -> None:
    settings = settings_for(monkeypatch, published.url, issuer)  # a superuser URL

    async def session() -> tuple[Any, ...]:
        mart = Mart(settings)
        await mart.open()
        try:
            async with mart.connection() as conn:
                cursor = await conn.execute(
                    "SELECT current_user, session_user, current_setting('default_transaction_read_only'), "
                    "current_setting('statement_timeout')"
                )
                row = await cursor.fetchone()
                assert row is not None
                return tuple(row)
        finally:
            await mart.close()

    assert asyncio.run(session()) == ("finops_reader", "postgres", "on", "5s")


def test_a_login_member_of_the_reader_serves_the_api(
    published: Published, server_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    login = f"finops_api_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE finops_reader").format(sql.Identifier(login)))
    try:
        url = psycopg.conninfo.make_conninfo(published.url, user=login)
        settings = settings_for(monkeypatch, url, None, FINOPS_API_DB_ROLE="none")
        check_access(settings)
        with live_api(settings) as api:
            body = api.get("/api/v1/costs/groups").json()
            assert body["total"] == published.rows("SELECT count(*) FROM finops.mv_cost_group_month")[0][0]
        with psycopg.connect(url) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM finops.fact_releve")
        # a user outside the reader role cannot borrow it
        outsider = psycopg.conninfo.make_conninfo(published.url, user=login)
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("REVOKE finops_reader FROM {}").format(sql.Identifier(login)))
        with pytest.raises(SettingError, match=r"FINOPS_API_DB_ROLE: .* may not SET ROLE finops_reader"):
            check_access(settings_for(monkeypatch, outsider, None, FINOPS_API_DB_ROLE="finops_reader"))
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(login)))


def test_the_writer_writes_the_tables_not_the_views_of_the_reader(published: Published) -> None:
    with psycopg.connect(published.url) as conn:  # one transaction, rolled back
        conn.execute("SET ROLE finops_writer")
        conn.execute("UPDATE finops.etl_runs SET version = version")
        conn.execute("SELECT count(*) FROM finops.fact_releve")
        conn.rollback()


def test_roles_of_another_database_are_reused_and_grants_are_per_database(server_url: str) -> None:
    """Roles are cluster-wide: a second database's migration finds them and makes its own grants."""
    names = [f"finops_t_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    try:
        for name in names:
            with psycopg.connect(server_url, autocommit=True) as admin:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            with psycopg.connect(database_url(server_url, name), autocommit=True) as conn:
                assert "008_api_roles.sql" in apply_migrations(conn)
            with _as_reader(database_url(server_url, name)) as conn:
                # allowed, just empty
                assert conn.execute("SELECT * FROM finops.mv_cost_app_quarter").fetchall() == []
                conn.execute("SELECT * FROM finops.api_publish_version")
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute("SELECT * FROM finops.etl_runs")
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            for name in names:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_a_login_that_can_leave_the_reader_is_refused_at_start(
    published: Published, server_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session can RESET ROLE back to its login: a superuser login, or one that is also a member of
    another role, would then have more than the reader's rights. The API refuses to start with it,
    unless told to (the demo), and then says so."""
    superuser = settings_for(monkeypatch, published.url, None)
    assert published.rows("SELECT rolsuper FROM pg_roles WHERE rolname = current_user") == [(True,)]
    with pytest.raises(SettingError, match="is a superuser: a session that leaves finops_reader"):
        check_access(superuser)
    allowed = settings_for(monkeypatch, published.url, None, FINOPS_API_ALLOW_PRIVILEGED_LOGIN="true")
    assert "PRIVILEGED DATABASE LOGIN" in (check_access(allowed) or "")
    monkeypatch.delenv("FINOPS_API_ALLOW_PRIVILEGED_LOGIN")

    login = f"finops_api_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE finops_reader, finops_writer").format(
            sql.Identifier(login)
        ))
    try:
        url = psycopg.conninfo.make_conninfo(published.url, user=login)
        member = settings_for(monkeypatch, url, None)
        with pytest.raises(SettingError, match="is also a member of finops_writer"):
            check_access(member)
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("REVOKE finops_writer FROM {}").format(sql.Identifier(login)))
        assert check_access(member) is None  # only the reader: nothing to say
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(login)))
