"""Reconciliation: for each month a run loaded, what the source said equals relevés plus rejects.

Per usage unit where the source carries quantities (the domains priced with rate cards), per
billing currency where it carries cost (bills: relevés count what was billed, before conversion).
The tolerance is the rounding the relevé contract allows: half a unit of the sixth decimal per
row summed, plus one for the total. Blocking: a load that lost anything is not published.

Where a domain keeps a record ledger (`details.record_ledger` of its load: per source, the records
the source holds for the month, counted where the source answers, by a pass that does not share the
reader's classification), the check also balances records, per source and exactly: ledger =
relevés' `source_record_count` + rejects' `source_record_count`. So a reader that drops or
duplicates records fails it even where quantities would hide it.

Those totals come from the same scan that made the relevés. Where a load carries a file ledger
(the public_cloud export files: each file counted by an independent pass, see
domains/public_cloud/ledger.py), every file's equation must hold too, so a reader that drops,
duplicates or misdates rows fails the check naming the file and the figures (docs/design.md §5.8).
"""

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
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

SUPERSEDED = """
SELECT to_char(period_month, 'YYYY-MM'), superseded_by FROM finops.domain_load
WHERE domain_id = %s AND run_id = %s AND superseded_by IS NOT NULL ORDER BY period_month
"""


def superseded_loads(conn: psycopg.Connection, domain_id: str, run_id: str) -> list[tuple[str, str]]:
    """(month, run) for each of this run's loads that another run's publish discarded: their staged
    rows are gone, so balancing them would report a loss that is not one."""
    return [(month, winner) for month, winner in conn.execute(SUPERSEDED, (domain_id, run_id)).fetchall()]


def superseded_result(superseded: list[tuple[str, str]]) -> AssetCheckResult:
    described = "; ".join(f"{month} by run {winner}" for month, winner in superseded)
    return AssetCheckResult(
        passed=False,
        severity=AssetCheckSeverity.ERROR,
        description=(
            f"superseded: {described} published after this run loaded, which discarded this run's staged "
            "relevés; nothing was lost, nothing of this run is published. Run the month again for fresh data"
        ),
        metadata={"superseded": MetadataValue.int(len(superseded))},
    )


@dataclass(frozen=True)
class RecordBalance:
    """A month's record ledger of one source: records it holds, and where the load accounts for them."""

    period_month: dt.date
    origin: str
    read: int
    releves: int
    rejects: int

    @property
    def difference(self) -> int:
        return self.read - self.releves - self.rejects

    def describe(self, domain_id: str) -> str:
        what = "unaccounted for" if self.difference > 0 else "counted twice or invented"
        return (
            f"{self.period_month:%Y-%m} {domain_id} {self.origin}: {self.read} records in the source, "
            f"{self.releves} in relevés + {self.rejects} in rejects ({abs(self.difference)} {what})"
        )


RECORD_BALANCE_QUERY = """
    SELECT l.period_month, ledger.key, ledger.value::bigint,
        (SELECT coalesce(sum(r.source_record_count), 0) FROM {table} r
         WHERE r.run_id = l.run_id AND r.period_month = l.period_month AND r.source = ledger.key),
        (SELECT coalesce(sum(j.source_record_count), 0) FROM finops.releve_reject j
         WHERE j.domain_id = l.domain_id AND j.run_id = l.run_id AND j.period_month = l.period_month
           AND j.source = ledger.key)
    FROM finops.domain_load l,
         jsonb_each_text(coalesce(l.details -> 'record_ledger', '{{}}'::jsonb)) AS ledger
    WHERE l.domain_id = %(domain)s AND l.run_id = %(run)s
    ORDER BY 1, 2
"""


def record_balances(conn: psycopg.Connection, domain_id: str, run_id: str) -> list[RecordBalance]:
    """Per month and source of the run's loads that keep a record ledger: the records the source
    holds, and the relevés' and rejects' records of that source."""
    query = sql.SQL(RECORD_BALANCE_QUERY).format(table=domain_table(domain_id))
    rows = conn.execute(query, {"domain": domain_id, "run": run_id}).fetchall()
    return [RecordBalance(*row) for row in rows]


def _record_ledger_table(records: list[RecordBalance]) -> str:
    lines = [
        "| month | source | records in the source | in relevés | in rejects | difference |",
        "|---|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {b.period_month:%Y-%m} | {b.origin} | {b.read} | {b.releves} | {b.rejects} | {b.difference} |"
        for b in records
    ]
    return "\n".join(lines)


def shown(amount: Decimal) -> str:
    """An amount as people read it, at the mart's scale (six decimals, grouped thousands): sums of
    numeric columns come back with up to 18 decimals and tiny differences print as `3.71E-8`. Only
    for display: every comparison uses the exact value."""
    rounded = amount.quantize(QUANTITY_SCALE, rounding=ROUND_HALF_EVEN)
    return f"{abs(rounded) if rounded == 0 else rounded:,f}"


def balance_table(balances: list[UnitBalance], heading: str) -> str:
    lines = [
        f"| month | {heading} | source | relevés | rejects | difference |",
        "|---|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {b.period_month:%Y-%m} | {b.unit} | {shown(b.source)} | {shown(b.releves)} | {shown(b.rejects)} "
        f"| {shown(b.difference)} |"
        for b in balances
    ]
    return "\n".join(lines)


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
        rejects (docs/design.md §5.4)."""
        with postgres.connect() as conn:
            superseded = superseded_loads(conn, domain_id, context.run.run_id)
            balances = balances_of(conn, domain_id, context.run.run_id)
            records = record_balances(conn, domain_id, context.run.run_id)
            ledger_files, ledger_broken = file_ledger_breaks(conn, domain_id, context.run.run_id)
        if superseded:
            return superseded_result(superseded)
        broken = [b for b in balances if not b.balanced]
        broken_records = [b for b in records if b.difference != 0]
        description = (
            f"{len(broken)} month/{heading} pair(s) do not add up: "
            + "; ".join(f"{b.period_month:%Y-%m} {b.unit} off by {shown(b.difference)}" for b in broken[:5])
            if broken
            else f"{len(balances)} month/{heading} pair(s) balance"
        )
        if broken_records:
            description = "; ".join(
                [b.describe(domain_id) for b in broken_records[:5]] + ([description] if broken else [])
            )
        metadata = {
            "balances": MetadataValue.md(balance_table(balances, heading)),
            "unbalanced": MetadataValue.int(len(broken)),
        }
        if records:
            metadata["record_ledger"] = MetadataValue.md(_record_ledger_table(records))
            metadata["unbalanced_record_months"] = MetadataValue.int(len(broken_records))
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
            passed=not broken and not broken_records and not ledger_broken,
            severity=AssetCheckSeverity.ERROR,
            description=description,
            metadata=metadata,
        )

    return reconciliation
