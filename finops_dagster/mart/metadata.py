"""Materialization metadata of one month: the figures the UI plots across partitions.

A run covers several months (single-run backfills), and Dagster records one materialization per
partition of the run. Each month's event carries that month's own figures (context.add_asset_metadata
with the month's partition key), so the UI's plots by partition show each month, not the run's
totals. The figures are read back from what the mart holds for the month (the run's staged relevés
and rejects, or the published month), per currency, and every cost's label names its currency
(`total_cost_eur`): amounts in different currencies are never added.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg
from dagster import MetadataValue, TableColumn, TableRecord, TableSchema
from psycopg import sql

from finops_dagster.mart.staging import domain_table
from finops_dagster.releve import UNALLOCATED_APPLICATION


@dataclass(frozen=True)
class CurrencyCost:
    """Relevés' cost of a month in one currency, and the part on the unallocated application."""

    currency: str
    total: Decimal
    unallocated: Decimal


@dataclass(frozen=True)
class ReasonCount:
    """The rejects of a month with one reason code (and one currency, where they carry cost)."""

    code: str
    count: int
    currency: str | None
    cost: Decimal | None


@dataclass(frozen=True)
class MonthFigures:
    period_month: dt.date
    releves: int
    costs: tuple[CurrencyCost, ...]
    reasons: tuple[ReasonCount, ...]

    @property
    def rejects(self) -> int:
        return sum(reason.count for reason in self.reasons)

    def rejected_costs(self) -> dict[str, Decimal]:
        """The rejects' cost per currency (rejects of metered usage carry a quantity, no cost)."""
        costs: dict[str, Decimal] = {}
        for reason in self.reasons:
            if reason.currency is not None and reason.cost is not None:
                costs[reason.currency] = costs.get(reason.currency, Decimal(0)) + reason.cost
        return costs


def staged_month_figures(
    conn: psycopg.Connection, domain_id: str, month: dt.date, run_id: str
) -> MonthFigures:
    """What this run staged for a domain-month: its relevés and its rejects."""
    releves, costs = _costs(
        conn,
        sql.SQL(
            "SELECT {columns} FROM {table} WHERE period_month = %s AND run_id = %s GROUP BY currency"
        ).format(columns=COST_COLUMNS, table=domain_table(domain_id)),
        (UNALLOCATED_APPLICATION, month, run_id),
    )
    reasons = _reasons(
        conn,
        sql.SQL(
            "SELECT {columns} FROM finops.releve_reject AS j "
            "WHERE j.domain_id = %s AND j.period_month = %s AND j.run_id = %s GROUP BY 1, 3"
        ).format(columns=REASON_COLUMNS),
        (domain_id, month, run_id),
    )
    return MonthFigures(month, releves, costs, reasons)


def published_month_figures(conn: psycopg.Connection, month: dt.date) -> MonthFigures:
    """What fact_releve holds for a month once published (every domain), with the published rejects."""
    releves, costs = _costs(
        conn,
        sql.SQL("SELECT {columns} FROM finops.fact_releve WHERE period_month = %s GROUP BY currency").format(
            columns=COST_COLUMNS
        ),
        (UNALLOCATED_APPLICATION, month),
    )
    reasons = _reasons(
        conn,
        sql.SQL(
            "SELECT {columns} FROM finops.published_reject AS j WHERE j.period_month = %s GROUP BY 1, 3"
        ).format(columns=REASON_COLUMNS),
        (month,),
    )
    return MonthFigures(month, releves, costs, reasons)


COST_COLUMNS = sql.SQL(
    "currency, count(*), sum(total_cost), coalesce(sum(total_cost) FILTER (WHERE application_id = %s), 0)"
)
REASON_COLUMNS = sql.SQL("j.reason_code, count(*), j.currency, sum(j.cost)")


def _costs(
    conn: psycopg.Connection, statement: sql.Composed, params: tuple[Any, ...]
) -> tuple[int, tuple[CurrencyCost, ...]]:
    rows = conn.execute(statement, params).fetchall()
    costs = tuple(
        CurrencyCost(currency.strip(), total, unallocated)
        for currency, _, total, unallocated in sorted(rows, key=lambda row: row[0])
    )
    return sum(row[1] for row in rows), costs


def _reasons(
    conn: psycopg.Connection, statement: sql.Composed, params: tuple[Any, ...]
) -> tuple[ReasonCount, ...]:
    rows = conn.execute(statement, params).fetchall()
    return tuple(
        ReasonCount(code, count, None if currency is None else currency.strip(), cost)
        for code, count, currency, cost in sorted(rows, key=lambda row: (row[0], row[2] or ""))
    )


def month_metadata(figures: MonthFigures) -> dict[str, Any]:
    """One month's metadata: counts, and per currency the cost, the unallocated cost and share, the
    rejects' cost (floats for the plots, the exact amount as text next to each total), and the
    table of reject reasons."""
    metadata: dict[str, Any] = {
        "period_month": MetadataValue.text(f"{figures.period_month:%Y-%m}"),
        "releves": MetadataValue.int(figures.releves),
        "rejects": MetadataValue.int(figures.rejects),
    }
    for cost in figures.costs:
        label = cost.currency.lower()
        share = float(cost.unallocated / cost.total) if cost.total else 0.0
        metadata[f"total_cost_{label}"] = MetadataValue.float(float(cost.total))
        metadata[f"total_cost_exact_{label}"] = MetadataValue.text(f"{cost.total} {cost.currency}")
        metadata[f"unallocated_cost_{label}"] = MetadataValue.float(float(cost.unallocated))
        metadata[f"unallocated_share_{label}"] = MetadataValue.float(round(share, 6))
    for currency, rejected in sorted(figures.rejected_costs().items()):
        label = currency.lower()
        metadata[f"rejected_cost_{label}"] = MetadataValue.float(float(rejected))
        metadata[f"rejected_cost_exact_{label}"] = MetadataValue.text(f"{rejected} {currency}")
    metadata["reject_reasons"] = reasons_table(figures.reasons)
    return metadata


REASONS_SCHEMA = TableSchema(
    columns=[
        TableColumn("reason_code", "string", description="stable code (finops.reject_reason)"),
        TableColumn("rejects", "int"),
        TableColumn("cost", "string", description="exact cost of the rejects, where they carry one"),
        TableColumn("currency", "string"),
    ]
)


def reasons_table(reasons: Sequence[ReasonCount]) -> MetadataValue:
    """The month's rejects by reason code (one row per code and currency), as a table the UI shows."""
    return MetadataValue.table(
        records=[
            TableRecord(
                {
                    "reason_code": reason.code,
                    "rejects": reason.count,
                    "cost": "" if reason.cost is None else str(reason.cost),
                    "currency": reason.currency or "",
                }
            )
            for reason in reasons
        ],
        schema=REASONS_SCHEMA,
    )
