"""What the end of a run reports, beyond the run ledger: its metrics (Pushgateway) and, when a
collector is configured, its trace. Called once by the run ledger when it has recorded the outcome;
nothing here may fail the run."""

from __future__ import annotations

import logging
import os
from typing import Any

from finops_dagster.observe.run_metrics import push_run_metrics, step_timings
from finops_dagster.resources.postgres import PostgresResource

log = logging.getLogger(__name__)

TRACING_SETTING = "OTEL_EXPORTER_OTLP_ENDPOINT"
RUN_TIMES = "SELECT job_name, started_at, coalesce(ended_at, now()) FROM finops.etl_runs WHERE run_id = %s"


def tracing_enabled() -> bool:
    """Traces only when a collector is named: otherwise OpenTelemetry is not even imported."""
    return bool(os.environ.get(TRACING_SETTING, "").strip())


def report_run_end(postgres: PostgresResource, instance: Any, run_id: str, status: str) -> None:
    push_run_metrics(postgres, instance, run_id, status)
    if tracing_enabled():
        _trace_run(postgres, instance, run_id, status)


def _trace_run(postgres: PostgresResource, instance: Any, run_id: str, status: str) -> None:
    try:
        from finops_dagster.observe.tracing import export_run

        with postgres.connect() as conn:
            row = conn.execute(RUN_TIMES, (run_id,)).fetchone()
        if row is None:
            return
        job, started, ended = row
        export_run(job, run_id, status, started, ended, step_timings(instance, run_id))
    except Exception as error:
        log.warning("could not export run %s's trace: %s", run_id, type(error).__name__)
