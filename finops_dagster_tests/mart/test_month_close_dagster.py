"""Month close and restatement through Dagster, with a real instance: the nightly job publishes a
month, the close_month job closes it, the nightly job then skips it (run log and metadata say so),
the restate_months job computes a restatement after an allocation rule changed, and the
approve_restatement job publishes it with a new version."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from dagster import DagsterEventType, DagsterInstance, ExecuteInProcessResult, instance_for_test

from finops_dagster.allocation.rules import COLUMNS
from finops_dagster.mart.etl_runs import RANGE_END_TAG, RANGE_START_TAG, RunLedger
from finops_dagster.pipeline import build_definitions
from finops_dagster.resources.mongo import MongoResource
from finops_dagster.resources.postgres import PostgresResource

OCTOBER = dt.date(2026, 10, 1)
CMDB = "demo://?cis=120&months=3&today=2026-12-05&applications=20"
EVEN = "IDLE,v1,10,2020-01-01,,UNALLOCATED,open_legacy,,,domain,open_legacy,even,"
PROPORTIONAL = "IDLE,v2,10,2020-01-01,,UNALLOCATED,open_legacy,,,domain,open_legacy,proportional,"


@pytest.fixture
def pipeline(mart_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("FINOPS_ALLOCATION_RULES", str(tmp_path / "rules.csv"))
    postgres = PostgresResource(url=mart_url)
    resources = {
        "postgres": postgres,
        "cmdb": MongoResource(url=CMDB),
        "run_ledger": RunLedger(postgres=postgres),
    }
    yield resources


def write_rules(path: str, *rows: str) -> None:
    Path(path).write_text("\n".join([",".join(COLUMNS), *rows]) + "\n")


def execute(
    resources: dict[str, Any], instance: DagsterInstance, job_name: str, **options: Any
) -> ExecuteInProcessResult:
    job = build_definitions(resources).resolve_job_def(job_name)
    return job.execute_in_process(instance=instance, raise_on_error=False, **options)


def over_october(
    resources: dict[str, Any], instance: DagsterInstance, job_name: str
) -> ExecuteInProcessResult:
    tags = {RANGE_START_TAG: OCTOBER.isoformat(), RANGE_END_TAG: OCTOBER.isoformat()}
    return execute(resources, instance, job_name, tags=tags)


def run_log(instance: DagsterInstance, result: ExecuteInProcessResult) -> list[str]:
    """The run's log lines as the UI shows them (what the steps logged included)."""
    return [entry.user_message for entry in instance.all_logs(result.run_id) if entry.user_message]


def fact_metadata(result: ExecuteInProcessResult) -> dict[str, Any]:
    [materialization] = result.asset_materializations_for_node("fact_releve")
    return {key: value.value for key, value in materialization.metadata.items()}


def test_close_skip_restate_and_approve_through_dagster(
    pipeline: dict[str, Any], mart: psycopg.Connection
) -> None:
    rules = os.environ["FINOPS_ALLOCATION_RULES"]
    write_rules(rules, EVEN)
    with instance_for_test() as instance:
        first = over_october(pipeline, instance, "finops_nightly")
        assert first.success
        published = mart.execute(
            "SELECT application_id, total_cost FROM finops_allocated.mv_cost_application_month "
            "WHERE period_month = %s",
            (OCTOBER,),
        ).fetchall()

        closed = execute(
            pipeline,
            instance,
            "close_month",
            run_config={
                "ops": {"close_the_month": {"config": {"month": "2026-10", "by": "alice", "note": "Q4"}}}
            },
        )
        assert closed.success
        assert mart.execute(
            "SELECT status, version, closed_by, note FROM finops.month_status"
        ).fetchone() == (
            "CLOSED",
            1,
            "alice",
            "Q4",
        )

        # the nightly over the closed month: skipped, said in the log and the metadata, nothing rewritten
        nightly = over_october(pipeline, instance, "finops_nightly")
        assert nightly.success
        assert fact_metadata(nightly)["outcome"] == "skipped (closed)"
        assert any(
            "2026-10 is closed at version 1 (by alice" in line and "skipped, not rewritten" in line
            for line in run_log(instance, nightly)
        )
        assert mart.execute("SELECT DISTINCT run_id FROM finops.fact_releve").fetchall() == [(first.run_id,)]

        # a rule changes; the restatement job computes what it changes, publishes nothing
        write_rules(rules, PROPORTIONAL)
        restated = over_october(pipeline, instance, "restate_months")
        assert restated.success
        assert fact_metadata(restated)["outcome"] == "restatement computed"
        assert any(f"--approve {restated.run_id}" in line for line in run_log(instance, restated))
        status, changed, lines = mart.execute(
            "SELECT status, changed_inputs, lines_changed FROM finops.month_restatement WHERE run_id = %s",
            (restated.run_id,),
        ).fetchone() or (None, None, None)
        assert (status, changed) == ("PENDING", ["allocation_rule"]) and lines > 0
        assert (
            mart.execute(
                "SELECT application_id, total_cost FROM finops_allocated.mv_cost_application_month "
                "WHERE period_month = %s",
                (OCTOBER,),
            ).fetchall()
            == published
        )

        approved = execute(
            pipeline,
            instance,
            "approve_restatement",
            run_config={
                "ops": {
                    "approve_the_restatement": {
                        "config": {"month": "2026-10", "run": restated.run_id, "by": "bob"}
                    }
                }
            },
        )
        assert approved.success
        assert mart.execute("SELECT status, version, approved_by FROM finops.month_status").fetchone() == (
            "CLOSED",
            2,
            "bob",
        )
        moved = mart.execute(
            "SELECT DISTINCT rule_version, allocated_method_id, run_id FROM finops.fact_allocation"
        ).fetchall()
        assert moved == [("v2", "proportional", restated.run_id)]
        expected = mart.execute(
            "SELECT application_id, sum(allocated_after) FROM finops.month_restatement_line "
            "WHERE run_id = %s GROUP BY 1 ORDER BY 1",
            (restated.run_id,),
        ).fetchall()
        now = dict(
            mart.execute(
                "SELECT application_id, sum(total_cost) FROM finops.fact_releve_allocated "
                "WHERE period_month = %s GROUP BY 1",
                (OCTOBER,),
            ).fetchall()
        )
        assert all(now[application] == amount for application, amount in expected)

        # approving twice is refused, and says why
        again = execute(
            pipeline,
            instance,
            "approve_restatement",
            run_config={
                "ops": {
                    "approve_the_restatement": {
                        "config": {"month": "2026-10", "run": restated.run_id, "by": "bob"}
                    }
                }
            },
        )
        assert not again.success
        [failure] = [e for e in again.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
        assert "is APPROVED, not pending" in str(failure.step_failure_data.error)
