"""The demo's allocation table and month close, on a mart where one month was published with rules."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest

from finops_dagster.demo.ledger_summary import DEMO_CLOSER, close_first_month, print_allocation
from finops_dagster.mart.month_close import month_status
from finops_dagster.mart.publish import publish_run
from finops_dagster_tests.support.allocation_mart import add_applications, set_rules, stage

MONTH = dt.date(2025, 3, 1)
COSTS = {("APP-A", "OL_VCPU"): "300", ("APP-B", "OL_VCPU"): "100", ("UNALLOCATED", "OL_VCPU"): "40"}
RULES = ("IDLE,v1,10,2025-01-01,,UNALLOCATED,open_legacy,,,domain,open_legacy,proportional,",)


@pytest.fixture
def published(mart: psycopg.Connection) -> psycopg.Connection:
    add_applications(mart, {"APP-A": "GRP", "APP-B": "GRP"})
    set_rules(mart, *RULES)
    stage(mart, MONTH, "run-1", COSTS)
    publish_run(mart, "run-1", [MONTH], today=dt.date(2025, 6, 15))
    return mart


def test_the_allocation_table_shows_what_the_rules_moved(
    published: psycopg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    print_allocation(published, MONTH, MONTH)
    [row] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("2025-03")]
    # direct 440, the 40 unallocated moved by one rule, nothing left unallocated after it
    assert row.split() == ["2025-03", "EUR", "440.00", "40.00", "1", "40.00", "0.00"]


def test_the_first_month_is_closed_once_and_a_second_demo_says_it_is_closed(
    published: psycopg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    close_first_month(published, MONTH, "finops-dagster")
    status = month_status(published, MONTH)
    assert status is not None and status.closed and status.closed_by == DEMO_CLOSER
    close_first_month(published, MONTH, "finops-dagster")
    out = capsys.readouterr().out
    assert out.count("2025-03 is closed at version 1 (by finops-demo") == 2
    assert "finops-dagster restate 2025-03" in out
