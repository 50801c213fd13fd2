"""The run ledger: every pipeline run ends in finops.etl_runs as SUCCESS, FAILED or ABORTED.

It is a resource rather than a sensor because runs started from the CLI (`dagster asset
materialize`, `dg launch`, `finops-dagster nightly`) have no daemon to watch them. The code
location runs each run's steps in one process (in-process executor), so this resource is set up
once when the run starts and torn down once when it ends:

- setup takes the run's advisory lock on a connection of its own, held for the life of the run,
  releases the dead runs it finds (mart/run_liveness.py), inserts the RUNNING row, starts the
  heartbeat, then takes the run's months (mart/month_locks.py), waiting for a run that holds one;
- the heartbeat stamps the row every few seconds, reconnects if the connection was dropped, and
  releases dead runs while this one lives, so nothing waits on a dead run for long;
- teardown reads the run's step failures from the Dagster instance and records the outcome, only
  over RUNNING: a status once ended never changes again;
- a process killed outright (SIGKILL, OOM) records nothing, but its connection drops and with it
  its locks; its heartbeat stops, and the next heartbeat of any other run releases it.
"""

from __future__ import annotations

import json
import logging
import threading
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
from finops_dagster.mart.month_locks import take_months, try_month
from finops_dagster.mart.run_liveness import (
    HEARTBEAT_SECONDS,
    TAKE_RUN_LOCK,
    TRY_RUN_LOCK,
    keep_session_alive,
    reap,
    settle_recent_deaths,
)
from finops_dagster.observe.run_end import report_run_end
from finops_dagster.partitions import monthly_partitions
from finops_dagster.resources.postgres import PostgresResource
from finops_dagster.settings import pipeline_version, run_wait_seconds

log = logging.getLogger(__name__)

SCHEDULE_TAG = "dagster/schedule_name"
BACKFILL_TAG = "dagster/backfill"
PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
TRIGGER_TAG = "finops/trigger"
"""Set to CRON by `finops-dagster nightly`, the headless nightly."""
SUMMARY_LIMIT = 500


RECORD_OUTCOME = """
UPDATE finops.etl_runs
SET status = %s, ended_at = now(), errors_count = %s, error_summary = %s,
    records_rejected = (SELECT coalesce(sum(reject_count), 0) FROM finops.domain_load WHERE run_id = %s)
WHERE run_id = %s AND status = 'RUNNING'
"""

START_RUN = """
INSERT INTO finops.etl_runs (run_id, status, trigger_type, job_name, periods, version)
VALUES (%s, 'RUNNING', %s, %s, %s, %s)
ON CONFLICT (run_id) DO UPDATE
SET status = 'RUNNING', ended_at = NULL, error_summary = NULL, heartbeat_at = now()
"""
"""A run id seen again is Dagster re-executing the same run: it starts over."""

HEARTBEAT = """
UPDATE finops.etl_runs SET heartbeat_at = clock_timestamp() WHERE run_id = %s AND status = 'RUNNING'
"""


def trigger_type(tags: Mapping[str, str]) -> str:
    """CRON, SCHEDULE, BACKFILL or MANUAL (UI launch, CLI, dg launch), from the run's tags."""
    if tags.get(TRIGGER_TAG) == "CRON":
        return "CRON"
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


class RunLedger(ConfigurableResource):
    """Records the run in finops.etl_runs from start to end (see module docstring)."""

    postgres: PostgresResource

    _conn: psycopg.Connection | None = PrivateAttr(default=None)
    _run_id: str | None = PrivateAttr(default=None)
    _months: list[str] = PrivateAttr(default_factory=list)
    _instance: Any = PrivateAttr(default=None)
    _stop: threading.Event = PrivateAttr(default_factory=threading.Event)
    _heartbeat: threading.Thread | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        run = context.dagster_run
        if run is None:
            return
        self._run_id, self._months, self._instance = run.run_id, run_periods(run.tags), context.instance
        run_log = context.log or log
        conn = self._connect(wait_for_run_lock=True)
        settle_recent_deaths(conn, detected_by=run.run_id)
        for dead in reap(conn, self._instance, detected_by=run.run_id):
            run_log.warning(f"Released dead run {dead.run_id}: {dead.summary}")
        conn.execute(
            START_RUN,
            (run.run_id, trigger_type(run.tags), run.job_name, json.dumps(self._months), pipeline_version()),
        )
        self._conn = conn
        self._start_heartbeat()
        try:
            take_months(conn, self._months, run.run_id, timeout=run_wait_seconds(), report=run_log.info)
        except Exception as error:
            self._stop_heartbeat()
            self._record(("FAILED", 1, str(error)[:SUMMARY_LIMIT], run.run_id, run.run_id))
            raise

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._conn is None or self._run_id is None:
            return
        self._stop_heartbeat()
        status, failures, summary = _outcome(context, self._run_id)
        self._record((status, failures, summary, self._run_id, self._run_id))

    def _connect(self, *, wait_for_run_lock: bool) -> psycopg.Connection:
        """A ledger connection: server keepalives, and the run's lock (waited for at start, when a
        reaper may be borrowing it for an instant; only tried on reconnection)."""
        conn = self.postgres.open_connection(autocommit=True)
        keep_session_alive(conn)
        conn.execute(TAKE_RUN_LOCK if wait_for_run_lock else TRY_RUN_LOCK, (RUN_NAMESPACE, self._run_id))
        return conn

    def _record(self, outcome: tuple[str, int, str | None, str, str]) -> None:
        conn, self._conn = self._conn, None
        try:
            if conn is None:
                raise psycopg.OperationalError("no ledger connection")
            recorded = conn.execute(RECORD_OUTCOME, outcome).rowcount
        except psycopg.OperationalError:
            # the ledger's connection was dropped (idle timeout, network): record on a fresh one
            # rather than leave the run for the next one to abort
            with self.postgres.open_connection(autocommit=True) as fresh:
                recorded = fresh.execute(RECORD_OUTCOME, outcome).rowcount
        finally:
            if conn is not None:
                conn.close()
        if not recorded:
            log.error(
                "etl_runs no longer records run %s as RUNNING (it was declared dead while it ran); "
                "its outcome %s is not recorded over that",
                self._run_id,
                outcome[0],
            )
        report_run_end(self.postgres, self._instance, outcome[3], outcome[0])

    def _start_heartbeat(self) -> None:
        self._stop.clear()
        self._heartbeat = threading.Thread(
            target=self._beat_until_stopped, name="etl-runs-heartbeat", daemon=True
        )
        self._heartbeat.start()

    def _stop_heartbeat(self) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
            self._heartbeat = None

    def _beat_until_stopped(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                self._beat()
            except Exception:
                log.exception("The run ledger's heartbeat failed; it tries again in %s s", HEARTBEAT_SECONDS)

    def _beat(self) -> None:
        """Stamp the heartbeat, then release the dead runs of others."""
        conn, run_id = self._conn, self._run_id
        if conn is None or run_id is None:
            return
        try:
            alive = conn.execute(HEARTBEAT, (run_id,)).rowcount
        except psycopg.OperationalError:
            self._reconnect()
            return
        if not alive:
            log.error(
                "etl_runs no longer records run %s as RUNNING: it was declared dead while it ran", run_id
            )
        reap(conn, self._instance, detected_by=run_id)

    def _reconnect(self) -> None:
        """The ledger's session was dropped, and its locks with it: take them again if still free."""
        old = self._conn
        conn = self._connect(wait_for_run_lock=False)
        lost = [month[:7] for month in self._months if not try_month(conn, month)]
        if lost:
            log.error(
                "While its ledger connection was down, another run took %s; whichever publishes "
                "last supersedes the other's staged load",
                ", ".join(lost),
            )
        conn.execute(HEARTBEAT, (self._run_id,))
        self._conn = conn
        if old is not None:
            old.close()


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
