"""Runs never wedge and never collide: real `finops-dagster nightly` processes, killed with SIGKILL
at a chosen step, on a real mart and a real Dagster instance in PostgreSQL (the repository's
dagster.yaml, with its `finops_mart` pool).

Each kill is placed by PostgreSQL, not by timing: the test holds a lock the step needs, waits
until the run is blocked on it, kills the run, and lets go. The next run must then succeed on
its own within the documented bound, and in between the month must be the old one, whole.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from dagster import DagsterInstance, DagsterRunStatus, instance_for_test, materialize
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from finops_dagster.mart.locks import RUN_NAMESPACE, STAGE_NAMESPACE
from finops_dagster.mart.run_liveness import HEARTBEAT_SECONDS, STALE_AFTER_SECONDS
from finops_dagster.reference.assets import reference_data
from finops_dagster_tests.support.waiting import wait_for

REPOSITORY = Path(__file__).resolve().parents[2]
FINOPS_CLI = str(Path(sys.executable).parent / "finops-dagster")
MONTH = "2026-11"
OLD_CMDB = "demo://?cis=120&months=3&today=2026-12-05&applications=20"
NEW_CMDB = "demo://?cis=160&months=3&today=2026-12-05&applications=20"
FACT = (
    "SELECT application_id, product_id, usage_quantity, unit_cost, total_cost, source_record_count "
    "FROM finops.fact_releve WHERE period_month = %s ORDER BY 1, 2"
)


@dataclass
class Nightly:
    """Where a nightly process runs: its mart, its Dagster instance, its logs."""

    mart_url: str
    dagster_url: str
    home: Path
    logs: Path

    def environment(self, cmdb: str) -> dict[str, str]:
        return {
            **os.environ,
            "POSTGRES_URL": self.mart_url,
            "DAGSTER_POSTGRES_URL": self.dagster_url,
            "DAGSTER_HOME": str(self.home),
            "MONGO_URL": cmdb,
            "FINOPS_DOMAINS_ENABLED": "open_legacy",
        }

    def start(self, name: str, cmdb: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("wb")
        return subprocess.Popen(
            [FINOPS_CLI, "nightly", "--dagster-home", "--months", MONTH],
            env=self.environment(cmdb),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def run(self, name: str, cmdb: str, timeout: float = 240) -> str:
        process = self.start(name, cmdb)
        assert process.wait(timeout=timeout) == 0, self.log(name)
        return self.log(name)


@pytest.fixture
def nightly(mart_url: str, server_url: str, tmp_path: Path) -> Iterator[Nightly]:
    """A mart and a Dagster instance of their own, the instance configured by the repository's
    dagster.yaml (PostgreSQL storage, queued runs, the finops_mart pool)."""
    name = f"finops_dagster_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPOSITORY / "deploy" / "dagster.yaml", home / "dagster.yaml")
    logs = tmp_path / "logs"
    logs.mkdir()
    nightly = Nightly(mart_url, _url(server_url, name), home, logs)
    with _instance(nightly):
        pass  # its schema is created once here, not by two runs starting at the same moment
    yield nightly
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def _instance(nightly: Nightly) -> Iterator[DagsterInstance]:
    """The Dagster instance the nightly processes record in, opened by the test."""
    previous = os.environ.get("DAGSTER_POSTGRES_URL")
    os.environ["DAGSTER_POSTGRES_URL"] = nightly.dagster_url
    try:
        with DagsterInstance.from_config(str(nightly.home)) as instance:
            yield instance
    finally:
        if previous is None:
            del os.environ["DAGSTER_POSTGRES_URL"]
        else:
            os.environ["DAGSTER_POSTGRES_URL"] = previous


def _url(server_url: str, database: str) -> str:
    """A postgresql:// URL (what dagster-postgres reads) of a database on the test server."""
    params = conninfo_to_dict(server_url)
    user = params.get("user") or "postgres"
    return f"postgresql://{user}@{params.get('host') or '127.0.0.1'}:{params.get('port') or 5432}/{database}"


def _fact(conn: psycopg.Connection) -> list[tuple[object, ...]]:
    return conn.execute(FACT, (f"{MONTH}-01",)).fetchall()


def _blocked_queries(conn: psycopg.Connection) -> str:
    """What the sessions of this database waiting on a lock run (the run, stopped where the test
    wants it)."""
    rows = conn.execute(
        "SELECT query FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    ).fetchall()
    return "\n".join(row[0] for row in rows)


def _run_record(conn: psycopg.Connection, status: str) -> tuple[str, str | None]:
    row = conn.execute(
        "SELECT run_id, error_summary FROM finops.etl_runs WHERE status = %s ORDER BY started_at", (status,)
    ).fetchall()
    assert len(row) == 1, f"expected one {status} run, got {row}"
    return row[0]


@dataclass(frozen=True)
class Block:
    """How to stop a run at one step: a statement, in an open transaction, that takes a lock the
    step needs."""

    step: str
    statement: str
    params: tuple[object, ...]
    waits_in: str
    """What the run's blocked statement says."""
    publishes: bool
    """Whether the run had published the month when it was stopped."""


BLOCKS = [
    Block(
        "open_legacy_releves",
        "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
        (STAGE_NAMESPACE, f"open_legacy/{MONTH}-01"),
        waits_in="pg_advisory_xact_lock",
        publishes=False,
    ),
    Block(
        "fact_releve",
        "SELECT 1 FROM finops.fact_releve WHERE period_month = %s LIMIT 1 FOR UPDATE",
        (f"{MONTH}-01",),
        waits_in="DELETE FROM finops.fact_releve",
        publishes=False,
    ),
    Block(
        "fact_releve aggregates",  # the publish stopped at its last aggregate, the facts written
        "SELECT 1 FROM finops.mv_history_domain FOR UPDATE",
        (),
        waits_in="DELETE FROM finops.mv_history_domain",
        publishes=False,
    ),
]


@pytest.mark.parametrize("block", BLOCKS, ids=[block.step for block in BLOCKS])
def test_a_run_killed_at_any_step_never_wedges_the_next(
    nightly: Nightly, mart: psycopg.Connection, mart_url: str, block: Block
) -> None:
    nightly.run("old", OLD_CMDB)
    old = _fact(mart)
    assert old, "the first run published the month"

    with psycopg.connect(mart_url) as blocker:
        blocker.execute(block.statement, block.params or None)
        victim = nightly.start("killed", NEW_CMDB)
        try:
            wait_for(
                lambda: victim.poll() is None and block.waits_in in _blocked_queries(mart),
                f"the run to block in {block.step}",
                timeout=120,
            )
        finally:
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait(timeout=30)
        during = _fact(mart)
        blocker.rollback()
    after = _fact(mart)
    assert during == after, "the kill changed nothing of what readers saw"

    killed_run, _ = _run_record(mart, "RUNNING")
    started = time.monotonic()
    log = nightly.run("next", NEW_CMDB)
    elapsed = time.monotonic() - started
    print(f"\nkilled in {block.step}: the next run succeeded {elapsed:.1f} s after the kill")

    assert "SUCCESS" in log.splitlines()[-1]
    new = _fact(mart)
    assert new and new != old, "the next run published the new month"
    assert after == (new if block.publishes else old), "the killed run left the month old or new, whole"
    status, summary = mart.execute(
        "SELECT status, error_summary FROM finops.etl_runs WHERE run_id = %s", (killed_run,)
    ).fetchone() or (None, None)
    assert status == "ABORTED"
    assert "ended without recording an outcome" in (summary or "")
    if block.publishes:
        assert f"it had published {MONTH}" in (summary or "")
    else:
        assert "nothing of it was published" in (summary or "")
    assert elapsed < STALE_AFTER_SECONDS + HEARTBEAT_SECONDS + 60, "released within the documented bound"

    with _instance(nightly) as instance:
        dead = instance.get_run_by_id(killed_run)
        assert dead is not None and dead.status == DagsterRunStatus.FAILURE
        assert not instance.event_log_storage.get_concurrency_run_ids() - {None}


def test_two_launches_of_one_month_serialize_and_publish_what_one_run_does(
    nightly: Nightly, mart: psycopg.Connection, empty_db_url: str, tmp_path: Path
) -> None:
    first = nightly.start("first", NEW_CMDB)
    second = nightly.start("second", NEW_CMDB)
    assert first.wait(timeout=300) == 0, nightly.log("first")
    assert second.wait(timeout=300) == 0, nightly.log("second")
    both = nightly.log("first") + nightly.log("second")
    assert "Waiting for run" in both, "one run waited for the other"
    assert "off by" not in both and "superseded" not in both
    statuses = [row[0] for row in mart.execute("SELECT status FROM finops.etl_runs").fetchall()]
    assert statuses == ["SUCCESS", "SUCCESS"]
    concurrent = _fact(mart)

    alone = Nightly(empty_db_url, nightly.dagster_url, nightly.home, tmp_path)
    alone.run("alone", NEW_CMDB)
    with psycopg.connect(alone.mart_url) as conn:
        assert _fact(conn) == concurrent, "two launches published exactly what one run publishes"


def test_a_live_run_whose_ledger_connection_drops_is_never_aborted(
    nightly: Nightly, mart: psycopg.Connection, resources: dict[str, object]
) -> None:
    """The connection holding a live run's lock is cut: a run starting meanwhile sees the lock
    free, waits for the heartbeat to say alive or dead, and leaves the live run RUNNING; the live
    run takes its lock back and ends SUCCESS."""
    live = nightly.start("live", NEW_CMDB)
    live_run = wait_for(
        lambda: mart.execute("SELECT run_id FROM finops.etl_runs WHERE status = 'RUNNING'").fetchone(),
        "the live run to start",
    )[0]
    ledger = wait_for(
        lambda: mart.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = %s AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (RUN_NAMESPACE,),
        ).fetchone(),
        "the live run's ledger lock",
    )[0]
    mart.execute("SELECT pg_terminate_backend(%s)", (ledger,))

    with instance_for_test() as instance:
        result = materialize([reference_data], resources=resources, instance=instance)
    assert result.success
    seen = mart.execute("SELECT status FROM finops.etl_runs WHERE run_id = %s", (live_run,)).fetchone()
    assert seen in (("RUNNING",), ("SUCCESS",)), "the other run's start did not abort the live run"
    assert live.wait(timeout=240) == 0, nightly.log("live")
    statuses = dict(mart.execute("SELECT run_id, status FROM finops.etl_runs").fetchall())
    assert statuses == {live_run: "SUCCESS", result.run_id: "SUCCESS"}
