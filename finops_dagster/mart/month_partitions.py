"""The month partitions of the mart's partitioned tables, created before anything writes a month.

fact_releve and the two largest aggregates (application x family and application x product, in
both views) are partitioned by month (sql/002_mart.sql, sql/021_month_partitioned_aggregates.sql):
a night's work on a month touches that month's partitions only, whatever the history's length.

Creating a partition locks its parent table, so it is done here, in its own short transaction,
before the publish (or the rebuild) opens the long one; inside it, readers of the parent would wait
for the whole publish. A month whose partitions all exist costs one catalog query and no lock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import psycopg
from psycopg import sql

from finops_dagster.mart.locks import MART_NAMESPACE, PUBLISH_KEY
from finops_dagster.releve import next_month

PARTITIONED_BY_MONTH: tuple[tuple[str, str], ...] = (
    ("finops", "fact_releve"),
    ("finops", "mv_cost_app_family_month"),
    ("finops", "mv_cost_app_product_month"),
    ("finops_allocated", "mv_cost_app_family_month"),
    ("finops_allocated", "mv_cost_app_product_month"),
)
"""(schema, table) of every table partitioned by period_month, one partition per month."""

EXISTING = """
SELECT n.nspname, c.relname
FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE (n.nspname, c.relname) IN (SELECT * FROM unnest(%(schemas)s::text[], %(names)s::text[]))
"""


def partition_name(table: str, month: dt.date) -> str:
    """fact_releve_2026_01: the table's name and the month."""
    return f"{table}_{month:%Y_%m}"


def ensure_month_partitions(conn: psycopg.Connection, months: Iterable[dt.date]) -> list[str]:
    """Create every missing partition of `months` (under the publish lock, so a concurrent publish
    or rebuild never races it); the partitions created, as schema.table. A month is its first day:
    any other date would name the month's partition with bounds that are not the month's."""
    months = set(months)
    odd = sorted(month for month in months if month.day != 1)
    if odd:
        raise ValueError(f"a month is its first day, not {', '.join(map(str, odd))}")
    wanted = {
        (schema, partition_name(table, month)): (table, month)
        for month in months
        for schema, table in PARTITIONED_BY_MONTH
    }
    if not wanted:
        return []
    schemas, names = zip(*wanted, strict=True)
    present = set(conn.execute(EXISTING, {"schemas": list(schemas), "names": list(names)}).fetchall())
    missing = sorted(set(wanted) - present)
    if not missing:
        return []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (MART_NAMESPACE, PUBLISH_KEY))
        for schema, name in missing:
            table, month = wanted[(schema, name)]
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})"
                ).format(
                    sql.Identifier(schema, name),
                    sql.Identifier(schema, table),
                    sql.Literal(month),
                    sql.Literal(next_month(month)),
                )
            )
    return [f"{schema}.{name}" for schema, name in missing]
