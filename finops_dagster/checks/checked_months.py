"""Which months a mart-wide check reads: the months its run published, or every month.

The allocation and aggregate checks compare the mart with itself, month by month. A nightly only
rewrites the months it publishes (their facts, allocation and aggregates switch together in one
transaction), so checking those months proves what the night changed, and the check's work stays
proportional to the night's months instead of growing with history. A run that published nothing (a
check launched alone from the UI, every month of the run closed) checks every month, and so does the
full rebuild of the aggregates.
"""

import datetime as dt
from dataclasses import dataclass

import psycopg
from psycopg import sql

from finops_dagster.mart.aggregates import quarter_months

RUN_MONTHS = """
SELECT DISTINCT period_month FROM finops.domain_load
WHERE run_id = %s AND published_at IS NOT NULL
ORDER BY 1
"""


@dataclass(frozen=True)
class CheckedMonths:
    """The months a check compares; `months` None: every month of the mart."""

    months: list[dt.date] | None

    @property
    def params(self) -> dict[str, list[dt.date] | None]:
        """The `%(months)s` parameter of the checks' SQL (NULL: no month filter)."""
        return {"months": self.months}

    def with_their_quarters(self) -> "CheckedMonths":
        """Every month of the quarters holding these months: what a quarter's total is made of (a
        quarter's first month is among them, so it also selects the quarter aggregate's rows)."""
        if self.months is None:
            return self
        return CheckedMonths(quarter_months(set(self.months)))

    def describe(self) -> str:
        if self.months is None:
            return "every month"
        return ", ".join(f"{month:%Y-%m}" for month in self.months)


EVERY_MONTH = CheckedMonths(None)


def published_by_run(conn: psycopg.Connection, run_id: str) -> CheckedMonths:
    """The months `run_id` published; every month when it published none."""
    months = [row[0] for row in conn.execute(RUN_MONTHS, (run_id,)).fetchall()]
    return CheckedMonths(months) if months else EVERY_MONTH


def in_checked_months(column: str = "period_month") -> sql.Composed:
    """The filter a checked query puts on its tables' month `column` (reads `%(months)s`)."""
    return sql.SQL("({months}::date[] IS NULL OR {column} = ANY({months}::date[]))").format(
        months=sql.Placeholder("months"), column=sql.Identifier(column)
    )
