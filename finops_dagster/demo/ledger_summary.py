"""What the demo shows of allocation and month close once its run is published.

The demo's run publishes its months with the demo's allocation rules; this prints, per month and
currency, the direct cost, what the rules moved and the cost left unallocated in each view, then closes
the demo's first month so the UI, the API and the next nightly show a closed month. Closing is what a
finance team does by hand (`finops-dagster close`); the demo does it to show what follows.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import psycopg

from finops_dagster.mart.month_close import MonthCloseError, close_month, month_status
from finops_dagster.releve import UNALLOCATED_APPLICATION

DEMO_CLOSER = "finops-demo"

ALLOCATION_SUMMARY = """
SELECT a.period_month, a.currency,
       sum(a.direct_cost) AS direct,
       sum(a.allocated_in) AS moved,
       sum(a.direct_cost) FILTER (WHERE a.application_id = %(unallocated)s) AS unallocated_direct,
       sum(a.total_cost) FILTER (WHERE a.application_id = %(unallocated)s) AS unallocated_allocated,
       (SELECT count(DISTINCT f.rule_id) FROM finops.fact_allocation f
         WHERE f.period_month = a.period_month AND f.currency = a.currency) AS rules
  FROM finops.fact_releve_allocated a
 WHERE a.period_month BETWEEN %(first)s AND %(last)s
 GROUP BY a.period_month, a.currency
 ORDER BY a.period_month, a.currency
"""


def print_allocation(conn: psycopg.Connection, first: dt.date, last: dt.date) -> None:
    """Per month and currency: direct cost, moved by the rules, unallocated before and after them."""
    rows = conn.execute(
        ALLOCATION_SUMMARY, {"unallocated": UNALLOCATED_APPLICATION, "first": first, "last": last}
    ).fetchall()
    if not rows:
        return
    header = (
        f"{'month':<8} {'cur':<4} {'direct cost':>16} {'moved by rules':>16} {'rules':>6} "
        f"{'unallocated direct':>19} {'unallocated after':>18}"
    )
    print("\nAllocation (GET /api/v1/costs/…?view=allocated; the direct view is unchanged):")
    print(header)
    print("-" * len(header))
    for month, currency, direct, moved, unallocated_direct, unallocated_after, rules in rows:
        print(
            f"{month:%Y-%m}  {currency:<4} {_amount(direct):>16} {_amount(moved):>16} {rules:>6} "
            f"{_amount(unallocated_direct):>19} {_amount(unallocated_after):>18}"
        )


def close_first_month(conn: psycopg.Connection, month: dt.date, cli: str) -> None:
    """Close the demo's first month (once: a demo run again finds it closed and says so)."""
    try:
        status = close_month(conn, month, by=DEMO_CLOSER, note="closed by the demo to show a closed month")
        print(f"\nMonth close: {status.describe()}.")
    except MonthCloseError as refused:
        current = month_status(conn, month)
        print(f"\nMonth close: {current.describe() if current else refused}.")
    print(
        f"  The nightly skips {month:%Y-%m} and says so; `{cli} restate {month:%Y-%m}` computes a "
        f"restatement to approve; GET /api/v1/months/{month:%Y-%m} shows its status and version."
    )


def _amount(value: Decimal | None) -> str:
    return f"{value or Decimal(0):,.2f}"
