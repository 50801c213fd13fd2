"""Publishing staged loads into fact_releve and refreshing the views, against a real PostgreSQL.

Atomicity is proven with real concurrency: a separate process killed mid-publish, threads with
their own connections queued on the advisory lock, readers with a lock timeout.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import threading
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from finops_dagster.mart.locks import MART_NAMESPACE, PUBLISH_KEY
from finops_dagster.mart.publish import PublishError, publish_run
from finops_dagster_tests.support.staging import DOMAIN, stage
from finops_dagster_tests.support.waiting import wait_for

# advisory locks of this test's database only: other databases on the server may be busy too
THIS_DB_ADVISORY = (
    "locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


MARCH = dt.date(2025, 3, 1)
APRIL = dt.date(2025, 4, 1)

Rows = list[tuple[Any, ...]]


def month_rows(conn: psycopg.Connection, month: dt.date) -> Rows:
    return conn.execute(
        "SELECT application_id, total_cost, run_id FROM finops.fact_releve "
        "WHERE period_month = %s ORDER BY 1, 3",
        (month,),
    ).fetchall()


def expected(run_id: str, costs: dict[str, str]) -> Rows:
    return sorted((application, Decimal(cost), run_id) for application, cost in costs.items())


def _publish_lock_waiters(conn: psycopg.Connection) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE "
        + THIS_DB_ADVISORY
        + " AND NOT granted AND classid = %s AND objid = %s",
        (MART_NAMESPACE, PUBLISH_KEY),
    ).fetchone()
    return row[0] if row else 0


def _publish_lock_holders(conn: psycopg.Connection) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE "
        + THIS_DB_ADVISORY
        + " AND granted AND classid = %s AND objid = %s",
        (MART_NAMESPACE, PUBLISH_KEY),
    ).fetchone()
    return row[0] if row else 0


RUN1 = {"APP-A": "100.000001", "APP-B": "250.5", "UNALLOCATED": "12"}
RUN2 = {"APP-A": "110", "APP-C": "40.25"}


# --------------------------------------------------------------------------------------------
# publish
# --------------------------------------------------------------------------------------------


def test_staged_months_land_in_their_partitions(mart: psycopg.Connection) -> None:
    april = {"APP-A": "90", "APP-D": "7.5"}
    stage(mart, MARCH, "run-1", RUN1)
    stage(mart, APRIL, "run-1", april)

    published = publish_run(mart, "run-1", [APRIL, MARCH])

    assert [(p.period_month, p.domains, p.releves, p.total_cost) for p in published] == [
        (MARCH, (DOMAIN,), 3, Decimal("362.500001")),
        (APRIL, (DOMAIN,), 2, Decimal("97.5")),
    ]
    assert month_rows(mart, MARCH) == expected("run-1", RUN1)
    assert month_rows(mart, APRIL) == expected("run-1", april)
    # each month's rows physically live in that month's partition
    assert mart.execute(
        "SELECT tableoid::regclass::text, count(*) FROM finops.fact_releve GROUP BY 1 ORDER BY 1"
    ).fetchall() == [("finops.fact_releve_2025_03", 3), ("finops.fact_releve_2025_04", 2)]
    assert mart.execute(
        "SELECT count(*) FROM finops.domain_load WHERE run_id = 'run-1' AND published_at IS NOT NULL"
    ).fetchone() == (2,)


def test_republishing_a_month_replaces_it(mart: psycopg.Connection) -> None:
    stage(mart, MARCH, "run-1", RUN1)
    publish_run(mart, "run-1", [MARCH])
    stage(mart, MARCH, "run-2", RUN2)

    publish_run(mart, "run-2", [MARCH])

    assert month_rows(mart, MARCH) == expected("run-2", RUN2)
    # run-1's staging is history now; run-2's remains as what was published
    assert mart.execute("SELECT DISTINCT run_id FROM finops.open_legacy_releves").fetchall() == [("run-2",)]

    # and publishing the same run again is idempotent
    publish_run(mart, "run-2", [MARCH])
    assert month_rows(mart, MARCH) == expected("run-2", RUN2)


def test_tampered_staging_is_refused_and_published_month_kept(mart: psycopg.Connection) -> None:
    stage(mart, MARCH, "run-1", RUN1)
    publish_run(mart, "run-1", [MARCH])
    stage(mart, MARCH, "run-2", RUN2)
    mart.execute("DELETE FROM finops.open_legacy_releves WHERE run_id = 'run-2' AND application_id = 'APP-C'")

    with pytest.raises(
        PublishError,
        match=r"open_legacy 2025-03: staged relevés of this run changed.*"
        r"\(1 rows / 110\.000000 instead of 2 / 150\.250000\)",
    ):
        publish_run(mart, "run-2", [MARCH])

    assert month_rows(mart, MARCH) == expected("run-1", RUN1)
    assert mart.execute("SELECT published_at FROM finops.domain_load WHERE run_id = 'run-2'").fetchone() == (
        None,
    )
    # nothing of the refused publish was discarded either
    assert mart.execute(
        "SELECT count(*) FROM finops.open_legacy_releves WHERE run_id = 'run-1'"
    ).fetchone() == (3,)


def test_tampered_cost_is_refused(mart: psycopg.Connection) -> None:
    stage(mart, MARCH, "run-1", RUN1)
    mart.execute(
        "UPDATE finops.open_legacy_releves SET total_cost = total_cost + 1 WHERE application_id = 'APP-A'"
    )
    with pytest.raises(PublishError, match="nothing published"):
        publish_run(mart, "run-1", [MARCH])
    assert month_rows(mart, MARCH) == []


def test_a_failing_month_publishes_no_month_of_the_run(mart: psycopg.Connection) -> None:
    stage(mart, MARCH, "run-1", RUN1)
    # April has no load in this run: the whole run is refused, March included
    with pytest.raises(PublishError):
        publish_run(mart, "run-1", [MARCH, APRIL])
    assert month_rows(mart, MARCH) == []


def test_month_without_loads_is_refused_with_an_actionable_message(mart: psycopg.Connection) -> None:
    stage(mart, MARCH, "other-run", RUN1)
    with pytest.raises(PublishError) as raised:
        publish_run(mart, "lonely-run", [MARCH])
    message = str(raised.value)
    assert "no domain relevés were loaded for 2025-03 in this run" in message
    assert "materialize them together" in message and "*fact_releve" in message
    assert month_rows(mart, MARCH) == []


KILLED_PUBLISHER = textwrap.dedent(
    """
    import datetime as dt
    import sys
    import time

    import psycopg

    from finops_dagster.mart.locks import MART_NAMESPACE, PUBLISH_KEY
    from finops_dagster.mart.month_partitions import ensure_month_partitions
    from finops_dagster.mart.publish import _publish_month

    url, run_id, month = sys.argv[1], sys.argv[2], dt.date.fromisoformat(sys.argv[3])
    conn = psycopg.connect(url, autocommit=True)
    ensure_month_partitions(conn, [month])
    # publish_run's transaction, stopped just before COMMIT
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (MART_NAMESPACE, PUBLISH_KEY))
        published = _publish_month(conn, run_id, month)
        print(f"PUBLISHED-UNCOMMITTED {published.releves}", flush=True)
        time.sleep(120)
    """
)


def test_publish_killed_before_commit_leaves_the_old_month(mart: psycopg.Connection, mart_url: str) -> None:
    stage(mart, MARCH, "run-1", RUN1)
    publish_run(mart, "run-1", [MARCH])
    stage(mart, MARCH, "run-2", RUN2)
    old = expected("run-1", RUN1)

    with psycopg.connect(mart_url, autocommit=True) as reader:
        assert month_rows(reader, MARCH) == old
        process = subprocess.Popen(
            [sys.executable, "-c", KILLED_PUBLISHER, mart_url, "run-2", MARCH.isoformat()],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line.strip() == "PUBLISHED-UNCOMMITTED 2", process.stderr.read() if process.stderr else ""
            # the publisher holds the publish lock with its new rows written, uncommitted
            assert _publish_lock_holders(reader) == 1
            assert reader.execute(
                "SELECT state FROM pg_stat_activity "
                "WHERE pid <> pg_backend_pid() AND datname = current_database() "
                "AND state LIKE 'idle in transaction%'"
            ).fetchall() == [("idle in transaction",)]
            # meanwhile the reader sees the previous complete month, without waiting
            reader.execute("SET lock_timeout = '1s'")
            assert month_rows(reader, MARCH) == old
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        assert process.returncode == -signal.SIGKILL

        wait_for(lambda: _publish_lock_holders(reader) == 0, "the killed publisher's session to end")
        assert month_rows(reader, MARCH) == old

        # a normal publish of the same staging then goes through
        publish_run(mart, "run-2", [MARCH])
        assert month_rows(reader, MARCH) == expected("run-2", RUN2)


def test_concurrent_publishes_serialize_and_never_mix(mart: psycopg.Connection, mart_url: str) -> None:
    runs = {
        "run-a": {f"APP-A{i}": f"{10 + i}.5" for i in range(5)},
        "run-b": {"APP-A0": "999", "APP-B1": "1", "APP-B2": "2"},
    }
    for run_id, costs in runs.items():
        stage(mart, MARCH, run_id, costs)

    outcomes: dict[str, Any] = {}
    finished: list[str] = []

    def publish(run_id: str) -> None:
        try:
            with psycopg.connect(mart_url, autocommit=True) as conn:
                outcomes[run_id] = publish_run(conn, run_id, [MARCH])
        except Exception as error:
            outcomes[run_id] = error
        finished.append(run_id)

    with psycopg.connect(mart_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s, %s)", (MART_NAMESPACE, PUBLISH_KEY))
        threads = [threading.Thread(target=publish, args=(run_id,)) for run_id in runs]
        for thread in threads:
            thread.start()
        wait_for(lambda: _publish_lock_waiters(holder) == 2, "both publishers to queue on the publish lock")
        assert finished == []
        holder.execute("SELECT pg_advisory_unlock(%s, %s)", (MART_NAMESPACE, PUBLISH_KEY))
        for thread in threads:
            thread.join(timeout=60)

    assert sorted(finished) == sorted(runs)
    succeeded = [run_id for run_id in finished if not isinstance(outcomes[run_id], BaseException)]
    assert succeeded, outcomes
    winner = succeeded[-1]
    # the run that published second found its staging superseded by the first: it fails, saying so
    for loser in (run_id for run_id in finished if run_id not in succeeded):
        assert isinstance(outcomes[loser], PublishError), outcomes[loser]
        assert f"run {winner} published this month after this run loaded it" in str(outcomes[loser])
    final = month_rows(mart, MARCH)
    # exactly one run's complete rows: the last successful publisher's, never a mix
    assert final == expected(winner, runs[winner])
    assert {row[2] for row in final} == {winner}


def test_an_older_empty_load_never_wipes_a_newer_published_month(mart: psycopg.Connection) -> None:
    stage(mart, MARCH, "run-old", {})  # e.g. the month before its first dump: nothing yet
    stage(mart, MARCH, "run-new", RUN1)
    publish_run(mart, "run-new", [MARCH])

    with pytest.raises(PublishError, match=r"run run-new published this month after this run loaded it"):
        publish_run(mart, "run-old", [MARCH])

    assert month_rows(mart, MARCH) == expected("run-new", RUN1)
