"""The allocation created or lost nothing: a blocking check on fact_releve, by plain SQL sums.

It shares nothing with the engine (allocation/engine.py) or the code that stores its result
(mart/allocation.py): three sums straight from the tables, over the months the run published (every
month when it published none: checks/checked_months.py), so a fault in the engine, a lost write or a
hand-edited row of a month shows when that month is published, not on an invoice.

  1. per month and currency, the allocated view adds up to the published relevés;
  2. per month, application, product and currency, the allocated table starts from the published
     relevés (its direct_cost is fact_releve's);
  3. per month, application, product and currency, what the allocation changed (total - direct) is
     what the lineage (fact_allocation) says was received minus what was given away.
"""

from dataclasses import dataclass
from typing import LiteralString

import psycopg
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    MetadataValue,
    asset_check,
)
from psycopg import sql

from finops_dagster.checks.checked_months import (
    EVERY_MONTH,
    CheckedMonths,
    in_checked_months,
    published_by_run,
)
from finops_dagster.mart.assets import FACT_RELEVE
from finops_dagster.resources.postgres import PostgresResource

CHECK_NAME = "allocation_balances"
SHOWN = 10

MONTH_TOTALS = """
WITH f AS (SELECT period_month, currency, sum(total_cost) AS total FROM finops.fact_releve
           WHERE {in_months} GROUP BY 1, 2),
     a AS (SELECT period_month, currency, sum(total_cost) AS total
           FROM finops.fact_releve_allocated WHERE {in_months} GROUP BY 1, 2)
SELECT period_month, currency, coalesce(f.total, 0), coalesce(a.total, 0)
FROM f FULL JOIN a USING (period_month, currency)
WHERE coalesce(f.total, 0) <> coalesce(a.total, 0)
ORDER BY 1, 2
"""

DIRECT_COSTS = """
WITH f AS (SELECT period_month, application_id, product_id, currency, sum(total_cost) AS cost
           FROM finops.fact_releve WHERE {in_months} GROUP BY 1, 2, 3, 4),
     a AS (SELECT period_month, application_id, product_id, currency, direct_cost AS cost
           FROM finops.fact_releve_allocated WHERE {in_months})
SELECT period_month, application_id || ' ' || product_id || ' ' || currency,
       coalesce(f.cost, 0), coalesce(a.cost, 0)
FROM f FULL JOIN a USING (period_month, application_id, product_id, currency)
WHERE coalesce(f.cost, 0) <> coalesce(a.cost, 0)
ORDER BY 1, 2
"""

LINEAGE = """
WITH moved AS (
    SELECT period_month, allocated_resource_id AS application_id, product_id, currency,
           allocated_cost AS net
    FROM finops.fact_allocation WHERE {in_months}
    UNION ALL
    SELECT period_month, source_application_id, product_id, currency, -allocated_cost
    FROM finops.fact_allocation WHERE {in_months}
),
m AS (SELECT period_month, application_id, product_id, currency, sum(net) AS net
      FROM moved GROUP BY 1, 2, 3, 4),
a AS (SELECT period_month, application_id, product_id, currency, total_cost - direct_cost AS net
      FROM finops.fact_releve_allocated WHERE {in_months})
SELECT period_month, application_id || ' ' || product_id || ' ' || currency,
       coalesce(m.net, 0), coalesce(a.net, 0)
FROM m FULL JOIN a USING (period_month, application_id, product_id, currency)
WHERE coalesce(m.net, 0) <> coalesce(a.net, 0)
ORDER BY 1, 2
"""

LINEAGE_SIZE = "SELECT count(DISTINCT period_month), count(*) FROM finops.fact_allocation WHERE {in_months}"


@dataclass(frozen=True)
class Imbalance:
    what: str
    month: object
    key: str
    expected: object
    found: object

    def shown(self) -> str:
        return f"{self.what} {self.month:%Y-%m} {self.key}: expected {self.expected}, found {self.found}"


CHECKS = (("month total", MONTH_TOTALS), ("direct cost", DIRECT_COSTS), ("lineage", LINEAGE))


def checked(query: LiteralString) -> sql.Composed:
    """One of the three sums, over the checked months."""
    return sql.SQL(query).format(in_months=in_checked_months())


def imbalances(
    conn: psycopg.Connection, *, months: CheckedMonths = EVERY_MONTH, shown: int | None = None
) -> list[Imbalance]:
    """Every month, currency or line of `months` where the allocation does not balance (empty: it
    does); with `shown`, only the first `shown` of each sum (`imbalance_count` counts them all)."""
    found: list[Imbalance] = []
    for what, query in CHECKS:
        statement = (
            checked(query)
            if shown is None
            else sql.SQL("{} LIMIT {}").format(checked(query), sql.Literal(shown))
        )
        found.extend(Imbalance(what, *row) for row in conn.execute(statement, months.params).fetchall())
    return found


def imbalance_count(conn: psycopg.Connection, months: CheckedMonths = EVERY_MONTH) -> int:
    """How many imbalances the three sums find, counted in PostgreSQL: a broken mart can hold
    millions, which the check counts without bringing them into memory."""
    total = 0
    for _, query in CHECKS:
        counted = sql.SQL("SELECT count(*) FROM ({}) AS imbalances").format(checked(query))
        row = conn.execute(counted, months.params).fetchone()
        total += int(row[0]) if row else 0
    return total


@asset_check(
    asset=FACT_RELEVE,
    name=CHECK_NAME,
    blocking=True,
    description=(
        "Allocation created and lost nothing: per month and currency the allocated view adds up to the "
        "published relevés, and every allocated line is its direct cost plus what the lineage moved."
    ),
)
def allocation_balances(context: AssetCheckExecutionContext, postgres: PostgresResource) -> AssetCheckResult:
    with postgres.connect() as conn:
        months = published_by_run(conn, context.run.run_id)
        found = imbalances(conn, months=months, shown=SHOWN)
        count = imbalance_count(conn, months) if found else 0
        lineage = conn.execute(checked(LINEAGE_SIZE), months.params).fetchone()
    month_count, moves = lineage if lineage else (0, 0)
    for imbalance in found[:SHOWN]:
        context.log.error(imbalance.shown())
    return AssetCheckResult(
        passed=count == 0,
        severity=AssetCheckSeverity.ERROR,
        description=(
            f"{count} imbalance(s) between the allocation and the published relevés ({months.describe()})"
            if count
            else f"the allocation balances with the published relevés ({months.describe()})"
        ),
        metadata={
            "imbalances": MetadataValue.int(count),
            "shown": MetadataValue.text("; ".join(i.shown() for i in found[:SHOWN]) or "none"),
            "checked_months": MetadataValue.text(months.describe()),
            "months_with_moves": MetadataValue.int(int(month_count)),
            "moves": MetadataValue.int(int(moves)),
        },
    )
