"""Optional traces over OTLP/HTTP to a collector on a real socket: a run's span with its steps, the
API's request spans named by route; and without OTEL_EXPORTER_OTLP_ENDPOINT, OpenTelemetry's SDK is
not even imported."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from finops_dagster_tests.observe.test_end_to_end import environment
from finops_dagster_tests.support.ports import free_port
from finops_dagster_tests.support.processes import FINOPS_CLI, serving


class Collector:
    """An OTLP/HTTP trace receiver: every span it was sent, with its parent and attributes."""

    def __init__(self, server: HTTPServer) -> None:
        self.spans: list[dict[str, Any]] = []
        server.expect_request("/v1/traces", method="POST").respond_with_handler(self._receive)
        self.endpoint = server.url_for("").rstrip("/")

    def _receive(self, request: Request) -> Response:
        export = ExportTraceServiceRequest.FromString(request.get_data())
        for resource in export.resource_spans:
            attributes = resource.resource.attributes
            service = next(a.value.string_value for a in attributes if a.key == "service.name")
            for scope in resource.scope_spans:
                for span in scope.spans:
                    self.spans.append({
                        "name": span.name, "id": span.span_id, "parent": span.parent_span_id,
                        "trace": span.trace_id, "service": service, "error": span.status.code == 2,
                        "attributes": {
                            a.key: a.value.string_value or a.value.int_value for a in span.attributes
                        },
                    })
        return Response(b"", status=200, content_type="application/x-protobuf")

    def wait_for(self, name: str, timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [span for span in self.spans if span["name"] == name]
            if found:
                return found[0]
            time.sleep(0.2)
        raise AssertionError(f"no span {name!r} among {[span['name'] for span in self.spans]}")


@pytest.fixture
def collector(httpserver: HTTPServer) -> Iterator[Collector]:
    yield Collector(httpserver)


def test_a_run_is_a_span_with_a_child_per_step(mart_url: str, collector: Collector) -> None:
    night = subprocess.run(
        [FINOPS_CLI, "nightly", "--months", "2026-11"], capture_output=True, text=True, timeout=180,
        env=environment(mart_url, FINOPS_LOG_FORMAT="text", OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint),
    )
    assert night.returncode == 0, night.stderr[-3000:]
    run = collector.wait_for("run finops_nightly")
    assert run["service"] == "finops-dagster" and run["attributes"]["finops.status"] == "SUCCESS"
    steps = {span["name"] for span in collector.spans if span["parent"] == run["id"]}
    assert {"step applications", "step open_legacy_releves", "step fact_releve",
            "step materialized_views"} <= steps
    assert all(span["trace"] == run["trace"] for span in collector.spans if span["parent"] == run["id"])


def test_api_requests_are_spans_named_by_route(
    mart_url: str, collector: Collector, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = environment(mart_url, FINOPS_API_AUTH="none", FINOPS_LOG_FORMAT="text",
                      FINOPS_API_ALLOW_PRIVILEGED_LOGIN="true",
                      OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint, OTEL_BSP_SCHEDULE_DELAY="200")
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with serving([FINOPS_CLI, "api", "--port", str(port)], f"{base}/healthz", tmp_path / "api.log", env):
        httpx.get(f"{base}/api/v1/applications/PAYMENTS/breakdown", headers={"traceparent": parent})
        span = collector.wait_for("GET /api/v1/applications/{application_id}/breakdown")
    assert span["attributes"]["http.route"] == "/api/v1/applications/{application_id}/breakdown"
    assert span["trace"].hex() == "0af7651916cd43dd8448eb211c80319c"
    assert span["parent"].hex() == "b7ad6b7169203331"


def test_without_an_endpoint_the_sdk_is_not_imported() -> None:
    probe = (
        "import os, sys\n"
        "os.environ.pop('OTEL_EXPORTER_OTLP_ENDPOINT', None)\n"
        "os.environ.update(FINOPS_API_AUTH='none', FINOPS_API_POSTGRES_URL='postgresql://x@127.0.0.1:1/x')\n"
        "from finops_dagster.api.app import create_app\n"
        "from finops_dagster.api.settings import api_settings\n"
        "from finops_dagster.observe.run_end import report_run_end\n"
        "create_app(api_settings())\n"
        "loaded = [m for m in sys.modules if m.startswith(('opentelemetry.sdk', 'opentelemetry.exporter'))]\n"
        "print(sorted(loaded))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
