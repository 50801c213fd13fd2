"""The jobs offered by name, and fact_releve selected without its domains, through Dagster's machinery."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from dagster import DagsterInstance, instance_for_test

from finops_dagster.mart.assets import FACT_RELEVE
from finops_dagster.pipeline import build_definitions
from finops_dagster_tests.support.small_cmdb import MARCH, MARCH_TOTAL, fill


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as test_instance:
        yield test_instance


def test_publish_months_publishes_the_selected_month(
    resources: dict[str, Any], mart: psycopg.Connection, instance: DagsterInstance
) -> None:
    fill(resources["cmdb"], MARCH)
    job = build_definitions(resources).resolve_job_def("publish_months")

    result = job.execute_in_process(instance=instance, partition_key=MARCH.isoformat())

    assert result.success
    assert mart.execute(
        "SELECT sum(total_cost) FROM finops.fact_releve WHERE period_month = %s", (MARCH,)
    ).fetchone() == (MARCH_TOTAL,)
    assert mart.execute("SELECT count(*) FROM finops.mv_cost_domain_month").fetchone() == (1,)


def test_fact_releve_alone_refuses_at_once_naming_the_job_and_changes_nothing(
    resources: dict[str, Any], mart: psycopg.Connection, instance: DagsterInstance
) -> None:
    fill(resources["cmdb"], MARCH)
    job = build_definitions(resources).get_implicit_global_asset_job_def()

    result = job.execute_in_process(
        instance=instance,
        asset_selection=[FACT_RELEVE],
        partition_key=MARCH.isoformat(),
        raise_on_error=False,
    )

    assert not result.success
    [failure] = [event for event in result.all_events if event.is_step_failure]
    message = failure.step_failure_data.error.message if failure.step_failure_data.error else ""
    assert "this run selects none of them (open_legacy_releves); nothing was changed" in message
    assert "Publish months with the job publish_months" in message
    assert failure.step_failure_data.user_failure_data is not None
    assert mart.execute("SELECT to_regclass('finops.fact_releve_2025_03')").fetchone() == (None,)
    assert mart.execute("SELECT count(*) FROM finops.fact_releve").fetchone() == (0,)
