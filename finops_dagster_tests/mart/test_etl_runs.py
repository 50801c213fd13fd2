"""The run ledger (finops.etl_runs) with real Dagster runs, real processes and a real PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import psycopg
import pytest
from dagster import asset, instance_for_test, materialize

from finops_dagster.mart.etl_runs import (
    BACKFILL_TAG,
    PARTITION_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    SCHEDULE_TAG,
    SUMMARY_LIMIT,
    RunLedger,
    run_periods,
    trigger_type,
)
from finops_dagster.mart.locks import RUN_NAMESPACE
from finops_dagster.mart.run_liveness import abort_dead_runs
from finops_dagster.reference.assets import reference_data
from finops_dagster.settings import pipeline_version
from finops_dagster_tests.support.waiting import wait_for

# advisory locks of this test's database only: other databases on the server may be busy too
THIS_DB_ADVISORY = (
    "locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


DAGSTER_CLI = str(Path(sys.executable).parent / "dagster")


def _row(conn: psycopg.Connection, run_id: str) -> dict[str, Any]:
    cursor = conn.execute("SELECT * FROM finops.etl_runs WHERE run_id = %s", (run_id,))
    row = cursor.fetchone()
    assert row is not None, f"no etl_runs row for {run_id}"
    assert cursor.description is not None
    return dict(zip([column.name for column in cursor.description], row, strict=True))


# --------------------------------------------------------------------------------------------
# trigger type and periods from tags
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (
            {
                SCHEDULE_TAG: "finops_nightly_schedule",
                RANGE_START_TAG: "2026-10-01",
                RANGE_END_TAG: "2026-11-01",
            },
            "SCHEDULE",
        ),
        ({BACKFILL_TAG: "abcdefgh", PARTITION_TAG: "2025-03-01"}, "BACKFILL"),
        ({SCHEDULE_TAG: "finops_nightly_schedule", BACKFILL_TAG: "abcdefgh"}, "SCHEDULE"),
        ({PARTITION_TAG: "2025-03-01"}, "MANUAL"),
        ({}, "MANUAL"),
        ({SCHEDULE_TAG: ""}, "MANUAL"),
    ],
)
def test_trigger_type(tags: dict[str, str], expected: str) -> None:
    assert trigger_type(tags) == expected


def test_run_periods_from_a_range_over_three_months() -> None:
    tags = {RANGE_START_TAG: "2025-11-01", RANGE_END_TAG: "2026-01-01"}
    assert run_periods(tags) == ["2025-11-01", "2025-12-01", "2026-01-01"]


def test_run_periods_from_a_single_partition() -> None:
    assert run_periods({PARTITION_TAG: "2025-03-01"}) == ["2025-03-01"]


def test_run_periods_without_partition_tags() -> None:
    assert run_periods({}) == []
    assert run_periods({RANGE_START_TAG: "2025-01-01"}) == []  # half a range is no range
    assert run_periods({SCHEDULE_TAG: "finops_nightly_schedule"}) == []


# --------------------------------------------------------------------------------------------
# real runs, in process
# --------------------------------------------------------------------------------------------


def test_successful_run_ends_success(resources: dict[str, Any], mart: psycopg.Connection) -> None:
    with instance_for_test() as instance:
        result = materialize([reference_data], resources=resources, instance=instance)
    assert result.success
    row = _row(mart, result.run_id)
    assert row["status"] == "SUCCESS"
    assert row["ended_at"] is not None and row["ended_at"] >= row["started_at"]
    assert row["trigger_type"] == "MANUAL"
    assert row["errors_count"] == 0
    assert row["error_summary"] is None
    assert row["periods"] == []
    assert row["version"] == pipeline_version()
    assert row["job_name"] == "__ephemeral_asset_job__"
    # the run lock was released with the run
    assert mart.execute(
        "SELECT count(*) FROM pg_locks WHERE " + THIS_DB_ADVISORY + " AND classid = %s", (RUN_NAMESPACE,)
    ).fetchone() == (0,)


@asset
def exploding(run_ledger: RunLedger) -> None:
    raise ValueError("source unreadable: " + "x" * 1000 + "\nsecond line with details\nthird line")


@asset
def exploding_briefly(run_ledger: RunLedger) -> None:
    raise RuntimeError("CMDB dump of 2025-03 is empty\nTraceback-like noise that must not be stored")


def test_failing_run_ends_failed_with_a_short_summary(
    resources: dict[str, Any], mart: psycopg.Connection
) -> None:
    with instance_for_test() as instance:
        result = materialize(
            [exploding_briefly], resources=resources, instance=instance, raise_on_error=False
        )
    assert not result.success
    row = _row(mart, result.run_id)
    assert row["status"] == "FAILED"
    assert row["ended_at"] is not None
    assert row["errors_count"] == 1
    assert row["error_summary"] == "exploding_briefly: RuntimeError: CMDB dump of 2025-03 is empty"


def test_failure_summary_is_first_line_and_bounded(
    resources: dict[str, Any], mart: psycopg.Connection
) -> None:
    with instance_for_test() as instance:
        result = materialize([exploding], resources=resources, instance=instance, raise_on_error=False)
    row = _row(mart, result.run_id)
    assert row["status"] == "FAILED"
    assert row["errors_count"] == 1
    summary = row["error_summary"]
    assert summary.startswith("exploding: ValueError: source unreadable: xxx")
    assert len(summary) == SUMMARY_LIMIT
    assert "\n" not in summary and "second line" not in summary


# --------------------------------------------------------------------------------------------
# ABORTED: a run process killed outright
# --------------------------------------------------------------------------------------------

BLOCKER_MODULE = textwrap.dedent(
    """
    import time

    from dagster import Definitions, asset, in_process_executor

    from finops_dagster.mart.etl_runs import RunLedger
    from finops_dagster.resources.postgres import postgres_from_env


    @asset
    def blocker(run_ledger: RunLedger) -> None:
        time.sleep(60)


    postgres = postgres_from_env()
    defs = Definitions(
        assets=[blocker],
        resources={"postgres": postgres, "run_ledger": RunLedger(postgres=postgres)},
        executor=in_process_executor,
    )
    """
)


def test_killed_run_is_marked_aborted_by_the_next_run(
    resources: dict[str, Any], mart: psycopg.Connection, mart_url: str, tmp_path: Path
) -> None:
    module = tmp_path / "blocker_defs.py"
    module.write_text(BLOCKER_MODULE)
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {**os.environ, "POSTGRES_URL": mart_url, "DAGSTER_HOME": str(home)}
    log = (tmp_path / "blocker.log").open("w")
    process = subprocess.Popen(
        [DAGSTER_CLI, "asset", "materialize", "-f", str(module), "--select", "blocker"],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:

        def running() -> str | None:
            if process.poll() is not None:
                raise AssertionError(f"blocker run exited early:\n{(tmp_path / 'blocker.log').read_text()}")
            row = mart.execute("SELECT run_id FROM finops.etl_runs WHERE status = 'RUNNING'").fetchone()
            return row[0] if row else None

        killed_run = wait_for(running, "the blocker run to be RUNNING in etl_runs")
        # the run holds its lock while it lives
        assert mart.execute(
            "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (RUN_NAMESPACE, killed_run)
        ).fetchone() == (False,)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        log.close()
    assert process.returncode == -signal.SIGKILL

    # the server notices the dropped connection and releases the dead run's lock
    wait_for(
        lambda: (
            mart.execute(
                "SELECT count(*) FROM pg_locks WHERE " + THIS_DB_ADVISORY + " AND classid = %s",
                (RUN_NAMESPACE,),
            ).fetchone()
            == (0,)
        ),
        "the killed run's session to end",
        timeout=30,
    )
    assert _row(mart, killed_run)["status"] == "RUNNING"  # nobody could record anything yet

    with instance_for_test() as instance:
        result = materialize([reference_data], resources=resources, instance=instance)
    assert result.success

    killed = _row(mart, killed_run)
    assert killed["status"] == "ABORTED"
    assert killed["ended_at"] is not None
    assert f"detected by run {result.run_id}" in killed["error_summary"]
    assert _row(mart, result.run_id)["status"] == "SUCCESS"


def _insert_running(conn: psycopg.Connection, run_id: str) -> None:
    conn.execute(
        "INSERT INTO finops.etl_runs (run_id, status, trigger_type, job_name, version) "
        "VALUES (%s, 'RUNNING', 'MANUAL', 'finops_nightly', 'test')",
        (run_id,),
    )


def test_running_row_with_a_live_owner_is_not_aborted(mart: psycopg.Connection, mart_url: str) -> None:
    _insert_running(mart, "alive-run")
    _insert_running(mart, "dead-run")
    with psycopg.connect(mart_url, autocommit=True) as owner:
        owner.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (RUN_NAMESPACE, "alive-run"))

        assert [dead.run_id for dead in abort_dead_runs(mart, detected_by="detector-run", stale_after=0)] == [
            "dead-run"
        ]

        assert _row(mart, "alive-run")["status"] == "RUNNING"
        assert _row(mart, "alive-run")["ended_at"] is None
        dead = _row(mart, "dead-run")
        assert dead["status"] == "ABORTED"
        assert "detected by run detector-run" in dead["error_summary"]
        # the detector gave back the lock it borrowed to check the dead run
        assert mart.execute(
            "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (RUN_NAMESPACE, "dead-run")
        ).fetchone() == (True,)
        mart.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (RUN_NAMESPACE, "dead-run"))
        # and the live owner still holds its own
        assert owner.execute(
            "SELECT count(*) FROM pg_locks WHERE " + THIS_DB_ADVISORY + " AND classid = %s "
            "AND pid = pg_backend_pid()",
            (RUN_NAMESPACE,),
        ).fetchone() == (1,)

    # once the owner's session has ended, the row is aborted
    wait_for(
        lambda: (
            mart.execute(
                "SELECT count(*) FROM pg_locks WHERE " + THIS_DB_ADVISORY + " AND classid = %s",
                (RUN_NAMESPACE,),
            ).fetchone()
            == (0,)
        ),
        "the owner's session to end",
        timeout=30,
    )
    assert [dead.run_id for dead in abort_dead_runs(mart, detected_by="detector-run", stale_after=0)] == [
        "alive-run"
    ]
    assert _row(mart, "alive-run")["status"] == "ABORTED"


def test_detecting_run_never_aborts_itself(mart: psycopg.Connection) -> None:
    _insert_running(mart, "self-run")
    assert abort_dead_runs(mart, detected_by="self-run", stale_after=0) == []
    assert _row(mart, "self-run")["status"] == "RUNNING"
