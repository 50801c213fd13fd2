"""See a night end to end with the real components: `finops-dagster nightly` pushes its metrics to a
real Pushgateway, `finops-dagster api` serves /metrics, a real Prometheus scrapes both, and PromQL over
Prometheus' HTTP API gives back the run's relevés and the API's request count, and every query of
the Grafana dashboard is accepted by Prometheus. Both commands log JSON:
every line they write parses, and no credential is in any of it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import psycopg

from finops_dagster_tests.observe.dashboard import expressions, with_variables
from finops_dagster_tests.support.ports import free_port
from finops_dagster_tests.support.processes import (
    FINOPS_CLI,
    binary,
    prometheus,
    pushgateway,
    query,
    serving,
    wait_for_value,
)

CMDB = "demo://?cis=120&months=3&today=2026-12-05&applications=20"
GATEWAY_SECRET = "pushgateway-s3cret-sentinel"
DOMAINS_ROUTE = "/api/v1/costs/domains"


def environment(mart_url: str, **settings: str) -> dict[str, str]:
    env = {**os.environ, "POSTGRES_URL": mart_url, "MONGO_URL": CMDB, "FINOPS_DOMAINS_ENABLED": "open_legacy",
           "FINOPS_LOG_FORMAT": "json", **settings}
    env.pop("DAGSTER_HOME", None)
    return env


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every non-empty line as a JSON object (a line that is not one fails the test, named)."""
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                raise AssertionError(f"line {number} is not JSON: {line[:300]}") from None
    return records


def test_a_night_and_the_api_read_back_from_prometheus(
    mart_url: str, mart: psycopg.Connection, tmp_path: Path
) -> None:
    binary("promtool")
    with pushgateway(tmp_path) as gateway:
        authenticated = gateway.replace("http://", f"http://finops:{GATEWAY_SECRET}@")
        night = subprocess.run(
            [FINOPS_CLI, "nightly", "--months", "2026-10:2026-11"],
            capture_output=True, text=True, timeout=180,
            env=environment(mart_url, FINOPS_PUSHGATEWAY_URL=authenticated),
        )
        assert night.returncode == 0, night.stderr[-3000:]
        releves = dict(mart.execute(
            "SELECT to_char(period_month, 'YYYY-MM'), releve_count FROM finops.domain_load"
        ).fetchall())
        api_port = free_port()
        api_log = tmp_path / "api.log"
        api_args = [FINOPS_CLI, "api", "--port", str(api_port)]
        api_env = environment(mart_url, FINOPS_API_AUTH="none", FINOPS_API_ALLOW_PRIVILEGED_LOGIN="true")
        base = f"http://127.0.0.1:{api_port}"
        with serving(api_args, f"{base}/healthz", api_log, api_env):
            for _ in range(4):
                assert httpx.get(f"{base}{DOMAINS_ROUTE}", params={"from": "2026-10"}).status_code == 200
            targets = {"pushgateway": gateway[len("http://"):], "finops_api": f"127.0.0.1:{api_port}"}
            with prometheus(tmp_path, targets) as prom:
                november = wait_for_value(
                    prom, 'finops_releves{job="finops_nightly",domain="open_legacy",month="2026-11"}'
                )
                success = wait_for_value(prom, 'finops_run_success{job="finops_nightly"}')
                requests = wait_for_value(
                    prom, f'sum(finops_api_requests_total{{route="{DOMAINS_ROUTE}",status="200"}})'
                )
                duration = wait_for_value(prom, 'finops_run_duration_seconds{job="finops_nightly"}')
                wait_for_value(prom, "sum(rate(finops_api_requests_total[5m]))")  # two scrapes: rates exist
                answered = {title: query(prom, with_variables(promql)) for title, promql in expressions()}
    assert november == releves["2026-11"] > 0
    assert success == 1
    assert requests == 4
    assert 0 < duration < 180
    for title in ("Cost per domain and month", "Relevés per domain and month", "Unallocated share of cost",
                  "Step durations (last run)", "Requests per second by route and status", "variable domain"):
        assert answered[title], f"the dashboard's {title!r} is empty"
    print(f"PromQL: relevés open_legacy 2026-11 = {november:g}, requests {DOMAINS_ROUTE} = {requests:g}")

    night_records = json_lines(night.stderr) + json_lines(night.stdout)
    api_records = json_lines(api_log.read_text())
    for record in night_records + api_records:
        assert {"time", "level", "logger", "message"} <= record.keys(), record
        assert GATEWAY_SECRET not in json.dumps(record)
    summary = [r for r in night_records if r["logger"] == "finops_dagster.nightly" and r.get("month")]
    assert {(r["domain"], r["month"]) for r in summary} == {
        ("open_legacy", "2026-10"), ("open_legacy", "2026-11")
    }
    assert all(r["run_id"] for r in summary)
    steps = [r for r in night_records if r["logger"] == "dagster" and r.get("step") == "open_legacy_releves"]
    assert steps and all(r["domain"] == "open_legacy" and r["months"] == "2026-10:2026-11" for r in steps)
    access = [r for r in api_records if r["logger"] == "uvicorn.access"]
    answered = [(r["method"], r["path"].split("?")[0], r["status"]) for r in access]
    assert answered.count(("GET", DOMAINS_ROUTE, 200)) == 4
    assert ("GET", "/metrics", 200) in answered
    assert {path for _, path, _ in answered} == {"/healthz", DOMAINS_ROUTE, "/metrics"}
