"""The full rebuild of the aggregates, as the README runs it: the CLI command and the Dagster job."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from dagster import AssetKey

from finops_dagster.cli import main as cli_main
from finops_dagster.mart import rebuild
from finops_dagster.mart.aggregates import AGGREGATES
from finops_dagster.mart.rebuild import rebuild_aggregates_job
from finops_dagster.resources.postgres import PostgresResource
from finops_dagster_tests.support.aggregate_tables import snapshot
from finops_dagster_tests.support.fact_rows import allocate_nothing, insert_fact

JAN, FEB = dt.date(2025, 1, 1), dt.date(2025, 2, 1)


@pytest.fixture
def facts_only(mart: psycopg.Connection) -> psycopg.Connection:
    """Relevés written straight into fact_releve (a migrated mart, or history rewritten): no aggregate."""
    mart.execute("INSERT INTO finops.dim_application_group (group_id, label) VALUES ('GRP', 'Group')")
    mart.execute(
        "INSERT INTO finops.dim_application (application_id, label, group_id, source) VALUES "
        "('APP-A', 'A', 'GRP', 'test'), ('APP-B', 'B', 'GRP', 'test')"
    )
    insert_fact(mart, JAN, 3, "300")
    insert_fact(mart, FEB, 2, "900", application="APP-B")
    allocate_nothing(mart)
    assert mart.execute("SELECT count(*) FROM finops.mv_cost_domain_month").fetchone() == (0,)
    return mart


def test_the_command_rebuilds_every_aggregate(
    facts_only: psycopg.Connection,
    mart_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("POSTGRES_URL", mart_url)
    assert cli_main(["rebuild-aggregates"]) == 0
    said = capsys.readouterr().out
    assert f"{len(AGGREGATES)} aggregates rebuilt in" in said and "every month matches fact_releve" in said
    assert facts_only.execute(
        "SELECT period_month, total_cost FROM finops.mv_cost_domain_month ORDER BY 1"
    ).fetchall() == [(JAN, 300), (FEB, 900)]
    rebuilt = snapshot(facts_only)
    assert cli_main(["rebuild-aggregates"]) == 0  # idempotent
    assert snapshot(facts_only) == rebuilt


def test_the_job_rebuilds_and_records_each_aggregate(facts_only: psycopg.Connection, mart_url: str) -> None:
    result = rebuild_aggregates_job.execute_in_process(resources={"postgres": PostgresResource(url=mart_url)})
    assert result.success
    recorded = {
        event.asset_key: event.step_materialization_data.materialization.metadata["rows"].value
        for event in result.get_asset_materialization_events()
    }
    assert set(recorded) == {AssetKey(name) for name in AGGREGATES}
    assert recorded[AssetKey("mv_cost_domain_month")] == 2
    assert recorded[AssetKey("mv_history_domain")] == 2


def test_a_rebuild_whose_aggregates_do_not_add_up_fails_naming_them(
    facts_only: psycopg.Connection,
    mart_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("POSTGRES_URL", mart_url)
    assert cli_main(["rebuild-aggregates"]) == 0
    capsys.readouterr()
    facts_only.execute(
        "UPDATE finops.fact_releve SET total_cost = total_cost + 1 WHERE period_month = %s", (FEB,)
    )
    monkeypatch.setattr(rebuild, "rebuild_aggregates", lambda conn, **_: {})  # a rebuild that changed nothing
    assert cli_main(["rebuild-aggregates"]) == 1
    said = capsys.readouterr().err
    assert "the rebuilt aggregates differ from fact_releve" in said
    assert "mv_cost_domain_month 2025-02-01 EUR: view 900.000000 vs fact 902.000000" in said

    result = rebuild_aggregates_job.execute_in_process(
        resources={"postgres": PostgresResource(url=mart_url)}, raise_on_error=False
    )
    assert not result.success
    [failure] = [event for event in result.all_events if event.is_step_failure]
    assert "mv_cost_domain_month 2025-02-01 EUR" in str(failure.step_failure_data.error)
