"""The nightly schedule and the definitions' configuration, evaluated through Dagster itself."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from typing import Any

import pytest
from dagster import Definitions, RunRequest, build_schedule_context

from finops_dagster.mart.etl_runs import RANGE_END_TAG, RANGE_START_TAG, run_periods
from finops_dagster.partitions import monthly_partitions
from finops_dagster.pipeline import build_definitions
from finops_dagster.releve import month_start
from finops_dagster.schedules import nightly_months
from finops_dagster.settings import AVAILABLE_DOMAINS, SettingError, enabled_domains, first_month

SCHEDULE = "finops_nightly_schedule"
NIGHT = dt.datetime(2026, 11, 22, 2, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _clean_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "FINOPS_RECALC_PREVIOUS_MONTH",
        "FINOPS_DOMAINS_ENABLED",
        "FINOPS_NIGHTLY_CRON",
        "FINOPS_TIMEZONE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FINOPS_DOMAINS_ENABLED", "open_legacy")


def test_nightly_months_previous_and_current() -> None:
    assert nightly_months(NIGHT, recalc_previous_month=True) == ("2026-10-01", "2026-11-01")


def test_nightly_months_without_recalc() -> None:
    assert nightly_months(NIGHT, recalc_previous_month=False) == ("2026-11-01", "2026-11-01")


def test_nightly_months_across_a_year_boundary() -> None:
    night = dt.datetime(2027, 1, 3, 2, 0, tzinfo=dt.UTC)
    assert nightly_months(night, recalc_previous_month=True) == ("2026-12-01", "2027-01-01")


def test_nightly_months_on_the_first_night_of_a_month() -> None:
    night = dt.datetime(2026, 3, 1, 2, 0, tzinfo=dt.UTC)
    assert nightly_months(night, recalc_previous_month=True) == ("2026-02-01", "2026-03-01")


def _tick(defs: Definitions, when: dt.datetime) -> list[RunRequest]:
    schedule = defs.resolve_schedule_def(SCHEDULE)
    with build_schedule_context(scheduled_execution_time=when) as context:
        data = schedule.evaluate_tick(context)
    assert data.skip_message is None
    return list(data.run_requests or [])


def test_schedule_requests_one_run_over_the_range(resources: dict[str, Any]) -> None:
    defs = build_definitions(resources)
    schedule = defs.resolve_schedule_def(SCHEDULE)
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.job_name == "finops_nightly"

    requests = _tick(defs, NIGHT)

    assert len(requests) == 1
    request = requests[0]
    assert request.run_key == "nightly-2026-11-22"
    assert request.tags[RANGE_START_TAG] == "2026-10-01"
    assert request.tags[RANGE_END_TAG] == "2026-11-01"
    assert request.partition_key is None  # a range, not one run per month
    assert run_periods(request.tags) == ["2026-10-01", "2026-11-01"]


def test_schedule_without_previous_month(resources: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINOPS_RECALC_PREVIOUS_MONTH", "false")
    (request,) = _tick(build_definitions(resources), NIGHT)
    assert (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) == ("2026-11-01", "2026-11-01")


def test_invalid_recalc_setting_fails_naming_the_variable(
    resources: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FINOPS_RECALC_PREVIOUS_MONTH", "maybe")
    with pytest.raises(
        SettingError, match=r"FINOPS_RECALC_PREVIOUS_MONTH must be true or false, got 'maybe'"
    ):
        build_definitions(resources)


def test_definitions_are_loadable(resources: dict[str, Any]) -> None:
    defs = build_definitions(resources)
    Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {
        "reference_data",
        "applications",
        "open_legacy_releves",
        "fact_releve",
        "mv_history_domain",
    } <= keys


def test_nightly_job_covers_the_current_month(resources: dict[str, Any]) -> None:
    job = build_definitions(resources).resolve_job_def("finops_nightly")
    assert job.partitions_def == monthly_partitions
    keys = job.partitions_def.get_partition_keys()
    today = dt.datetime.now(dt.UTC)
    assert keys[-1] == month_start(today).isoformat()  # end_offset=1: the month in progress
    assert keys[0] == "2020-01-01"  # FINOPS_FIRST_MONTH's default
    assert month_start(month_start(today) - dt.timedelta(days=1)).isoformat() in keys


def test_enabled_domains_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FINOPS_DOMAINS_ENABLED")
    assert enabled_domains() == AVAILABLE_DOMAINS


def test_enabled_domains_accepts_available_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINOPS_DOMAINS_ENABLED", " open_legacy , ")
    assert enabled_domains() == ("open_legacy",)


def test_enabled_domains_rejects_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINOPS_DOMAINS_ENABLED", "open_legacy,mainframe")
    with pytest.raises(SettingError, match=r"FINOPS_DOMAINS_ENABLED: unknown domain 'mainframe'"):
        enabled_domains()


def test_enabled_domains_keeps_the_pipeline_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINOPS_DOMAINS_ENABLED", "native,public_cloud,open_legacy")
    assert enabled_domains() == ("open_legacy", "public_cloud", "native")


def test_enabled_domains_rejects_an_empty_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINOPS_DOMAINS_ENABLED", ",,")
    with pytest.raises(SettingError, match="FINOPS_DOMAINS_ENABLED names no domain"):
        enabled_domains()


def test_definitions_refuse_an_unknown_domain(
    resources: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FINOPS_DOMAINS_ENABLED", "mainframe")
    with pytest.raises(SettingError, match="FINOPS_DOMAINS_ENABLED"):
        build_definitions(resources)


def test_first_month_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FINOPS_FIRST_MONTH", raising=False)
    assert first_month() == dt.date(2020, 1, 1)


def test_first_month_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINOPS_FIRST_MONTH", " 2018-07 ")
    assert first_month() == dt.date(2018, 7, 1)


@pytest.mark.parametrize("raw", ["2018-13", "2018-00", "2018-7", "2018-07-01", "July 2018", "201807"])
def test_first_month_invalid_names_the_variable(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("FINOPS_FIRST_MONTH", raw)
    with pytest.raises(SettingError, match=f"FINOPS_FIRST_MONTH must be a month as YYYY-MM.*{raw!r}"):
        first_month()


def test_first_month_moves_the_partitions_start() -> None:
    """The partitions module reads the setting when it loads, as a code location does."""
    program = (
        "from finops_dagster.partitions import monthly_partitions as p; "
        "keys = p.get_partition_keys(); print(keys[0], '2017-12-01' in keys)"
    )
    env = {**os.environ, "FINOPS_FIRST_MONTH": "2018-01"}
    out = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["2018-01-01", "False"]
    env["FINOPS_FIRST_MONTH"] = "2018-1"
    failed = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True)
    assert failed.returncode != 0
    assert "FINOPS_FIRST_MONTH must be a month as YYYY-MM" in failed.stderr
