"""The migration runner against a real PostgreSQL: fresh databases, divergence, failures, concurrency."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import psycopg
import pytest

from finops_dagster.cli import main as cli_main
from finops_dagster.mart.aggregates import AGGREGATES
from finops_dagster.mart.locks import MART_NAMESPACE, MIGRATIONS_KEY
from finops_dagster.mart.migrations import (
    MIGRATIONS_DIR,
    MigrationError,
    apply_migrations,
    discover_migrations,
)
from finops_dagster.resources.postgres import PostgresResource

# advisory locks of this test's database only: other databases on the server may be busy too
THIS_DB_ADVISORY = (
    "locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


TABLES = {
    "schema_migrations",
    "dim_domain",
    "dim_family",
    "dim_product",
    "dim_application_group",
    "dim_application",
    "rate_card",
    "application_mapping_rule",
    "reference_version",
    "domain_load",
    "fact_releve",
    "open_legacy_releves",
    "releve_reject",
    "etl_runs",
}
SHIPPED = [migration.name for migration in discover_migrations()]


def _migrations_copy(tmp_path: Path) -> Path:
    directory = tmp_path / "sql"
    shutil.copytree(MIGRATIONS_DIR, directory)
    return directory


def _recorded(conn: psycopg.Connection) -> list[str]:
    return [row[0] for row in conn.execute("SELECT filename FROM finops.schema_migrations ORDER BY 1")]


def _wait_for(condition, what: str, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_shipped_migrations_are_numbered_and_ordered() -> None:
    assert sorted(SHIPPED) == SHIPPED
    assert SHIPPED[:3] == ["001_reference.sql", "002_mart.sql", "003_views.sql"]


def test_fresh_database_gets_the_whole_schema(empty_db_url: str) -> None:
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'finops'").fetchone() == (0,)

        assert apply_migrations(conn) == SHIPPED

        tables = {
            row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'finops'")
        }
        assert tables >= TABLES
        assert tables >= set(AGGREGATES)  # the aggregates are tables, no materialized view is left
        assert conn.execute("SELECT count(*) FROM pg_matviews WHERE schemaname = 'finops'").fetchone() == (0,)

        partitioned = conn.execute(
            "SELECT p.partstrat FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'finops' AND c.relname = 'fact_releve'"
        ).fetchall()
        assert partitioned == [("r",)], "fact_releve must be range-partitioned"

        keyed = {
            row[0]
            for row in conn.execute(
                "SELECT DISTINCT t.relname FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid "
                "JOIN pg_namespace n ON n.oid = t.relnamespace "
                "WHERE n.nspname = 'finops' AND t.relname LIKE 'mv\\_%%' AND i.indisprimary"
            )
        }
        assert keyed == set(AGGREGATES), f"aggregates without a primary key: {set(AGGREGATES) - keyed}"

        checksums = dict(conn.execute("SELECT filename, checksum FROM finops.schema_migrations").fetchall())
        assert checksums == {m.name: m.checksum for m in discover_migrations()}


def test_second_apply_applies_nothing(empty_db_url: str) -> None:
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        assert apply_migrations(conn) == SHIPPED
        first = conn.execute(
            "SELECT filename, applied_at FROM finops.schema_migrations ORDER BY 1"
        ).fetchall()
        assert apply_migrations(conn) == []
        assert (
            conn.execute("SELECT filename, applied_at FROM finops.schema_migrations ORDER BY 1").fetchall()
            == first
        )


def test_needs_an_autocommit_connection(empty_db_url: str) -> None:
    with psycopg.connect(empty_db_url) as conn, pytest.raises(MigrationError, match="autocommit"):
        apply_migrations(conn)


def test_edited_applied_file_is_refused(empty_db_url: str, tmp_path: Path) -> None:
    directory = _migrations_copy(tmp_path)
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        apply_migrations(conn, directory)
        edited = directory / "002_mart.sql"
        edited.write_text(edited.read_text() + "\n-- a harmless looking comment\n")

        with pytest.raises(MigrationError, match=r"002_mart\.sql was edited after it was applied"):
            apply_migrations(conn, directory)

        # a new file next to the edited one is not applied either: the runner stops before anything
        (directory / "900_more.sql").write_text("CREATE TABLE finops.more (id int);")
        with pytest.raises(MigrationError, match=r"002_mart\.sql"):
            apply_migrations(conn, directory)
        assert _recorded(conn) == SHIPPED
        assert conn.execute("SELECT to_regclass('finops.more')").fetchone() == (None,)


def test_database_ahead_of_the_code_is_refused(empty_db_url: str, tmp_path: Path) -> None:
    directory = _migrations_copy(tmp_path)
    (directory / "900_from_the_future.sql").write_text("CREATE TABLE finops.future (id int);")
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        apply_migrations(conn, directory)
        with pytest.raises(MigrationError, match=r"900_from_the_future\.sql.*this code does not have"):
            apply_migrations(conn)  # the shipped directory, which lacks 900


@pytest.mark.parametrize("bad_name", ["4_short.sql", "004-dashes.sql", "004_UpperCase.sql", "views.sql"])
def test_badly_named_file_is_refused(empty_db_url: str, tmp_path: Path, bad_name: str) -> None:
    directory = _migrations_copy(tmp_path)
    (directory / bad_name).write_text("SELECT 1;")
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        with pytest.raises(MigrationError, match=bad_name.replace(".", r"\.")):
            apply_migrations(conn, directory)
        # refused before touching the database
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'finops'").fetchone() == (0,)


def test_failing_migration_is_rolled_back_entirely(empty_db_url: str, tmp_path: Path) -> None:
    directory = _migrations_copy(tmp_path)
    (directory / "900_broken.sql").write_text(
        "CREATE TABLE finops.half_done (id int);\n"
        "INSERT INTO finops.half_done VALUES (1);\n"
        "ALTER TABLE finops.etl_runs ADD COLUMN half_done_flag boolean;\n"
        "SELECT finops.no_such_function();\n"
    )
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        with pytest.raises(MigrationError, match=r"900_broken\.sql.*no_such_function"):
            apply_migrations(conn, directory)

        # the files before it are applied and recorded; nothing of the broken one remains
        assert _recorded(conn) == SHIPPED
        assert conn.execute("SELECT to_regclass('finops.half_done')").fetchone() == (None,)
        assert conn.execute(
            "SELECT count(*) FROM information_schema.columns "
            "WHERE table_schema = 'finops' AND table_name = 'etl_runs' AND column_name = 'half_done_flag'"
        ).fetchone() == (0,)
        # the connection is usable and the migrations lock was released
        assert conn.execute(
            "SELECT count(*) FROM pg_locks WHERE " + THIS_DB_ADVISORY + " AND classid = %s AND objid = %s",
            (MART_NAMESPACE, MIGRATIONS_KEY),
        ).fetchone() == (0,)

        # once fixed, the file applies
        (directory / "900_broken.sql").write_text("CREATE TABLE finops.half_done (id int);\n")
        assert apply_migrations(conn, directory) == ["900_broken.sql"]


def test_concurrent_appliers_serialize_on_the_advisory_lock(empty_db_url: str) -> None:
    results: dict[int, list[str]] = {}
    errors: list[BaseException] = []

    def apply(index: int) -> None:
        try:
            with psycopg.connect(empty_db_url, autocommit=True) as conn:
                results[index] = apply_migrations(conn)
        except BaseException as error:  # surfaced by the assertions below
            errors.append(error)

    with psycopg.connect(empty_db_url, autocommit=True) as holder:
        # hold the migrations lock so both appliers are provably queued on it at the same time
        holder.execute("SELECT pg_advisory_lock(%s, %s)", (MART_NAMESPACE, MIGRATIONS_KEY))
        threads = [threading.Thread(target=apply, args=(index,)) for index in range(2)]
        for thread in threads:
            thread.start()

        def both_waiting() -> bool:
            row = holder.execute(
                "SELECT count(*) FROM pg_locks WHERE " + THIS_DB_ADVISORY + " AND NOT granted "
                "AND classid = %s AND objid = %s",
                (MART_NAMESPACE, MIGRATIONS_KEY),
            ).fetchone()
            return bool(row and row[0] == 2)

        _wait_for(both_waiting, "both appliers to wait on the migrations lock")
        holder.execute("SELECT pg_advisory_unlock(%s, %s)", (MART_NAMESPACE, MIGRATIONS_KEY))
        for thread in threads:
            thread.join(timeout=60)

    assert errors == []
    assert sorted(results.values()) == [[], SHIPPED]
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        assert conn.execute(
            "SELECT filename, count(*) FROM finops.schema_migrations GROUP BY 1 ORDER BY 1"
        ).fetchall() == [(name, 1) for name in SHIPPED]


def test_resource_migrates_a_fresh_database_on_first_connection(empty_db_url: str) -> None:
    resource = PostgresResource(url=empty_db_url)
    with resource.connect() as conn:
        assert conn.execute("SELECT count(*) FROM finops.fact_releve").fetchone() == (0,)
        assert _recorded(conn) == SHIPPED
    # later connections of the process do not migrate again, and still work
    with resource.connect() as conn:
        assert conn.execute("SELECT count(*) FROM finops.etl_runs").fetchone() == (0,)


def test_the_migrate_command_reads_postgres_url(
    empty_db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`finops-dagster migrate` as the README runs it: the URL comes from the environment."""
    monkeypatch.setenv("POSTGRES_URL", empty_db_url)

    assert cli_main(["migrate"]) == 0
    assert "applied 001_reference.sql" in capsys.readouterr().out
    assert cli_main(["migrate"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("up to date")
