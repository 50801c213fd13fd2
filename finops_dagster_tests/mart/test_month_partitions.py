"""Month partitions: the tables partitioned by month, their partitions made before a month is written,
and the migration that partitioned the two largest aggregates keeping every row."""

from __future__ import annotations

import datetime as dt
import shutil
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from finops_dagster.mart.assets import ROW_ESTIMATES
from finops_dagster.mart.migrations import MIGRATIONS_DIR, apply_migrations
from finops_dagster.mart.month_partitions import PARTITIONED_BY_MONTH, ensure_month_partitions
from finops_dagster.mart.publish import publish_run
from finops_dagster_tests.support.staging import stage

JAN, FEB = dt.date(2025, 1, 1), dt.date(2025, 2, 1)
TODAY = dt.date(2025, 8, 15)
PARTITIONING = "021_month_partitioned_aggregates.sql"
AGGREGATES_BY_MONTH = [(schema, table) for schema, table in PARTITIONED_BY_MONTH if table != "fact_releve"]

PARTITIONED = """
SELECT n.nspname, c.relname
FROM pg_partitioned_table AS p
JOIN pg_class AS c ON c.oid = p.partrelid JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE NOT c.relispartition AND n.nspname LIKE 'finops%%'
"""

LEAVES = """
SELECT p.relid::regclass::text, pg_get_expr(c.relpartbound, c.oid)
FROM pg_partition_tree(%s::regclass) AS p JOIN pg_class AS c ON c.oid = p.relid
WHERE p.isleaf ORDER BY 1
"""


def _leaves(conn: psycopg.Connection, schema: str, table: str) -> list[tuple[str, str]]:
    return conn.execute(LEAVES, (f"{schema}.{table}",)).fetchall()


def test_the_list_of_partitioned_tables_is_the_catalogs(mart: psycopg.Connection) -> None:
    assert set(mart.execute(PARTITIONED).fetchall()) == set(PARTITIONED_BY_MONTH)


def test_a_months_partitions_are_made_once_with_the_months_bounds(mart: psycopg.Connection) -> None:
    made = ensure_month_partitions(mart, [FEB, JAN, FEB])
    assert len(made) == 2 * len(PARTITIONED_BY_MONTH)
    assert "finops_allocated.mv_cost_app_product_month_2025_02" in made
    assert _leaves(mart, "finops", "mv_cost_app_family_month") == [
        ("finops.mv_cost_app_family_month_2025_01", "FOR VALUES FROM ('2025-01-01') TO ('2025-02-01')"),
        ("finops.mv_cost_app_family_month_2025_02", "FOR VALUES FROM ('2025-02-01') TO ('2025-03-01')"),
    ]
    assert ensure_month_partitions(mart, [JAN, FEB]) == []
    assert ensure_month_partitions(mart, []) == []


def test_a_month_is_its_first_day(mart: psycopg.Connection) -> None:
    with pytest.raises(ValueError, match="2025-01-15"):
        ensure_month_partitions(mart, [JAN, dt.date(2025, 1, 15)])
    assert _leaves(mart, "finops", "fact_releve") == []


def test_a_published_months_aggregates_land_in_the_months_partitions(
    mart: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FINOPS_ANOMALY_MIN_COST", "0")
    stage(mart, JAN, "r1", {"APP-A": "100", "APP-B": "50"})
    publish_run(mart, "r1", [JAN], today=TODAY)
    for schema, table in PARTITIONED_BY_MONTH:
        partition = sql.Identifier(schema, f"{table}_2025_01")
        row = mart.execute(sql.SQL("SELECT count(*), sum(total_cost) FROM {}").format(partition)).fetchone()
        assert row == (2, Decimal("150")), (schema, table)


def test_the_row_estimates_count_every_partition(
    mart: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FINOPS_ANOMALY_MIN_COST", "0")
    for month, run_id in ((JAN, "r1"), (FEB, "r2")):
        stage(mart, month, run_id, {"APP-A": "100", "APP-B": "50", "APP-C": "1"})
        publish_run(mart, run_id, [month], today=TODAY)
    mart.execute("ANALYZE")
    estimates = dict(mart.execute(ROW_ESTIMATES, (["mv_cost_app_product_month", "mv_cost_domain_month"],)))
    assert estimates == {"mv_cost_app_product_month": 6, "mv_cost_domain_month": 2}


def test_partitioning_the_aggregates_keeps_every_row_grant_and_key(empty_db_url: str, tmp_path: Path) -> None:
    before = tmp_path / "sql"
    before.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if path.name < PARTITIONING:
            shutil.copy(path, before)
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        apply_migrations(conn, before)
        for month, cost in ((JAN, "100.10"), (FEB, "7.25")):
            _insert_aggregates(conn, month, cost)
        expected = _aggregate_rows(conn)

        assert apply_migrations(conn) == [PARTITIONING]

        assert _aggregate_rows(conn) == expected
        assert [name for name, _ in _leaves(conn, "finops_allocated", "mv_cost_app_product_month")] == [
            "finops_allocated.mv_cost_app_product_month_2025_01",
            "finops_allocated.mv_cost_app_product_month_2025_02",
        ]
        for schema, table in AGGREGATES_BY_MONTH:
            conn.execute("SET ROLE finops_reader")
            conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table)))
            conn.execute("RESET ROLE")
            indexes = conn.execute(
                "SELECT indexrelid::regclass::text, indisprimary FROM pg_index WHERE indrelid = %s::regclass",
                (f"{schema}.{table}",),
            ).fetchall()
            assert (f"{schema}.{table}_pkey", True) in indexes
            assert (f"{schema}.{table}_app", False) in indexes
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "INSERT INTO finops.mv_cost_app_family_month "
                "SELECT * FROM finops.mv_cost_app_family_month WHERE period_month = %s",
                (JAN,),
            )


def _insert_aggregates(conn: psycopg.Connection, month: dt.date, cost: str) -> None:
    for schema in ("finops", "finops_allocated"):
        conn.execute(
            sql.SQL("INSERT INTO {} VALUES (%s, 'APP-A', 'open_legacy', 'FAM', 'EUR', %s, 1)").format(
                sql.Identifier(schema, "mv_cost_app_family_month")
            ),
            (month, cost),
        )
        product = sql.SQL(
            "INSERT INTO {} VALUES (%s, 'APP-A', 'open_legacy', 'FAM', 'P1', 'unit', 'EUR', 2, %s, 1)"
        )
        conn.execute(product.format(sql.Identifier(schema, "mv_cost_app_product_month")), (month, cost))


def _aggregate_rows(conn: psycopg.Connection) -> dict[tuple[str, str], list[tuple[object, ...]]]:
    return {
        (schema, table): conn.execute(
            sql.SQL("SELECT * FROM {} ORDER BY 1, 2, 3, 4, 5").format(sql.Identifier(schema, table))
        ).fetchall()
        for schema, table in AGGREGATES_BY_MONTH
    }
