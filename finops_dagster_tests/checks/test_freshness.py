"""The freshness of fact_releve: its check run by Dagster on a real mart, its schedule's ticks, and its
alert through the check-failure sensor to a real HTTP server.

Time is fixed by the run's `finops/freshness_as_of` tag (what the schedule sets from its tick), so the
check judges a chosen morning whatever the clock says.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from dagster import (
    AssetCheckEvaluation,
    AssetCheckSeverity,
    DagsterInstance,
    SensorResult,
    build_schedule_context,
    build_sensor_context,
    instance_for_test,
)
from pytest_httpserver import HTTPServer

from finops_dagster.alerts import WEBHOOK_URL_ENV
from finops_dagster.checks.freshness import AS_OF_TAG, JOB_NAME, latest_deadline
from finops_dagster.domains.public_cloud.resource import public_cloud_from_env
from finops_dagster.pipeline import build_definitions
from finops_dagster.sensors import check_failure_alert_sensor
from finops_dagster.settings import SettingError, freshness_deadline

PARIS = ZoneInfo("Europe/Paris")
DECEMBER = dt.date(2026, 12, 1)
NOVEMBER = dt.date(2026, 11, 1)
SIX = dt.time(6, 0)


@pytest.fixture(autouse=True)
def _paris(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINOPS_TIMEZONE", "Europe/Paris")
    monkeypatch.delenv("FINOPS_FRESHNESS_DEADLINE", raising=False)
    monkeypatch.delenv(WEBHOOK_URL_ENV, raising=False)


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[DagsterInstance]:
    """An instance whose event log has global storage ids, as the alert sensor needs."""
    overrides = {
        "event_log_storage": {
            "module": "dagster._core.storage.event_log",
            "class": "ConsolidatedSqliteEventLogStorage",
            "config": {"base_dir": str(tmp_path / "event_log")},
        }
    }
    with instance_for_test(overrides=overrides, temp_dir=str(tmp_path)) as test_instance:
        yield test_instance


def published(conn: psycopg.Connection, month: dt.date, at: dt.datetime, domain: str = "open_legacy") -> None:
    """A load of `month` by some run, published at `at`."""
    conn.execute(
        "INSERT INTO finops.domain_load (domain_id, period_month, run_id, releve_count, reject_count, "
        "total_cost, source_record_count, source_totals, published_at) "
        "VALUES (%s, %s, %s, 1, 0, 1, 1, '{}', %s)",
        (domain, month, f"run-{at:%Y%m%d%H%M}", at),
    )


def evaluate(
    resources: dict[str, Any], instance: DagsterInstance, as_of: dt.datetime
) -> AssetCheckEvaluation:
    job = build_definitions(resources).resolve_job_def(JOB_NAME)
    result = job.execute_in_process(instance=instance, tags={AS_OF_TAG: as_of.isoformat()})
    [evaluation] = result.get_asset_check_evaluations()
    return evaluation


# --------------------------------------------------------------------------------------------
# Which deadline a moment is judged against
# --------------------------------------------------------------------------------------------


def test_before_the_deadline_the_previous_morning_is_judged() -> None:
    deadline = latest_deadline(dt.datetime(2026, 12, 5, 4, 59, tzinfo=dt.UTC), SIX, PARIS)  # 05:59 Paris
    assert deadline.at == dt.datetime(2026, 12, 4, 6, 0, tzinfo=PARIS)
    assert deadline.window_start == dt.datetime(2026, 12, 3, 6, 0, tzinfo=PARIS)


def test_the_month_is_the_one_the_deadline_falls_in_locally() -> None:
    # 1 December 05:30 UTC is 06:30 in Paris: the deadline of 1 December has passed, December is due
    deadline = latest_deadline(dt.datetime(2026, 12, 1, 5, 30, tzinfo=dt.UTC), SIX, PARIS)
    assert (deadline.at, deadline.month) == (dt.datetime(2026, 12, 1, 6, 0, tzinfo=PARIS), DECEMBER)
    # at 04:30 UTC (05:30 Paris) the last deadline is 30 November's: November is still the one due
    assert latest_deadline(dt.datetime(2026, 12, 1, 4, 30, tzinfo=dt.UTC), SIX, PARIS).month == NOVEMBER


def test_the_deadline_setting_is_a_time_of_day(monkeypatch: pytest.MonkeyPatch) -> None:
    assert freshness_deadline() == SIX
    monkeypatch.setenv("FINOPS_FRESHNESS_DEADLINE", "7:30")
    assert freshness_deadline() == dt.time(7, 30)
    monkeypatch.setenv("FINOPS_FRESHNESS_DEADLINE", "25:00")
    with pytest.raises(SettingError, match="FINOPS_FRESHNESS_DEADLINE"):
        freshness_deadline()


def test_an_unknown_time_zone_fails_at_load_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, resources: dict[str, Any]
) -> None:
    monkeypatch.setenv("FINOPS_TIMEZONE", "Europe/Atlantis")
    with pytest.raises(SettingError, match="FINOPS_TIMEZONE"):
        build_definitions(resources)


# --------------------------------------------------------------------------------------------
# The check, run by Dagster on the mart
# --------------------------------------------------------------------------------------------


def test_published_by_the_night_before_the_deadline_is_fresh(
    resources: dict[str, Any], mart: psycopg.Connection, instance: DagsterInstance
) -> None:
    published(mart, DECEMBER, dt.datetime(2026, 12, 5, 2, 14, tzinfo=PARIS))

    evaluation = evaluate(resources, instance, dt.datetime(2026, 12, 5, 6, 0, tzinfo=PARIS))

    assert evaluation.passed
    assert evaluation.description == (
        "2026-12 published for the deadline of 2026-12-05 06:00 CET by every domain"
    )
    assert evaluation.metadata["stale_domains"].value == 0
    assert evaluation.metadata["deadline"].value == dt.datetime(2026, 12, 5, 6, 0, tzinfo=PARIS).timestamp()


def test_a_night_without_publish_fails_and_says_when_it_last_was(
    resources: dict[str, Any], mart: psycopg.Connection, instance: DagsterInstance
) -> None:
    published(mart, DECEMBER, dt.datetime(2026, 12, 3, 2, 10, tzinfo=PARIS))  # two nights ago
    published(mart, NOVEMBER, dt.datetime(2026, 12, 5, 2, 10, tzinfo=PARIS))  # last night, the wrong month

    evaluation = evaluate(resources, instance, dt.datetime(2026, 12, 5, 9, 0, tzinfo=PARIS))

    assert not evaluation.passed
    assert evaluation.severity == AssetCheckSeverity.ERROR
    assert evaluation.description.startswith(
        "2026-12 not published since 2026-12-04 06:00 for the deadline of 2026-12-05 06:00 CET: "
        "open_legacy last published 2026-12-03 02:10."
    )
    assert evaluation.metadata["stale_domains"].value == 1


def test_a_domain_never_published_is_named(
    resources: dict[str, Any], mart: psycopg.Connection, instance: DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FINOPS_DOMAINS_ENABLED", "open_legacy,public_cloud")
    monkeypatch.setenv("FINOPS_FOCUS_PATHS", "/nonexistent/{month}/*.csv")
    published(mart, DECEMBER, dt.datetime(2026, 12, 5, 2, 14, tzinfo=PARIS))

    with_public_cloud = {**resources, "public_cloud": public_cloud_from_env()}
    evaluation = evaluate(with_public_cloud, instance, dt.datetime(2026, 12, 5, 6, 0, tzinfo=PARIS))

    assert not evaluation.passed
    assert "public_cloud never published" in evaluation.description
    assert "open_legacy" not in evaluation.description


def test_a_publish_after_the_deadline_makes_it_fresh_again(
    resources: dict[str, Any], mart: psycopg.Connection, instance: DagsterInstance
) -> None:
    published(mart, DECEMBER, dt.datetime(2026, 12, 5, 9, 30, tzinfo=PARIS))  # rerun by hand

    assert evaluate(resources, instance, dt.datetime(2026, 12, 5, 10, 0, tzinfo=PARIS)).passed


# --------------------------------------------------------------------------------------------
# The schedule and the alert
# --------------------------------------------------------------------------------------------


def test_the_schedule_ticks_at_the_deadline_in_the_pipeline_time_zone(
    resources: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FINOPS_FRESHNESS_DEADLINE", "07:15")
    schedule = build_definitions(resources).resolve_schedule_def("fact_releve_freshness_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("15 7 * * *", "Europe/Paris")
    assert schedule.job_name == JOB_NAME

    tick = dt.datetime(2026, 12, 5, 7, 15, tzinfo=PARIS)
    with build_schedule_context(scheduled_execution_time=tick) as context:
        data = schedule.evaluate_tick(context)
    [request] = data.run_requests or []
    assert request.run_key == "freshness-2026-12-05"
    assert request.tags[AS_OF_TAG] == tick.isoformat()


def test_the_nightly_and_publish_jobs_leave_the_freshness_check_to_its_schedule(
    resources: dict[str, Any],
) -> None:
    defs = build_definitions(resources)
    for name in ("finops_nightly", "publish_months"):
        checks = {key.name for key in defs.resolve_job_def(name).asset_layer.asset_graph.asset_check_keys}
        assert "published_by_deadline" not in checks
        assert {"reconciliation", "volume_anomaly"} <= checks


def test_a_stale_month_alerts_through_the_check_sensor(
    resources: dict[str, Any], mart: psycopg.Connection, instance: DagsterInstance,
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(WEBHOOK_URL_ENV, httpserver.url_for("/hook"))
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    first = check_failure_alert_sensor(build_sensor_context(instance=instance))
    assert isinstance(first, SensorResult)
    published(mart, DECEMBER, dt.datetime(2026, 12, 1, 2, 0, tzinfo=PARIS))

    evaluate(resources, instance, dt.datetime(2026, 12, 5, 6, 0, tzinfo=PARIS))
    tick = check_failure_alert_sensor(build_sensor_context(instance=instance, cursor=first.cursor))

    assert isinstance(tick, SensorResult)
    [posted] = [json.loads(request.get_data(as_text=True)) for request, _ in httpserver.log]
    assert posted["finops"]["asset_key"] == "fact_releve"
    assert posted["finops"]["check_name"] == "published_by_deadline"
    assert posted["finops"]["severity"] == "ERROR"
    assert posted["finops"]["error_summary"].startswith("2026-12 not published since 2026-12-04 06:00")
