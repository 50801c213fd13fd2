"""Reconciliation: for each month a run loaded, what the source said equals relevés plus rejects.

Per usage unit where the source carries quantities (the domains priced with rate cards), per
billing currency where it carries cost (bills: relevés count what was billed, before conversion).
The tolerance is the rounding the relevé contract allows: half a unit of the sixth decimal per
row summed, plus one for the total. Blocking: a load that lost anything is not published.

Those totals come from the same scan that made the relevés. Where a load carries a file ledger
(the public_cloud export files: each file counted by an independent pass, see
domains/public_cloud/ledger.py), every file's equation must hold too, so a reader that drops,
duplicates or misdates rows fails the check naming the file and the figures (DESIGN §5.8).
"""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

import psycopg
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    MetadataValue,
    asset_check,
)
from psycopg import sql

from finops_dagster.domains.public_cloud.ledger import ledger_breaks
from finops_dagster.mart.staging import domain_table
from finops_dagster.releve import QUANTITY_SCALE
from finops_dagster.resources.postgres import PostgresResource

HALF_UNIT = QUANTITY_SCALE / 2

Measure = Literal["quantity", "cost"]
"""What a domain's sources carry, and so what its reconciliation balances."""


@dataclass(frozen=True)
class UnitBalance:
    period_month: dt.date
    unit: str
    source: Decimal
    releves: Decimal
    rejects: Decimal
    rows: int

    @property
    def difference(self) -> Decimal:
        return self.source - self.releves - self.rejects

    @property
    def balanced(self) -> bool:
        return abs(self.difference) <= HALF_UNIT * (self.rows + 1)


BALANCE_QUERY = """
    WITH source AS (
        SELECT period_month, kv.key AS measure_key, kv.value::numeric AS amount
        FROM finops.domain_load, jsonb_each_text({source_totals}) AS kv
        WHERE domain_id = %(domain)s AND run_id = %(run)s
    ), releves AS (
        SELECT period_month, {releve_key} AS measure_key, sum({releve_amount}) AS amount, count(*) AS n
        FROM {table} WHERE run_id = %(run)s GROUP BY 1, 2
    ), rejects AS (
        SELECT period_month, {reject_key} AS measure_key, sum({reject_amount}) AS amount, count(*) AS n
        FROM finops.releve_reject
        WHERE domain_id = %(domain)s AND run_id = %(run)s AND {reject_key} IS NOT NULL
          AND {reject_amount} IS NOT NULL
        GROUP BY 1, 2
    ), loaded AS (
        SELECT period_month FROM finops.domain_load WHERE domain_id = %(domain)s AND run_id = %(run)s
    )
    SELECT k.period_month, k.measure_key,
           coalesce(s.amount, 0), coalesce(r.amount, 0), coalesce(j.amount, 0),
           coalesce(r.n, 0) + coalesce(j.n, 0)
    FROM (SELECT period_month, measure_key FROM source
          UNION SELECT period_month, measure_key FROM releves
          UNION SELECT period_month, measure_key FROM rejects) AS k
    JOIN loaded USING (period_month)
    LEFT JOIN source s USING (period_month, measure_key)
    LEFT JOIN releves r USING (period_month, measure_key)
    LEFT JOIN rejects j USING (period_month, measure_key)
    ORDER BY 1, 2
"""
"""Per month and key (a unit, or a billing currency): what the source said, what the relevés and
the rejects carry, and how many rows they are (the rounding tolerance)."""

QUANTITY_COLUMNS = {
    "source_totals": "source_totals",
    "releve_key": "usage_unit",
    "releve_amount": "usage_quantity",
    "reject_key": "usage_unit",
    "reject_amount": "usage_quantity",
}
COST_COLUMNS = {
    "source_totals": "source_costs",
    "releve_key": "coalesce(billed_currency, currency)::text",
    "releve_amount": "coalesce(billed_cost, total_cost)",
    "reject_key": "currency::text",
    "reject_amount": "cost",
}
"""A relevé converted from another currency counts its billed amount in that currency; the others
count their total cost in their own currency."""


def _balances(
    conn: psycopg.Connection, domain_id: str, run_id: str, columns: dict[str, str]
) -> list[UnitBalance]:
    query = sql.SQL(BALANCE_QUERY).format(
        table=domain_table(domain_id), **{name: sql.SQL(expression) for name, expression in columns.items()}
    )
    rows = conn.execute(query, {"domain": domain_id, "run": run_id}).fetchall()
    return [UnitBalance(*row) for row in rows]


def unit_balances(conn: psycopg.Connection, domain_id: str, run_id: str) -> list[UnitBalance]:
    """Source, relevé and reject quantities per month and unit for one domain's loads of a run."""
    return _balances(conn, domain_id, run_id, QUANTITY_COLUMNS)


def cost_balances(conn: psycopg.Connection, domain_id: str, run_id: str) -> list[UnitBalance]:
    """Billed cost per month and billing currency: the source's, the relevés' and the rejects'."""
    return _balances(conn, domain_id, run_id, COST_COLUMNS)


BALANCES = {"quantity": unit_balances, "cost": cost_balances}


def file_ledger_breaks(conn: psycopg.Connection, domain_id: str, run_id: str) -> tuple[int, list[str]]:
    """How many files the run's loads of a domain hold a ledger for, and those that do not add up
    (each named, with its figures, prefixed by its month)."""
    rows = conn.execute(
        "SELECT period_month, details FROM finops.domain_load WHERE domain_id = %s AND run_id = %s "
        "ORDER BY period_month",
        (domain_id, run_id),
    ).fetchall()
    files = 0
    breaks = []
    for period_month, details in rows:
        for read in (details or {}).values():
            if isinstance(read, dict):
                files += len(read.get("ledger", []))
        breaks += [f"{period_month:%Y-%m} {problem}" for problem in ledger_breaks(details or {})]
    return files, breaks


def build_reconciliation_check(
    asset_key: AssetKey, domain_id: str, measure: Measure = "quantity"
) -> AssetChecksDefinition:
    balances_of = BALANCES[measure]
    heading = "unit" if measure == "quantity" else "billing currency"

    @asset_check(asset=asset_key, name="reconciliation", blocking=True)
    def reconciliation(context: AssetCheckExecutionContext, postgres: PostgresResource) -> AssetCheckResult:
        """Nothing lost: per month and unit (or billing currency), what the source said = relevés +
        rejects (DESIGN §5.4)."""
        with postgres.connect() as conn:
            balances = balances_of(conn, domain_id, context.run.run_id)
            ledger_files, ledger_broken = file_ledger_breaks(conn, domain_id, context.run.run_id)
        broken = [b for b in balances if not b.balanced]
        table = [
            f"| month | {heading} | source | relevés | rejects | difference |",
            "|---|---|---:|---:|---:|---:|",
        ]
        table += [
            f"| {b.period_month:%Y-%m} | {b.unit} | {b.source} | {b.releves} | {b.rejects} | {b.difference} |"
            for b in balances
        ]
        description = (
            f"{len(broken)} month/{heading} pair(s) do not add up: "
            + "; ".join(f"{b.period_month:%Y-%m} {b.unit} off by {b.difference}" for b in broken[:5])
            if broken
            else f"{len(balances)} month/{heading} pair(s) balance"
        )
        metadata = {
            "balances": MetadataValue.md("\n".join(table)),
            "unbalanced": MetadataValue.int(len(broken)),
        }
        if ledger_files:
            description += (
                f"; file ledger: {len(ledger_broken)} of {ledger_files} file(s) do not add up: "
                + "; ".join(ledger_broken[:5])
                if ledger_broken
                else f"; file ledger: {ledger_files} file(s) add up"
            )
            metadata["file_ledger_files"] = MetadataValue.int(ledger_files)
            metadata["file_ledger_unbalanced"] = MetadataValue.int(len(ledger_broken))
        return AssetCheckResult(
            passed=not broken and not ledger_broken,
            severity=AssetCheckSeverity.ERROR,
            description=description,
            metadata=metadata,
        )

    return reconciliation
