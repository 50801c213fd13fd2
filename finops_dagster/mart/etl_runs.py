"""The run ledger: every pipeline run ends in finops.etl_runs as SUCCESS, FAILED or ABORTED.

It is a resource rather than a sensor because runs started from the CLI (`dagster asset
materialize`, `dg launch`) have no daemon to watch them. The code location runs each run's steps
in one process (in-process executor), so this resource is set up once when the run starts and
torn down once when it ends:

- setup inserts the RUNNING row and takes a session advisory lock keyed by the run id, held on
  its own connection for the life of the run;
- teardown reads the run's step failures from the Dagster instance and records the outcome;
- a process killed outright (SIGKILL, OOM) cannot record anything, but its connection drops and
  with it the lock: the next run finds RUNNING rows whose lock it can take and marks them ABORTED.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import psycopg
from dagster import (
    ConfigurableResource,
    DagsterEventType,
    DagsterRunStatus,
    InitResourceContext,
    PartitionKeyRange,
)
from pydantic import PrivateAttr

from finops_dagster.mart.locks import RUN_NAMESPACE
from finops_dagster.partitions import monthly_partitions
from finops_dagster.resources.postgres import PostgresResource
from finops_dagster.settings import pipeline_version

log = logging.getLogger(__name__)

SCHEDULE_TAG = "dagster/schedule_name"
BACKFILL_TAG = "dagster/backfill"
PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
SUMMARY_LIMIT = 500


RECORD_OUTCOME = """
UPDATE finops.etl_runs
SET status = %s, ended_at = now(), errors_count = %s, error_summary = %s,
    records_rejected = (SELECT coalesce(sum(reject_count), 0) FROM finops.domain_load WHERE run_id = %s)
WHERE run_id = %s
"""


def trigger_type(tags: Mapping[str, str]) -> str:
    """SCHEDULE, BACKFILL or MANUAL (UI launch, CLI, dg launch), from the run's tags."""
    if tags.get(SCHEDULE_TAG):
        return "SCHEDULE"
    if tags.get(BACKFILL_TAG):
        return "BACKFILL"
    return "MANUAL"


def run_periods(tags: Mapping[str, str]) -> list[str]:
    """The months a run targets, from its partition tags."""
    if tags.get(RANGE_START_TAG) and tags.get(RANGE_END_TAG):
        key_range = PartitionKeyRange(tags[RANGE_START_TAG], tags[RANGE_END_TAG])
        return list(monthly_partitions.get_partition_keys_in_range(key_range))
    if tags.get(PARTITION_TAG):
        return [tags[PARTITION_TAG]]
    return []


def abort_dead_runs(conn: psycopg.Connection, *, detected_by: str) -> list[str]:
    """Mark ABORTED the RUNNING rows whose process is gone (nobody holds their run lock)."""
    aborted = []
    for (run_id,) in conn.execute(
        "SELECT run_id FROM finops.etl_runs WHERE status = 'RUNNING' AND run_id <> %s", (detected_by,)
    ).fetchall():
        row = conn.execute(
            "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (RUN_NAMESPACE, run_id)
        ).fetchone()
        if not (row and row[0]):
            continue
        try:
            conn.execute(
                "UPDATE finops.etl_runs SET status = 'ABORTED', ended_at = now(), error_summary = %s "
                "WHERE run_id = %s AND status = 'RUNNING'",
                (
                    f"the run's process ended without recording an outcome (detected by run {detected_by})",
                    run_id,
                ),
            )
            aborted.append(run_id)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (RUN_NAMESPACE, run_id))
    return aborted


class RunLedger(ConfigurableResource):
    """Records the run in finops.etl_runs from start to end (see module docstring)."""

    postgres: PostgresResource

    _conn: psycopg.Connection | None = PrivateAttr(default=None)
    _run_id: str | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        run = context.dagster_run
        if run is None:
            return
        conn = self.postgres.open_connection(autocommit=True)
        conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (RUN_NAMESPACE, run.run_id))
        aborted = abort_dead_runs(conn, detected_by=run.run_id)
        if aborted:
            log.warning("Marked %d dead run(s) ABORTED in etl_runs: %s", len(aborted), ", ".join(aborted))
        conn.execute(
            """
            INSERT INTO finops.etl_runs (run_id, status, trigger_type, job_name, periods, version)
            VALUES (%s, 'RUNNING', %s, %s, %s, %s)
            ON CONFLICT (run_id) DO UPDATE SET status = 'RUNNING', ended_at = NULL, error_summary = NULL
            """,
            (
                run.run_id,
                trigger_type(run.tags),
                run.job_name,
                json.dumps(run_periods(run.tags)),
                pipeline_version(),
            ),
        )
        self._conn = conn
        self._run_id = run.run_id

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        conn, run_id = self._conn, self._run_id
        if conn is None or run_id is None:
            return
        status, failures, summary = _outcome(context, run_id)
        outcome = (status, failures, summary, run_id, run_id)
        try:
            conn.execute(RECORD_OUTCOME, outcome)
        except psycopg.OperationalError:
            # the ledger's connection sat idle for the whole run and was dropped (idle timeout, network):
            # record the outcome on a fresh one rather than leave the run for the next one to abort
            with self.postgres.open_connection(autocommit=True) as fresh:
                fresh.execute(RECORD_OUTCOME, outcome)
        finally:
            conn.close()
            self._conn = None


def _outcome(context: InitResourceContext, run_id: str) -> tuple[str, int, str | None]:
    instance = context.instance
    if instance is None:
        return "SUCCESS", 0, None
    failures = instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE)
    run = instance.get_run_by_id(run_id)
    interrupted = run is not None and run.status in (DagsterRunStatus.CANCELING, DagsterRunStatus.CANCELED)
    if not failures:
        return ("ABORTED", 0, "the run was cancelled") if interrupted else ("SUCCESS", 0, None)
    first = failures[0]
    summary = _blocking_check_summary(
        instance, run_id, first.step_key, first.dagster_event
    ) or _failure_summary(first.step_key, first.dagster_event)
    kind = "ABORTED" if interrupted or "Interrupted" in summary else "FAILED"
    return kind, len(failures), summary


def _blocking_check_summary(instance: Any, run_id: str, step_key: str | None, event: Any) -> str | None:
    """A blocking check's failure says only "N blocking asset check(s) failed with ERROR severity:";
    the reason a person can act on is the failed checks' descriptions."""
    error = getattr(getattr(event, "step_failure_data", None), "error", None)
    if getattr(error, "cls_name", None) != "DagsterAssetCheckFailedError":
        return None
    reasons = []
    for record in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = getattr(record.dagster_event, "event_specific_data", None)
        if record.step_key != step_key or evaluation is None or evaluation.passed:
            continue
        description = " ".join((evaluation.description or "failed").split())
        reasons.append(f"{evaluation.asset_key.to_user_string()} {evaluation.check_name}: {description}")
    if not reasons:
        return None
    text = f"{step_key}: blocking check failed: {'; '.join(reasons)}"
    return text[:SUMMARY_LIMIT]


def _failure_summary(step_key: str | None, event: Any) -> str:
    error = getattr(getattr(event, "step_failure_data", None), "error", None)
    message = (getattr(error, "message", None) or getattr(event, "message", None) or "step failed").strip()
    cause = getattr(error, "cause", None)
    if cause is not None and getattr(cause, "message", None):
        message = cause.message.strip()
    first_line = message.splitlines()[0] if message else "step failed"
    text = f"{step_key}: {first_line}" if step_key else first_line
    return text[:SUMMARY_LIMIT]
