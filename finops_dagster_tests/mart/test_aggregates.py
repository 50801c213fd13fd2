"""The aggregates maintained by the publish: the same rows as a full rebuild, whatever the order in
which months are published, switched together with the facts, and anomalies that mean something."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg import sql

from finops_dagster.mart.aggregates import AGGREGATES, rebuild_aggregates
from finops_dagster.mart.locks import MART_NAMESPACE, PUBLISH_KEY
from finops_dagster.mart.publish import publish_run
from finops_dagster_tests.mart.test_publish import DOMAIN, stage
from finops_dagster_tests.support.waiting import wait_for

TODAY = dt.date(2025, 8, 15)  # August 2025 is the month in progress
JAN, FEB, MAR, APR, MAY = (dt.date(2025, m, 1) for m in range(1, 6))
AUG = dt.date(2025, 8, 1)

Snapshot = dict[str, list[tuple[Any, ...]]]


@pytest.fixture(autouse=True)
def _no_cost_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINOPS_ANOMALY_MIN_COST", "0")


@pytest.fixture
def publish(mart: psycopg.Connection) -> Iterator[Any]:
    """Stage and publish one month of one run (costs per application), as the nightly does.
    APP-A and APP-B are in a group; the others are unknown to dim_application."""
    mart.execute("INSERT INTO finops.dim_application_group (group_id, label) VALUES ('GRP', 'Group')")
    mart.execute(
        "INSERT INTO finops.dim_application (application_id, label, group_id, source) VALUES "
        "('APP-A', 'A', 'GRP', 'test'), ('APP-B', 'B', 'GRP', 'test')"
    )

    def run(month: dt.date, run_id: str, costs: dict[str, str]) -> None:
        stage(mart, month, run_id, costs)
        publish_run(mart, run_id, [month], today=TODAY)

    yield run


def snapshot(conn: psycopg.Connection) -> Snapshot:
    """Every aggregate's rows, sorted."""
    return {
        table: sorted(
            conn.execute(sql.SQL("SELECT * FROM finops.{}").format(sql.Identifier(table))).fetchall(),
            key=repr,
        )
        for table in AGGREGATES
    }


def rebuilt(conn: psycopg.Connection) -> Snapshot:
    rebuild_aggregates(conn, today=TODAY, min_cost=Decimal(0))
    return snapshot(conn)


def anomalies(conn: psycopg.Connection, month: dt.date) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT application_id, anomaly_kind, total_cost, trailing_avg_cost, compared_months "
        "FROM finops.mv_anomalies_month WHERE period_month = %s ORDER BY application_id",
        (month,),
    ).fetchall()


# --------------------------------------------------------------------------------------------
# maintained = rebuilt
# --------------------------------------------------------------------------------------------


def test_publishing_month_by_month_gives_the_rebuild(mart: psycopg.Connection, publish: Any) -> None:
    publish(JAN, "r1", {"APP-A": "100", "APP-B": "50", "APP-GONE": "70"})
    publish(FEB, "r2", {"APP-A": "110", "APP-B": "200"})
    publish(APR, "r3", {"APP-A": "20", "APP-B": "210", "APP-NEW": "5"})  # March not loaded yet
    publish(MAR, "r4", {"APP-A": "90", "APP-B": "190"})  # published after its neighbour
    publish(FEB, "r5", {"APP-A": "400", "APP-B": "200"})  # history rewritten: Mar..May depend on it
    maintained = snapshot(mart)
    assert all(maintained[table] for table in AGGREGATES), [t for t in AGGREGATES if not maintained[t]]
    assert maintained == rebuilt(mart)
    # March compares with the republished February: APP-A fell to 90 against (100 + 400) / 2
    assert ("APP-A", "DROP", Decimal("90"), Decimal("250"), 2) in anomalies(mart, MAR)


def test_rebuild_populates_a_mart_whose_aggregates_are_empty(mart: psycopg.Connection, publish: Any) -> None:
    publish(JAN, "r1", {"APP-A": "100"})
    publish(FEB, "r2", {"APP-A": "300"})
    expected = snapshot(mart)
    for table in AGGREGATES:
        mart.execute(sql.SQL("DELETE FROM finops.{}").format(sql.Identifier(table)))
    assert rebuilt(mart) == expected


# --------------------------------------------------------------------------------------------
# anomalies
# --------------------------------------------------------------------------------------------


def test_the_first_month_has_nothing_to_compare_with(mart: psycopg.Connection, publish: Any) -> None:
    publish(JAN, "r1", {"APP-A": "100"})
    assert anomalies(mart, JAN) == []  # not NEW: there is no month before it in the mart


def test_fewer_months_are_averaged_over_the_months_present(mart: psycopg.Connection, publish: Any) -> None:
    publish(JAN, "r1", {"APP-A": "100", "APP-B": "100"})
    publish(FEB, "r2", {"APP-A": "160", "APP-B": "140"})
    # one month to compare with: the average is January's cost, not January / 3
    assert anomalies(mart, FEB) == [("APP-A", "SPIKE", Decimal("160.000000"), Decimal("100.000000"), 1)]
    publish(MAR, "r3", {"APP-A": "100", "APP-B": "40"})
    # two months: APP-B's average is (100 + 140) / 2 = 120, 40 < 60
    assert anomalies(mart, MAR) == [("APP-B", "DROP", Decimal("40.000000"), Decimal("120"), 2)]


def test_the_month_in_progress_is_left_out(mart: psycopg.Connection, publish: Any) -> None:
    july = dt.date(2025, 7, 1)
    publish(july, "r1", {"APP-A": "100"})
    publish(AUG, "r2", {"APP-A": "1000", "APP-NEW": "500"})
    assert anomalies(mart, AUG) == []
    assert mart.execute(
        "SELECT count(*) FROM finops.mv_cost_application_month WHERE period_month = %s", (AUG,)
    ).fetchone() == (2,)  # its costs are served; only the comparison waits for the month to end


def test_changes_below_the_cost_floor_are_not_anomalies(
    mart: psycopg.Connection, publish: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FINOPS_ANOMALY_MIN_COST", "50")
    publish(JAN, "r1", {"APP-SMALL": "10", "APP-BIG": "1000", "APP-GONE": "40"})
    publish(FEB, "r2", {"APP-SMALL": "40", "APP-BIG": "2000", "APP-NEW": "49.99", "APP-NEW2": "50"})
    # APP-SMALL x4 (+30), APP-GONE -40 and APP-NEW +49.99 are below the floor; a change of 50 is not
    assert [(row[0], row[1]) for row in anomalies(mart, FEB)] == [("APP-BIG", "SPIKE"), ("APP-NEW2", "NEW")]


def test_a_disappeared_application_drops_to_nothing_and_compared_months_says_over_what(
    mart: psycopg.Connection, publish: Any
) -> None:
    publish(JAN, "r1", {"APP-A": "100", "APP-GONE": "90"})
    publish(FEB, "r2", {"APP-A": "100", "APP-GONE": "30"})
    publish(MAR, "r3", {"APP-A": "100"})
    publish(APR, "r4", {"APP-A": "100"})
    publish(MAY, "r5", {"APP-A": "100"})
    assert anomalies(mart, MAR) == [("APP-GONE", "DROP", Decimal(0), Decimal("60"), 2)]
    assert anomalies(mart, APR) == [("APP-GONE", "DROP", Decimal(0), Decimal("40"), 3)]
    # May compares with Feb..Apr: still 30 over 3 months
    assert anomalies(mart, MAY) == [("APP-GONE", "DROP", Decimal(0), Decimal("10"), 3)]
    assert mart.execute(
        "SELECT DISTINCT domain_id FROM finops.mv_anomalies_month"
    ).fetchall() == [(DOMAIN,)]


# --------------------------------------------------------------------------------------------
# neighbouring months published at once
# --------------------------------------------------------------------------------------------


def test_adjacent_months_published_at_once_leave_no_neighbour_stale(
    mart: psycopg.Connection, mart_url: str, publish: Any
) -> None:
    publish(JAN, "r0", {"APP-A": "100"})
    publish(FEB, "r0b", {"APP-A": "100"})
    publish(MAR, "r0c", {"APP-A": "100"})
    stage(mart, FEB, "r-feb", {"APP-A": "1000", "APP-B": "7"})
    stage(mart, MAR, "r-mar", {"APP-A": "5", "APP-C": "3"})
    errors: list[BaseException] = []

    def run(run_id: str, month: dt.date) -> None:
        try:
            with psycopg.connect(mart_url, autocommit=True) as conn:
                publish_run(conn, run_id, [month], today=TODAY)
        except BaseException as error:
            errors.append(error)

    with psycopg.connect(mart_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s, %s)", (MART_NAMESPACE, PUBLISH_KEY))
        threads = [threading.Thread(target=run, args=args) for args in (("r-mar", MAR), ("r-feb", FEB))]
        for thread in threads:
            thread.start()
        wait_for(lambda: _publish_lock_waiters(holder) == 2, "both publishers to queue on the publish lock")
        holder.execute("SELECT pg_advisory_unlock(%s, %s)", (MART_NAMESPACE, PUBLISH_KEY))
        for thread in threads:
            thread.join(timeout=60)
    assert errors == []
    maintained = snapshot(mart)
    assert maintained == rebuilt(mart)
    # March's rows reflect the new February whichever publish went first
    assert mart.execute(
        "SELECT previous_month_cost FROM finops.mv_rank_app_month "
        "WHERE period_month = %s AND application_id = 'APP-A'",
        (MAR,),
    ).fetchone() == (Decimal("1000.000000"),)


def _publish_lock_waiters(conn: psycopg.Connection) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND classid = %s AND objid = %s",
        (MART_NAMESPACE, PUBLISH_KEY),
    ).fetchone()
    return row[0] if row else 0


# --------------------------------------------------------------------------------------------
# a kill during the publish
# --------------------------------------------------------------------------------------------

PUBLISHER = textwrap.dedent(
    """
    import datetime as dt
    import sys

    import psycopg

    from finops_dagster.mart.publish import publish_run

    url, run_id, month, today = sys.argv[1], sys.argv[2], *map(dt.date.fromisoformat, sys.argv[3:5])
    with psycopg.connect(url, autocommit=True) as conn:
        publish_run(conn, run_id, [month], today=today)
    """
)


def _facts_and_aggregates(conn: psycopg.Connection) -> tuple[Any, ...]:
    return (
        conn.execute("SELECT coalesce(sum(total_cost), 0) FROM finops.fact_releve").fetchone(),
        conn.execute("SELECT coalesce(sum(total_cost), 0) FROM finops.mv_cost_domain_month").fetchone(),
        conn.execute("SELECT coalesce(sum(total_cost), 0) FROM finops.mv_rank_app_month").fetchone(),
        conn.execute("SELECT count(*) FROM finops.mv_anomalies_month").fetchone(),
        conn.execute("SELECT coalesce(sum(rolling_12m_cost), 0) FROM finops.mv_history_domain").fetchone(),
    )


def test_a_publish_killed_midway_leaves_facts_and_aggregates_both_old(
    mart: psycopg.Connection, mart_url: str, publish: Any
) -> None:
    publish(JAN, "r1", {"APP-A": "100"})
    publish(FEB, "r2", {"APP-A": "100"})
    old = _facts_and_aggregates(mart)
    old_snapshot = snapshot(mart)
    stage(mart, FEB, "r3", {"APP-A": "900", "APP-B": "1"})

    with psycopg.connect(mart_url) as blocker, psycopg.connect(mart_url, autocommit=True) as reader:
        # the history is the last aggregate the publish writes: holding its rows stops the publisher
        # there, its facts and the other aggregates written, uncommitted
        blocker.execute("SELECT * FROM finops.mv_history_domain FOR UPDATE")
        process = subprocess.Popen(
            [sys.executable, "-c", PUBLISHER, mart_url, "r3", FEB.isoformat(), TODAY.isoformat()],
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            wait_for(lambda: _waiting_on_a_lock(reader), "the publisher to block on the history rows")
            reader.execute("SET lock_timeout = '1s'")
            assert _facts_and_aggregates(reader) == old  # readers see the old set, without waiting
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        assert process.returncode == -signal.SIGKILL
        # its backend, woken by the released rows, finds its client gone and rolls back
        blocker.rollback()
        ours = (mart.info.backend_pid, reader.info.backend_pid, blocker.info.backend_pid)
        wait_for(lambda: _other_sessions(reader, ours) == 0, "the killed publisher's session to end")

    assert _facts_and_aggregates(mart) == old
    assert snapshot(mart) == old_snapshot

    publish_run(mart, "r3", [FEB], today=TODAY)  # the same staging then publishes: both new
    new = _facts_and_aggregates(mart)
    assert new[0] == (Decimal("1001.000000"),) and new[1] == new[0]
    assert snapshot(mart) == rebuilt(mart)


def _other_sessions(conn: psycopg.Connection, ours: tuple[int, ...]) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND backend_type = 'client backend' AND pid <> ALL(%s)",
        (list(ours),),
    ).fetchone()
    return row[0] if row else 0


def _waiting_on_a_lock(conn: psycopg.Connection) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
    ).fetchone()
    return bool(row and row[0])
