"""JSON logs: the code location's Dagster events through its `console` logger, uvicorn's access
records, exceptions; text stays the default; a wrong format is refused naming the setting."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Any

import pytest
from dagster import instance_for_test

from finops_dagster.mart.etl_runs import RANGE_END_TAG, RANGE_START_TAG
from finops_dagster.observe.logs import JsonFormatter, dagster_loggers, log_format
from finops_dagster.pipeline import build_definitions
from finops_dagster.settings import SettingError
from finops_dagster_tests.support.cmdb_documents import application, vm


def test_dagster_events_of_a_run_are_json_lines_with_their_context(
    resources: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FINOPS_LOG_FORMAT", "json")
    night = dt.datetime(2025, 3, 2, 2, tzinfo=dt.UTC)
    resources["cmdb"].db()["cmdb_ci"].insert_many([
        application("PAYMENTS", day=night.date()),
        vm("vm-01", day=night.date(), cpus="4", memory="8192", disks_size="100", app="PAYMENTS"),
    ])
    job = build_definitions(resources).resolve_job_def("finops_nightly")
    with instance_for_test() as instance:
        result = job.execute_in_process(
            instance=instance, raise_on_error=False,
            tags={RANGE_START_TAG: "2025-03-01", RANGE_END_TAG: "2025-03-01"},
            run_config={"loggers": {"console": {"config": {"log_level": "DEBUG"}}}},
        )
    assert result.success
    lines = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]
    events = [r for r in records if r["logger"] == "dagster"]
    assert events and all(r["run_id"] == result.run_id and r["month"] == "2025-03" for r in events)
    assert {"STEP_START", "STEP_SUCCESS", "ASSET_MATERIALIZATION"} <= {r.get("event") for r in events}
    domain_steps = [r for r in events if r.get("step") == "open_legacy_releves"]
    assert domain_steps and all(r["domain"] == "open_legacy" for r in domain_steps)
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)


def test_text_stays_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FINOPS_LOG_FORMAT", raising=False)
    assert log_format() == "text"
    assert dagster_loggers() is None


def test_a_wrong_format_is_refused_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINOPS_LOG_FORMAT", "xml")
    with pytest.raises(SettingError, match="FINOPS_LOG_FORMAT must be text or json, got 'xml'"):
        log_format()


def test_access_records_and_exceptions_are_fields() -> None:
    access = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/api/v1/costs/domains?from=2026-10", "1.1", 200), None,
    )
    entry = json.loads(JsonFormatter().format(access))
    assert entry["message"] == '127.0.0.1:5000 - "GET /api/v1/costs/domains?from=2026-10 HTTP/1.1" 200'
    assert (entry["method"], entry["path"], entry["status"]) == (
        "GET", "/api/v1/costs/domains?from=2026-10", 200
    )
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "failed for %s", ("2026-11",), sys.exc_info()
        )
    failed.domain, failed.month = "native", "2026-11"  # type: ignore[attr-defined]
    entry = json.loads(JsonFormatter().format(failed))
    assert entry["message"] == "failed for 2026-11" and entry["level"] == "ERROR"
    assert (entry["domain"], entry["month"]) == ("native", "2026-11")
    assert entry["exception"].splitlines()[-1] == "ValueError: boom"
    assert entry["time"].endswith("+00:00")
