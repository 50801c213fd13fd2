"""Alerting tests against real parts: a real Dagster instance with real runs, a real HTTP server.

The webhook URL carries a sentinel token in its path so that every test touching delivery can
prove the secret never reaches exception texts or logs.
"""

from __future__ import annotations

import json
import logging
import socket
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    DagsterInstance,
    SensorResult,
    SkipReason,
    StaticPartitionsDefinition,
    asset,
    asset_check,
    build_run_status_sensor_context,
    build_sensor_context,
    instance_for_test,
    materialize,
)
from pytest_httpserver import HTTPServer

from finops_dagster.alerts import (
    UI_URL_ENV,
    WEBHOOK_URL_ENV,
    Alert,
    AlertDeliveryError,
    PartitionRange,
    build_payload,
    partition_range_from_tags,
    post_alert,
    summarize_error,
)
from finops_dagster.observe.logs import JsonFormatter
from finops_dagster.sensors import ALERT_SENSORS, check_failure_alert_sensor, run_failure_alert_sensor

SECRET = "T000SECRET"
WEBHOOK_PATH = f"/services/{SECRET}/B000HOOK/xyzTOKENxyz"
UI_URL = "https://dagster.finops.example"

# --------------------------------------------------------------------------------------------
# Tiny pipeline
# --------------------------------------------------------------------------------------------

months = StaticPartitionsDefinition(["2024-01", "2024-02"])


@asset(partitions_def=months)
def broken_costs() -> None:
    raise ValueError("negative unit cost for product P-42\nsecond line is not in the alert")


@asset
def monthly_costs() -> int:
    return 42


@asset_check(asset=monthly_costs)
def costs_non_negative() -> AssetCheckResult:
    return AssetCheckResult(
        passed=False,
        severity=AssetCheckSeverity.ERROR,
        description="3 rows have a negative cost",
        metadata={"negative_rows": 3},
    )


@asset_check(asset=monthly_costs)
def costs_complete() -> AssetCheckResult:
    return AssetCheckResult(passed=False, severity=AssetCheckSeverity.WARN, metadata={"missing_days": 2})


@asset_check(asset=monthly_costs)
def costs_have_currency() -> AssetCheckResult:
    return AssetCheckResult(passed=True)


CHECKED_ASSETS = [monthly_costs, costs_non_negative, costs_complete, costs_have_currency]


# --------------------------------------------------------------------------------------------
# Fixtures and helpers
# --------------------------------------------------------------------------------------------


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[DagsterInstance]:
    """Instance whose event log has global storage ids, like the Postgres one in deployment."""
    overrides = {
        "event_log_storage": {
            "module": "dagster._core.storage.event_log",
            "class": "ConsolidatedSqliteEventLogStorage",
            "config": {"base_dir": str(tmp_path / "event_log")},
        }
    }
    home = tmp_path / "home"
    home.mkdir()
    with instance_for_test(overrides=overrides, temp_dir=str(home)) as inst:
        yield inst


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WEBHOOK_URL_ENV, raising=False)
    monkeypatch.delenv(UI_URL_ENV, raising=False)


@pytest.fixture
def webhook_url(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> str:
    url = httpserver.url_for(WEBHOOK_PATH)
    monkeypatch.setenv(WEBHOOK_URL_ENV, url)
    return url


def _accept_posts(httpserver: HTTPServer) -> None:
    httpserver.expect_request(WEBHOOK_PATH, method="POST").respond_with_data("ok")


def _posted(httpserver: HTTPServer) -> list[dict[str, Any]]:
    return [json.loads(request.get_data(as_text=True)) for request, _ in httpserver.log]


def _client_side_log(caplog: pytest.LogCaptureFixture) -> str:
    """Captured log text minus the test webhook server's own access log (werkzeug), which is
    the receiving end and legitimately sees the path; each record as text and as a JSON log line."""
    records = [r for r in caplog.records if not r.name.startswith("werkzeug")]
    return "\n".join([r.getMessage() for r in records] + [JsonFormatter().format(r) for r in records])


def _assert_no_secret(text: str, url: str) -> None:
    """No recognisable part of the URL: token, path segments, or host:port."""
    assert SECRET not in text
    assert "xyzTOKENxyz" not in text
    assert WEBHOOK_PATH not in text
    assert url.split("//", 1)[1].split("/", 1)[0] not in text


def _run_failure_tick(instance: DagsterInstance) -> tuple[SkipReason | None, str]:
    result = materialize([broken_costs], instance=instance, partition_key="2024-02", raise_on_error=False)
    assert not result.success
    context = build_run_status_sensor_context(
        sensor_name="run_failure_alert_sensor",
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
    )
    outcome = run_failure_alert_sensor(context)
    assert outcome is None or isinstance(outcome, SkipReason)
    return outcome, result.run_id


def _check_tick(instance: DagsterInstance, cursor: str | None) -> SensorResult | SkipReason:
    result = check_failure_alert_sensor(build_sensor_context(instance=instance, cursor=cursor))
    assert isinstance(result, SensorResult | SkipReason)
    return result


# --------------------------------------------------------------------------------------------
# Run failure sensor
# --------------------------------------------------------------------------------------------


def test_run_failure_posts_one_structured_alert(
    instance: DagsterInstance, httpserver: HTTPServer, webhook_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(UI_URL_ENV, UI_URL + "/")
    _accept_posts(httpserver)

    outcome, run_id = _run_failure_tick(instance)

    assert outcome is None
    [payload] = _posted(httpserver)
    assert payload["finops"] == {
        "kind": "run_failure",
        "job": "__ephemeral_asset_job__",
        "run_id": run_id,
        "partition_range": {"start": "2024-02", "end": "2024-02"},
        "asset_key": None,
        "check_name": None,
        "severity": "ERROR",
        "error_summary": "ValueError: negative unit cost for product P-42",
        "run_url": f"{UI_URL}/runs/{run_id}",
    }
    assert "\n" not in payload["text"]
    assert "negative unit cost" in payload["text"]
    assert all(block["type"] == "section" for block in payload["blocks"])
    rendered = json.dumps(payload["blocks"])
    assert f"<{UI_URL}/runs/{run_id}|" in rendered
    assert "broken_costs" in rendered  # failed step key
    assert "second line" not in json.dumps(payload)


def test_run_failure_without_webhook_skips_and_posts_nothing(
    instance: DagsterInstance, httpserver: HTTPServer
) -> None:
    outcome, _ = _run_failure_tick(instance)

    assert isinstance(outcome, SkipReason)
    assert WEBHOOK_URL_ENV in (outcome.skip_message or "")
    assert httpserver.log == []


# --------------------------------------------------------------------------------------------
# Asset check sensor
# --------------------------------------------------------------------------------------------


def test_check_sensor_first_tick_starts_at_latest_event(
    instance: DagsterInstance, httpserver: HTTPServer, webhook_url: str
) -> None:
    _accept_posts(httpserver)
    materialize(CHECKED_ASSETS, instance=instance, raise_on_error=False)

    first = _check_tick(instance, cursor=None)

    assert isinstance(first, SensorResult)
    assert first.cursor is not None and int(first.cursor) > 0
    assert httpserver.log == []  # history is not replayed
    assert isinstance(_check_tick(instance, first.cursor), SkipReason)
    assert httpserver.log == []


def test_check_sensor_alerts_once_per_failed_evaluation_and_advances_cursor(
    instance: DagsterInstance, httpserver: HTTPServer, webhook_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _accept_posts(httpserver)
    initial = _check_tick(instance, cursor=None)
    assert isinstance(initial, SensorResult)
    assert initial.cursor == "0"
    run_id = materialize(CHECKED_ASSETS, instance=instance, raise_on_error=False).run_id

    tick = _check_tick(instance, initial.cursor)

    assert isinstance(tick, SensorResult)
    assert tick.cursor is not None and int(tick.cursor) > 0
    by_check = {payload["finops"]["check_name"]: payload["finops"] for payload in _posted(httpserver)}
    assert set(by_check) == {"costs_non_negative", "costs_complete"}
    assert by_check["costs_non_negative"] == {
        "kind": "check_failure",
        "job": "__ephemeral_asset_job__",
        "run_id": run_id,
        "partition_range": None,
        "asset_key": "monthly_costs",
        "check_name": "costs_non_negative",
        "severity": "ERROR",
        "error_summary": "3 rows have a negative cost",
        "run_url": None,
    }
    assert by_check["costs_complete"]["severity"] == "WARN"
    assert by_check["costs_complete"]["error_summary"] == "missing_days=2"
    assert by_check["costs_complete"]["run_id"] == run_id

    again = _check_tick(instance, tick.cursor)
    assert isinstance(again, SkipReason)
    assert len(httpserver.log) == 2
    # httpx logs every request URL at INFO; the filter must have redacted it.
    assert "HTTP Request" in _client_side_log(caplog)
    _assert_no_secret(_client_side_log(caplog), webhook_url)


def test_check_sensor_without_webhook_skips_and_posts_nothing(
    instance: DagsterInstance, httpserver: HTTPServer
) -> None:
    materialize(CHECKED_ASSETS, instance=instance, raise_on_error=False)

    outcome = _check_tick(instance, cursor="0")

    assert isinstance(outcome, SkipReason)
    assert WEBHOOK_URL_ENV in (outcome.skip_message or "")
    assert httpserver.log == []


def test_check_sensor_skips_on_run_sharded_storage(httpserver: HTTPServer, webhook_url: str) -> None:
    with instance_for_test() as sharded:
        outcome = _check_tick(sharded, cursor="0")

    assert isinstance(outcome, SkipReason)
    assert "run-sharded" in (outcome.skip_message or "")
    assert httpserver.log == []


def test_check_sensor_delivery_failure_fails_tick_without_leaking_url(
    instance: DagsterInstance, httpserver: HTTPServer, webhook_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    httpserver.expect_request(WEBHOOK_PATH, method="POST").respond_with_data("down", status=503)
    materialize(CHECKED_ASSETS, instance=instance, raise_on_error=False)

    with pytest.raises(AlertDeliveryError) as excinfo:
        _check_tick(instance, cursor="0")

    assert len(httpserver.log) == 3  # first alert: 1 attempt + 2 retries, then the tick stops
    assert "HTTP 503" in str(excinfo.value)
    _assert_no_secret("".join(traceback.format_exception(excinfo.value)), webhook_url)
    _assert_no_secret(_client_side_log(caplog), webhook_url)


# --------------------------------------------------------------------------------------------
# Delivery
# --------------------------------------------------------------------------------------------


def _sample_payload() -> dict[str, Any]:
    alert = Alert(kind="run_failure", run_id="r-1", job="job", severity="ERROR", error_summary="boom")
    return build_payload(alert)


def test_server_error_is_retried_then_raises_without_url(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = httpserver.url_for(WEBHOOK_PATH)
    httpserver.expect_request(WEBHOOK_PATH, method="POST").respond_with_data("boom", status=500)

    with pytest.raises(AlertDeliveryError) as excinfo:
        post_alert(_sample_payload(), url, backoff_seconds=0)

    message = str(excinfo.value)
    assert "alert webhook" in message
    assert "HTTP 500" in message
    assert len(httpserver.log) == 3
    assert excinfo.value.__cause__ is None and excinfo.value.__context__ is None
    _assert_no_secret(message + repr(excinfo.value), url)
    _assert_no_secret(_client_side_log(caplog), url)


def test_client_error_is_not_retried(httpserver: HTTPServer) -> None:
    httpserver.expect_request(WEBHOOK_PATH, method="POST").respond_with_data("no", status=404)

    with pytest.raises(AlertDeliveryError, match="HTTP 404"):
        post_alert(_sample_payload(), httpserver.url_for(WEBHOOK_PATH), backoff_seconds=0)

    assert len(httpserver.log) == 1


def test_connect_error_is_retried_and_named_by_class(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}{WEBHOOK_PATH}"

    with pytest.raises(AlertDeliveryError) as excinfo:
        post_alert(_sample_payload(), url, backoff_seconds=0, timeout=2)

    assert "ConnectError" in str(excinfo.value)
    assert "3 attempt" in str(excinfo.value)
    _assert_no_secret(str(excinfo.value), url)
    _assert_no_secret(_client_side_log(caplog), url)


def test_successful_post_sends_payload_as_json(httpserver: HTTPServer) -> None:
    httpserver.expect_oneshot_request(WEBHOOK_PATH, method="POST").respond_with_data("ok")
    payload = _sample_payload()

    post_alert(payload, httpserver.url_for(WEBHOOK_PATH))

    httpserver.check_assertions()
    [(request, _)] = httpserver.log
    assert request.headers["Content-Type"] == "application/json"
    assert request.get_json() == payload


# --------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------


def test_summarize_error_keeps_first_line_and_truncates() -> None:
    assert summarize_error("\n  first line  \nsecond") == "first line"
    long = summarize_error("x" * 1000)
    assert len(long) == 300
    assert long.endswith("…")
    assert summarize_error(None) == ""


def test_partition_range_prefers_range_tags() -> None:
    tags = {
        "dagster/asset_partition_range_start": "2024-01",
        "dagster/asset_partition_range_end": "2024-03",
    }
    assert partition_range_from_tags(tags) == PartitionRange("2024-01", "2024-03")
    assert partition_range_from_tags({"dagster/partition": "2024-02"}) == PartitionRange("2024-02", "2024-02")
    assert partition_range_from_tags({}) is None


def test_payload_escapes_mrkdwn_and_omits_link_without_ui() -> None:
    alert = Alert(
        kind="check_failure",
        run_id="abcdef123456",
        job="nightly",
        severity="WARN",
        error_summary="a < b & c > d",
        partition_range=PartitionRange("2024-01", "2024-03"),
        asset_key="mart/costs",
        check_name="non_negative",
    )

    payload = build_payload(alert)

    assert payload["finops"]["run_url"] is None
    assert payload["finops"]["partition_range"] == {"start": "2024-01", "end": "2024-03"}
    rendered = json.dumps(payload["blocks"])
    assert "a &lt; b &amp; c &gt; d" in rendered
    assert "Open run in Dagster" not in rendered
    assert payload["text"].startswith(
        "FinOps check failed (WARN): mart/costs / non_negative [2024-01…2024-03]"
    )


def test_alert_sensors_export() -> None:
    assert [s.name for s in ALERT_SENSORS] == ["run_failure_alert_sensor", "check_failure_alert_sensor"]
    assert all(s.default_status.value == "RUNNING" for s in ALERT_SENSORS)
    assert check_failure_alert_sensor.minimum_interval_seconds == 60
