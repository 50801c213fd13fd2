"""The run's metrics when the Pushgateway cannot take them, and the gateway URL's credentials: the run
is not failed, the warning names the gateway's host and nothing of its credentials; a failed run's
JSON log is JSON on every line, without any secret."""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

import httpx
import psycopg
import pytest

from finops_dagster.observe import run_metrics
from finops_dagster.observe.logs import JsonFormatter
from finops_dagster.observe.run_metrics import gateway_and_handler, gateway_host, push_run_metrics
from finops_dagster.resources.postgres import PostgresResource
from finops_dagster_tests.observe.test_end_to_end import environment, json_lines
from finops_dagster_tests.support.ports import free_port
from finops_dagster_tests.support.processes import FINOPS_CLI, pushgateway

GATEWAY_SECRET = "gateway-s3cret-sentinel"
MONGO_SECRET = "m0ngo-s3cret-sentinel"


@pytest.mark.parametrize(
    ("url", "host", "bare"),
    [
        (f"https://finops:{GATEWAY_SECRET}@push.example.org:9091", "push.example.org:9091",
         "https://push.example.org:9091"),
        ("http://push.example.org/prefix", "push.example.org", "http://push.example.org/prefix"),
        ("push.example.org:9091", "push.example.org:9091", "http://push.example.org:9091"),
    ],
)
def test_the_gateway_is_named_by_its_host_and_called_without_credentials_in_its_url(
    url: str, host: str, bare: str
) -> None:
    assert gateway_host(url) == host
    assert gateway_and_handler(url)[0] == bare


def test_a_push_that_fails_is_a_warning_naming_the_host_only(
    mart_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    monkeypatch.setenv("FINOPS_PUSHGATEWAY_URL", f"http://finops:{GATEWAY_SECRET}@127.0.0.1:{port}")
    with caplog.at_level(logging.WARNING, logger=run_metrics.__name__):
        push_run_metrics(PostgresResource(url=mart_url), None, "no-such-run", "FAILED")
    assert len(caplog.records) == 1
    warning = caplog.records[0]
    assert f"Pushgateway at 127.0.0.1:{port}" in warning.getMessage()
    assert "URLError" in warning.getMessage()
    for text in (caplog.text, JsonFormatter().format(warning)):
        assert GATEWAY_SECRET not in text and "finops:" not in text


def test_nothing_is_pushed_or_read_without_a_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FINOPS_PUSHGATEWAY_URL", raising=False)
    unreachable = PostgresResource(url="postgresql://nobody@127.0.0.1:1/none")
    push_run_metrics(unreachable, None, "a-run", "SUCCESS")


def test_a_failed_night_logs_json_pushes_its_failure_and_leaks_no_secret(
    mart_url: str, mart: psycopg.Connection, tmp_path: Path
) -> None:
    with pushgateway(tmp_path) as gateway:
        night = subprocess.run(
            [FINOPS_CLI, "nightly", "--months", "2026-11"], capture_output=True, text=True, timeout=180,
            env=environment(
                mart_url,
                MONGO_URL=f"mongodb://finops:{MONGO_SECRET}@127.0.0.1:9/cmdb?serverSelectionTimeoutMS=200",
                FINOPS_PUSHGATEWAY_URL=gateway.replace("http://", f"http://finops:{GATEWAY_SECRET}@"),
            ),
        )
        pushed = httpx.get(f"{gateway}/metrics", timeout=10).text
    assert night.returncode == 1, night.stderr[-3000:]
    records = json_lines(night.stdout) + json_lines(night.stderr)
    assert records[-1]["level"] == "ERROR" and records[-1]["message"].startswith("FAILED: ")
    assert records[-1]["run_id"]
    for record in records:
        text = json.dumps(record)
        assert MONGO_SECRET not in text and GATEWAY_SECRET not in text
    assert 'finops_run_success{instance="",job="finops_nightly"} 0' in pushed
    assert 'finops_run_status{instance="",job="finops_nightly",status="FAILED"} 1' in pushed
    assert "finops_run_last_success_timestamp_seconds" not in pushed
    assert GATEWAY_SECRET not in pushed and MONGO_SECRET not in pushed
