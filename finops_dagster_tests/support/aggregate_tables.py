"""Every per-month aggregate table's rows, to compare what publishing maintained with a rebuild."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from finops_dagster.mart.aggregates import AGGREGATES

Snapshot = dict[str, list[tuple[Any, ...]]]


def snapshot(conn: psycopg.Connection) -> Snapshot:
    """Every aggregate's rows, sorted."""
    return {
        table: sorted(
            conn.execute(sql.SQL("SELECT * FROM finops.{}").format(sql.Identifier(table))).fetchall(),
            key=repr,
        )
        for table in AGGREGATES
    }
