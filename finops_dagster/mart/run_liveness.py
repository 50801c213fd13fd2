"""Which recorded runs are dead, and releasing everything a dead run still holds.

A live run proves it is alive twice (see RunLedger): its ledger connection holds the run's
advisory lock, and it stamps `etl_runs.heartbeat_at` every HEARTBEAT_SECONDS. A run is dead only
when both proofs are gone: nobody holds its lock *and* its heartbeat is older than
STALE_AFTER_SECONDS. The lock alone is not enough (a live run whose idle connection was dropped
loses it for a moment), nor is the heartbeat alone (a live run may be slow to stamp it).

Every live run reaps on every heartbeat, so a dead run is released while others are waiting on
it, not only when the next night starts. Releasing means: ABORTED in etl_runs, with what it had
published, and in Dagster's own records failed with its concurrency-pool slots freed, so a step of
another run waiting on the `finops_mart` pool goes on.

Longest time from a run's death to its release, with another run alive or starting:
- process killed (SIGKILL, OOM, pod deleted): the server drops its session at once, so
  STALE_AFTER_SECONDS + HEARTBEAT_SECONDS;
- its host lost (node down, network cut): the server notices the dead peer after
  SERVER_KEEPALIVE_SECONDS, so the bound becomes RELEASE_BOUND_SECONDS.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import psycopg

from finops_dagster.mart.locks import RUN_NAMESPACE

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5
STALE_AFTER_SECONDS = 30
KEEPALIVE_IDLE_SECONDS, KEEPALIVE_INTERVAL_SECONDS, KEEPALIVE_COUNT = 10, 5, 3
SERVER_KEEPALIVE_SECONDS = KEEPALIVE_IDLE_SECONDS + KEEPALIVE_INTERVAL_SECONDS * KEEPALIVE_COUNT
RELEASE_BOUND_SECONDS = SERVER_KEEPALIVE_SECONDS + STALE_AFTER_SECONDS + HEARTBEAT_SECONDS

SERVER_KEEPALIVES = """
SELECT set_config('tcp_keepalives_idle', %s, false), set_config('tcp_keepalives_interval', %s, false),
       set_config('tcp_keepalives_count', %s, false)
"""
"""Per-session server settings of a ledger connection: the server ends the session of a lost host
(and so frees its locks) within SERVER_KEEPALIVE_SECONDS instead of the system's two hours."""

TAKE_RUN_LOCK = "SELECT pg_advisory_lock(%s, hashtext(%s))"
TRY_RUN_LOCK = "SELECT pg_try_advisory_lock(%s, hashtext(%s))"
RELEASE_RUN_LOCK = "SELECT pg_advisory_unlock(%s, hashtext(%s))"
"""A run's lock, held by its ledger connection while it lives."""

RUNNING = """
SELECT run_id, heartbeat_at < clock_timestamp() - make_interval(secs => %(stale)s) FROM finops.etl_runs
WHERE status = 'RUNNING' AND run_id <> %(self)s ORDER BY started_at
"""

MARK_ABORTED = """
UPDATE finops.etl_runs
SET status = 'ABORTED', ended_at = clock_timestamp(), error_summary = %(summary)s
WHERE run_id = %(run)s AND status = 'RUNNING'
  AND heartbeat_at < clock_timestamp() - make_interval(secs => %(stale)s)
"""
"""Checked again in the UPDATE itself: a run that stamped its heartbeat meanwhile (its publish
holding the row, say) is alive and keeps RUNNING."""

PUBLISHED_MONTHS = """
SELECT DISTINCT to_char(period_month, 'YYYY-MM') FROM finops.domain_load
WHERE run_id = %s AND published_at IS NOT NULL ORDER BY 1
"""


def keep_session_alive(conn: psycopg.Connection) -> None:
    """Make the server notice quickly when this connection's host disappears."""
    conn.execute(
        SERVER_KEEPALIVES,
        (str(KEEPALIVE_IDLE_SECONDS), str(KEEPALIVE_INTERVAL_SECONDS), str(KEEPALIVE_COUNT)),
    )


@dataclass(frozen=True)
class DeadRun:
    run_id: str
    summary: str


def unowned_runs(
    conn: psycopg.Connection, *, detected_by: str, stale_after: float = STALE_AFTER_SECONDS
) -> dict[str, bool]:
    """The RUNNING rows of other runs whose lock nobody holds, each with whether its heartbeat is
    stale: stale ones are dead; fresh ones died just now, or lost their connection for a moment."""
    unowned = {}
    for run_id, stale in conn.execute(RUNNING, {"self": detected_by, "stale": stale_after}).fetchall():
        if _lock_free(conn, run_id):
            unowned[run_id] = stale
    return unowned


def _lock_free(conn: psycopg.Connection, run_id: str) -> bool:
    row = conn.execute(TRY_RUN_LOCK, (RUN_NAMESPACE, run_id)).fetchone()
    if not (row and row[0]):
        return False
    conn.execute(RELEASE_RUN_LOCK, (RUN_NAMESPACE, run_id))
    return True


def settle_recent_deaths(
    conn: psycopg.Connection, *, detected_by: str, stale_after: float = STALE_AFTER_SECONDS
) -> None:
    """Wait until every unowned RUNNING row is either owned again (alive) or stale (dead).

    A run starting right after another died would otherwise find it neither alive nor dead yet
    and leave it RUNNING until some later run; waiting here (at most `stale_after` plus a
    heartbeat) lets this run's start release it.
    """
    deadline = time.monotonic() + stale_after + HEARTBEAT_SECONDS
    while time.monotonic() < deadline:
        recent = [
            run_id
            for run_id, stale in unowned_runs(conn, detected_by=detected_by, stale_after=stale_after).items()
            if not stale
        ]
        if not recent:
            return
        log.info("Waiting for run(s) %s, whose lock is free, to prove alive or stale", ", ".join(recent))
        time.sleep(1)


def abort_dead_runs(
    conn: psycopg.Connection, *, detected_by: str, stale_after: float = STALE_AFTER_SECONDS
) -> list[DeadRun]:
    """Mark ABORTED every RUNNING row whose run is dead (lock free, heartbeat stale).

    The lock is not kept while marking: a run that took it back stamped its heartbeat first, and
    MARK_ABORTED checks the heartbeat again.
    """
    aborted = []
    for run_id, stale in unowned_runs(conn, detected_by=detected_by, stale_after=stale_after).items():
        if not stale:
            continue
        summary = _death_summary(conn, run_id, detected_by)
        if conn.execute(MARK_ABORTED, {"summary": summary, "run": run_id, "stale": stale_after}).rowcount:
            aborted.append(DeadRun(run_id, summary))
    return aborted


def _death_summary(conn: psycopg.Connection, run_id: str, detected_by: str) -> str:
    """What a person reading etl_runs needs: the run died, and whether the mart changed before."""
    published = [month for (month,) in conn.execute(PUBLISHED_MONTHS, (run_id,)).fetchall()]
    done = (
        f"it had published {', '.join(published)} (the views are refreshed by the next successful run)"
        if published
        else "nothing of it was published"
    )
    return f"the run's process ended without recording an outcome (detected by run {detected_by}); {done}"


def release_in_dagster(instance: Any, dead: DeadRun) -> None:
    """Fail a dead run in Dagster's records and free its concurrency-pool slots.

    Without this a run killed while holding the `finops_mart` slot stays STARTED for ever and
    every later run's publish waits on the slot. Runs of another Dagster instance (the headless
    nightly's ephemeral one) are not in this instance's records and are left alone.
    """
    if instance is None:
        return
    run = instance.get_run_by_id(dead.run_id)
    if run is None:
        return
    if not run.is_finished:
        instance.report_run_failed(run, f"finops-dagster: {dead.summary}")
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        storage.free_concurrency_slots_for_run(dead.run_id)


def reap(conn: psycopg.Connection, instance: Any, *, detected_by: str) -> list[DeadRun]:
    """Abort the dead runs in etl_runs and release them in Dagster."""
    dead_runs = abort_dead_runs(conn, detected_by=detected_by)
    for dead in dead_runs:
        log.warning("Run %s is dead: %s", dead.run_id, dead.summary)
        try:
            release_in_dagster(instance, dead)
        except Exception:
            log.exception("Could not release dead run %s in Dagster's records", dead.run_id)
    return dead_runs
