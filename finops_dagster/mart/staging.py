"""Staging a domain's load for a month: its relevés into the domain's table, its rejects, its manifest.

Staged rows are keyed by run, so concurrent runs never overwrite each other's loads; the
publish moves exactly one run's rows and cleans the others. COPY carries the rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

import psycopg
from psycopg import sql

from finops_dagster.mart.locks import STAGE_NAMESPACE
from finops_dagster.releve import REJECT_COLUMNS, RELEVE_COLUMNS, DomainLoad, Releve, ReleveBatch


def domain_table(domain_id: str) -> sql.Composed:
    """The table that holds a domain asset's relevés: finops.<domain>_releves."""
    return sql.SQL("finops.{}").format(sql.Identifier(f"{domain_id}_releves"))


@dataclass(frozen=True)
class StagedLoad:
    domain_id: str
    period_month: str
    releves: int
    rejects: int
    total_cost: Decimal
    unallocated_cost: Decimal


def stage_domain_load(conn: psycopg.Connection, load: DomainLoad, run_id: str) -> StagedLoad:
    """Write one month's load of one domain for this run, replacing an earlier attempt of the same run."""
    table = domain_table(load.domain_id)
    with conn.transaction():
        conn.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
            (STAGE_NAMESPACE, f"{load.domain_id}/{load.period_month}"),
        )
        _delete_attempt(conn, table, load, run_id)
        _copy_releves(conn, table, load.releves)
        _copy_rows(
            conn,
            sql.SQL("COPY finops.releve_reject ({}) FROM STDIN").format(
                sql.SQL(", ").join(map(sql.Identifier, REJECT_COLUMNS))
            ),
            (_reject_row(reject.as_row()) for reject in load.rejects),
        )
        conn.execute(
            """
            INSERT INTO finops.domain_load (domain_id, period_month, run_id, releve_count, reject_count,
                total_cost, source_record_count, source_totals, source_costs, details)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            """,
            (
                load.domain_id,
                load.period_month,
                run_id,
                len(load.releves),
                len(load.rejects),
                load.total_cost,
                load.source_record_count,
                json.dumps({unit: str(quantity) for unit, quantity in load.source_totals.items()}),
                json.dumps({currency: str(cost) for currency, cost in load.source_costs.items()}),
                json.dumps(load.details, default=str),
            ),
        )
    return StagedLoad(
        load.domain_id,
        f"{load.period_month:%Y-%m}",
        len(load.releves),
        len(load.rejects),
        load.total_cost,
        load.unallocated_cost,
    )


def _delete_attempt(conn: psycopg.Connection, table: sql.Composed, load: DomainLoad, run_id: str) -> None:
    month, domain = load.period_month, load.domain_id
    conn.execute(
        sql.SQL("DELETE FROM {} WHERE period_month = %s AND run_id = %s").format(table), (month, run_id)
    )
    conn.execute(
        "DELETE FROM finops.releve_reject WHERE domain_id = %s AND period_month = %s AND run_id = %s",
        (domain, month, run_id),
    )
    conn.execute(
        "DELETE FROM finops.domain_load WHERE domain_id = %s AND period_month = %s AND run_id = %s",
        (domain, month, run_id),
    )


def _copy_releves(conn: psycopg.Connection, table: sql.Composed, releves: Sequence[Releve]) -> None:
    """A batch's CSV goes to the server as it is; `Releve` objects row by row."""
    columns = sql.SQL(", ").join(map(sql.Identifier, RELEVE_COLUMNS))
    if isinstance(releves, ReleveBatch):
        statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(table, columns)
        with conn.cursor() as cur, cur.copy(statement) as copy:
            copy.write(releves.rows_csv)
        return
    _copy_rows(
        conn,
        sql.SQL("COPY {} ({}) FROM STDIN").format(table, columns),
        (releve.as_row() for releve in releves),
    )


def _reject_row(row: tuple[object, ...]) -> tuple[object, ...]:
    payload_index = REJECT_COLUMNS.index("raw_payload")
    payload = row[payload_index]
    encoded = None if payload is None else json.dumps(payload, default=str)
    return (*row[:payload_index], encoded, *row[payload_index + 1 :])


def _copy_rows(conn: psycopg.Connection, statement: sql.Composed, rows: Iterable[tuple[object, ...]]) -> None:
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
