"""The reconciliation check's pieces: superseded loads, and amounts shown at the mart's scale."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import psycopg

from finops_dagster.checks.reconciliation import (
    UnitBalance,
    balance_table,
    shown,
    superseded_loads,
    superseded_result,
)

APRIL = dt.date(2025, 4, 1)


def test_a_superseded_load_is_reported_as_superseded_not_as_a_loss(mart: psycopg.Connection) -> None:
    for run_id in ("run-a", "run-b"):
        mart.execute(
            "INSERT INTO finops.domain_load (domain_id, period_month, run_id, releve_count, reject_count, "
            "total_cost, source_record_count, source_totals) "
            "VALUES ('open_legacy', '2026-10-01', %s, 3, 0, 9, 3, %s)",
            (run_id, '{"GB-month": "12"}'),
        )
    mart.execute("UPDATE finops.domain_load SET superseded_by = 'run-b' WHERE run_id = 'run-a'")

    assert superseded_loads(mart, "open_legacy", "run-a") == [("2026-10", "run-b")]
    assert superseded_loads(mart, "open_legacy", "run-b") == []
    result = superseded_result([("2026-10", "run-b")])
    assert not result.passed
    assert result.description is not None
    assert result.description.startswith("superseded: 2026-10 by run run-b published after this run loaded")
    assert "off by" not in result.description


def test_amounts_are_shown_at_the_mart_scale_and_compared_exactly() -> None:
    assert shown(Decimal("3.71E-8")) == "0.000000"
    assert shown(Decimal("-4E-9")) == "0.000000"
    assert shown(Decimal("1234567.123456500000000000")) == "1,234,567.123456"  # half to even
    tiny = UnitBalance(APRIL, "EUR", Decimal("10.000000037100000000"), Decimal("10"), Decimal("0"), rows=1)
    assert tiny.difference == Decimal("3.71E-8") and tiny.balanced
    off = UnitBalance(APRIL, "EUR", Decimal("10.00001"), Decimal("10"), Decimal("0"), rows=1)
    assert not off.balanced
    table = balance_table([tiny, off], "billing currency")
    assert "| 2025-04 | EUR | 10.000000 | 10.000000 | 0.000000 | 0.000000 |" in table
    assert "| 2025-04 | EUR | 10.000010 | 10.000000 | 0.000000 | 0.000010 |" in table
    assert "E-" not in table
