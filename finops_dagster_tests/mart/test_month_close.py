"""Closing a month and restating it, through the publish: a closed month is skipped by the nightly,
restated by an explicit run (what changes per application × product, and which input changed),
and published only by an approval, atomically, with a new version."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import psycopg
import pytest

from finops_dagster.checks.allocation import imbalances
from finops_dagster.mart import publish
from finops_dagster.mart.month_close import MonthCloseError, close_month, month_status
from finops_dagster.mart.publish import (
    PUBLISHED,
    RESTATE,
    RESTATED,
    SKIPPED_CLOSED,
    approve_restatement,
    publish_run,
)
from finops_dagster.mart.restatement import RestatementError
from finops_dagster_tests.support.allocation_mart import add_applications, set_rules, stage

MARCH, APRIL = dt.date(2025, 3, 1), dt.date(2025, 4, 1)
TODAY = dt.date(2025, 6, 15)
GROUPS = {"APP-A": "GRP", "APP-B": "GRP"}
COSTS = {("APP-A", "OL_VCPU"): "300", ("APP-B", "OL_VCPU"): "100", ("UNALLOCATED", "OL_VCPU"): "40"}
EVEN = "IDLE,v1,10,2025-01-01,,UNALLOCATED,,,,group,GRP,even,"
PROPORTIONAL = "IDLE,v2,10,2025-01-01,,UNALLOCATED,,,,group,GRP,proportional,"


def succeed(conn: psycopg.Connection, run_id: str) -> None:
    """The run's record as the run ledger leaves a successful run."""
    conn.execute(
        "INSERT INTO finops.etl_runs (run_id, status, ended_at, trigger_type, job_name, version) "
        "VALUES (%s, 'SUCCESS', now(), 'MANUAL', 'test', 'test') "
        "ON CONFLICT (run_id) DO UPDATE SET status = 'SUCCESS', ended_at = now()",
        (run_id,),
    )


def run(conn: psycopg.Connection, run_id: str, costs: dict[tuple[str, str], str], **options: str) -> list:
    stage(conn, MARCH, run_id, costs)
    published = publish_run(conn, run_id, [MARCH], today=TODAY, **options)
    succeed(conn, run_id)
    return published


def allocated(conn: psycopg.Connection) -> dict[str, Decimal]:
    return dict(
        conn.execute(
            "SELECT application_id, total_cost FROM finops_allocated.mv_cost_application_month "
            "WHERE period_month = %s",
            (MARCH,),
        ).fetchall()
    )


def facts(conn: psycopg.Connection) -> list[tuple[object, ...]]:
    return conn.execute(
        "SELECT application_id, total_cost, run_id FROM finops.fact_releve "
        "WHERE period_month = %s ORDER BY 1",
        (MARCH,),
    ).fetchall()


@pytest.fixture
def closed(mart: psycopg.Connection) -> psycopg.Connection:
    """March published by run-1 (even split of UNALLOCATED over GRP), then closed by alice."""
    add_applications(mart, GROUPS)
    set_rules(mart, EVEN)
    run(mart, "run-1", COSTS)
    status = close_month(mart, MARCH, by="alice", note="signed by finance")
    assert (status.status, status.version, status.closed_by, status.note) == (
        "CLOSED",
        1,
        "alice",
        "signed by finance",
    )
    return mart


def test_an_open_month_records_its_publish_and_inputs(mart: psycopg.Connection) -> None:
    add_applications(mart, GROUPS)
    set_rules(mart, EVEN)
    [month] = run(mart, "run-1", COSTS)
    assert month.outcome == PUBLISHED
    status = month_status(mart, MARCH)
    assert status is not None
    assert (status.status, status.version, status.published_run_id) == ("OPEN", 1, "run-1")
    assert set(status.inputs) >= {"source_data", "rate_card", "mapping", "allocation_rule"}
    assert status.inputs["allocation_rule_versions"] == "IDLE v1"
    with pytest.raises(MonthCloseError, match="2025-04 was never published"):
        close_month(mart, APRIL, by="alice")
    with pytest.raises(MonthCloseError, match="--by"):
        close_month(mart, MARCH, by=" ")


def test_a_closed_month_cannot_be_closed_again(closed: psycopg.Connection) -> None:
    with pytest.raises(
        MonthCloseError, match=r"2025-03 is closed at version 1 \(by alice, .*\): already closed"
    ):
        close_month(closed, MARCH, by="bob")


def test_the_nightly_skips_a_closed_month_and_drops_its_staged_rows(closed: psycopg.Connection) -> None:
    before = (facts(closed), allocated(closed))
    [month] = run(closed, "run-2", {("APP-A", "OL_VCPU"): "999"})
    assert month.outcome == SKIPPED_CLOSED and month.closed is not None and month.releves == 0
    assert (facts(closed), allocated(closed)) == before
    assert closed.execute(
        "SELECT count(*) FROM finops.open_legacy_releves WHERE run_id = 'run-2'"
    ).fetchone() == (0,)
    assert closed.execute("SELECT count(*) FROM finops.month_restatement").fetchone() == (0,)


def test_a_restatement_says_what_changes_and_why_and_publishes_only_once_approved(
    closed: psycopg.Connection,
) -> None:
    before = (facts(closed), allocated(closed))
    [month] = run(closed, "run-2", {**COSTS, ("APP-A", "OL_VCPU"): "320"}, closed_months_policy=RESTATE)
    assert month.outcome == RESTATED and month.restatement is not None
    assert month.restatement.changed_inputs == ("source_data",)
    assert (facts(closed), allocated(closed)) == before  # nothing published
    lines = closed.execute(
        "SELECT application_id, direct_before, direct_after, allocated_before, allocated_after, "
        "changed_inputs "
        "FROM finops.month_restatement_line WHERE run_id = 'run-2' ORDER BY 1"
    ).fetchall()
    assert lines == [
        ("APP-A", Decimal("300"), Decimal("320"), Decimal("320"), Decimal("340"), ["source_data"]),
    ]
    assert closed.execute(
        "SELECT status, base_version, lines_changed, direct_before, direct_after "
        "FROM finops.month_restatement"
    ).fetchone() == ("PENDING", 1, 1, Decimal("440"), Decimal("460"))

    status = approve_restatement(closed, MARCH, "run-2", by="bob", today=TODAY)
    assert (status.status, status.version, status.approved_by, status.published_run_id) == (
        "CLOSED",
        2,
        "bob",
        "run-2",
    )
    assert facts(closed) == [
        ("APP-A", Decimal("320.000000"), "run-2"),
        ("APP-B", Decimal("100.000000"), "run-2"),
        ("UNALLOCATED", Decimal("40.000000"), "run-2"),
    ]
    assert allocated(closed) == {"APP-A": Decimal("340"), "APP-B": Decimal("120"), "UNALLOCATED": Decimal(0)}
    assert closed.execute(
        "SELECT status, new_version, approved_by FROM finops.month_restatement WHERE run_id = 'run-2'"
    ).fetchone() == ("APPROVED", 2, "bob")
    assert imbalances(closed) == []
    with pytest.raises(RestatementError, match="is APPROVED, not pending"):
        approve_restatement(closed, MARCH, "run-2", by="bob", today=TODAY)


def test_a_rule_change_alone_is_attributed_to_the_allocation_rule(closed: psycopg.Connection) -> None:
    set_rules(closed, PROPORTIONAL)
    [month] = run(closed, "run-2", COSTS, closed_months_policy=RESTATE)
    assert month.restatement is not None and month.restatement.changed_inputs == ("allocation_rule",)
    lines = closed.execute(
        "SELECT application_id, direct_before, direct_after, allocated_before, allocated_after, "
        "changed_inputs "
        "FROM finops.month_restatement_line WHERE run_id = 'run-2' ORDER BY 1"
    ).fetchall()
    assert lines == [
        ("APP-A", Decimal(300), Decimal(300), Decimal(320), Decimal(330), ["allocation_rule"]),
        ("APP-B", Decimal(100), Decimal(100), Decimal(120), Decimal(110), ["allocation_rule"]),
    ]


def test_an_approval_is_refused_when_it_would_not_publish_what_was_reviewed(
    closed: psycopg.Connection,
) -> None:
    run(closed, "run-2", COSTS, closed_months_policy=RESTATE)  # nothing changes: an empty restatement
    set_rules(closed, PROPORTIONAL)  # the rules change after it was computed
    with pytest.raises(RestatementError, match="would not give the lines of its restatement"):
        approve_restatement(closed, MARCH, "run-2", by="bob", today=TODAY)
    status = month_status(closed, MARCH)
    assert status is not None and status.version == 1  # rolled back


def test_an_approval_whose_month_would_not_add_up_is_refused(
    closed: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(closed, "run-2", {**COSTS, ("APP-A", "OL_VCPU"): "320"}, closed_months_policy=RESTATE)
    before = facts(closed)
    monkeypatch.setattr(publish, "maintain_aggregates", lambda *args, **kwargs: {})  # aggregates left stale
    with pytest.raises(RestatementError, match="2025-03: the restated month does not add up") as refused:
        approve_restatement(closed, MARCH, "run-2", by="bob", today=TODAY)
    assert "mv_cost_domain_month 2025-03-01 EUR: view 440.000000 vs fact 460.000000" in str(refused.value)
    status = month_status(closed, MARCH)
    assert status is not None and status.version == 1 and facts(closed) == before  # rolled back


def test_a_stale_or_unsuccessful_restatement_is_refused(closed: psycopg.Connection) -> None:
    run(closed, "run-2", {**COSTS, ("APP-B", "OL_VCPU"): "110"}, closed_months_policy=RESTATE)
    run(closed, "run-3", {**COSTS, ("APP-B", "OL_VCPU"): "120"}, closed_months_policy=RESTATE)
    approve_restatement(closed, MARCH, "run-3", by="bob", today=TODAY)
    with pytest.raises(RestatementError, match="SUPERSEDED, not pending"):
        approve_restatement(closed, MARCH, "run-2", by="bob", today=TODAY)
    stage(closed, MARCH, "run-4", COSTS)
    publish_run(closed, "run-4", [MARCH], today=TODAY, closed_months_policy=RESTATE)  # recorded as RUNNING
    closed.execute(
        "INSERT INTO finops.etl_runs "
        "(run_id, status, ended_at, trigger_type, job_name, version, error_summary) "
        "VALUES ('run-4', 'FAILED', now(), 'MANUAL', 'test', 'test', 'a check failed')"
    )
    with pytest.raises(RestatementError, match="run run-4 did not succeed \\(FAILED\\)"):
        approve_restatement(closed, MARCH, "run-4", by="bob", today=TODAY)
