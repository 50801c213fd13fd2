"""The run's metrics, pushed to a Prometheus Pushgateway at the end of every run.

A batch job has no process left for Prometheus to scrape, so the run ledger calls `push_run_metrics`
once it has recorded the outcome (success, failure or abort). What is pushed is read back from the
mart (etl_runs, domain_load, the domain's staged relevés, releve_reject) and from the Dagster
instance (step events), so it says what the run left, not what a step believed it did.

Grouping follows the batch-job convention: `{job}` for the run's own metrics and `{job, domain}` for
each domain's figures per month, never the run id, so each push replaces the previous night's
series instead of piling new ones up. Pushes use POST (same-name metrics are replaced, others kept),
so `finops_run_last_success_timestamp_seconds` survives a failed night.

A push failure never fails the run: it is logged as a warning naming the gateway's host only (its
URL may carry basic-auth credentials).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from dagster import DagsterEventType
from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway
from prometheus_client.exposition import basic_auth_handler, default_handler
from psycopg import sql

from finops_dagster.checks.reconciliation import BALANCES, HALF_UNIT
from finops_dagster.checks.volume import volume_findings
from finops_dagster.mart.staging import domain_table
from finops_dagster.releve import UNALLOCATED_APPLICATION
from finops_dagster.resources.postgres import PostgresResource
from finops_dagster.settings import volume_thresholds

log = logging.getLogger(__name__)

PUSHGATEWAY_SETTING = "FINOPS_PUSHGATEWAY_URL"
PUSH_TIMEOUT_S = 10
STATUSES = ("SUCCESS", "FAILED", "ABORTED")

RUN_METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "finops_run_duration_seconds": ("Wall time of the last run, from its start to its recorded end.", ()),
    "finops_run_success": ("1 if the last run succeeded, 0 if it failed or was aborted.", ()),
    "finops_run_status": ("1 for the last run's status (SUCCESS, FAILED, ABORTED), 0 for the others.",
                          ("status",)),
    "finops_run_end_timestamp_seconds": ("Unix time the last run ended.", ()),
    "finops_run_last_success_timestamp_seconds": ("Unix time the last successful run ended.", ()),
    "finops_run_failed_steps": ("Steps of the last run that failed.", ()),
    "finops_step_duration_seconds": ("Wall time of each step of the last run (Dagster step events).",
                                     ("step",)),
}
"""Per job: name → (help, labels)."""

DOMAIN_METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "finops_releves": ("Relevés the last run computed for the domain and month.", ("month",)),
    "finops_releve_cost": ("Total cost of those relevés, per currency.", ("month", "currency")),
    "finops_rejects": ("Source records or rows the last run rejected for the domain and month.", ("month",)),
    "finops_reject_cost": ("Cost carried by those rejects, per currency (where readable).",
                           ("month", "currency")),
    "finops_unallocated_cost": ("Cost of the relevés on the UNALLOCATED application, per currency.",
                                ("month", "currency")),
    "finops_source_records": ("Source records read for the domain and month.", ("month",)),
    "finops_reconciliation_difference": (
        "Source minus relevés minus rejects, per unit or billing currency (the reconciliation check).",
        ("month", "measure")),
    "finops_reconciliation_tolerance": (
        "Rounding the reconciliation allows for that month and measure (half a unit of the sixth "
        "decimal per row, plus one).", ("month", "measure")),
    "finops_volume_deviation_ratio": (
        "Relevés or total cost against the trailing published months: |value - average| / average "
        "(the volume check; months in progress or without history are absent).", ("month", "metric")),
    "finops_published": ("1 if the last run published the domain's month, else 0.", ("month",)),
}
"""Per job and domain: name → (help, labels)."""


@dataclass
class Series:
    """Values of one push group, by metric name and label values."""

    values: dict[str, dict[tuple[str, ...], float]] = field(default_factory=dict)

    def set(self, name: str, value: float | Decimal | int, *labels: str) -> None:
        self.values.setdefault(name, {})[labels] = float(value)

    def add(self, name: str, value: float | Decimal | int, *labels: str) -> None:
        current = self.values.setdefault(name, {})
        current[labels] = current.get(labels, 0.0) + float(value)

    def registry(self, specs: dict[str, tuple[str, tuple[str, ...]]]) -> CollectorRegistry:
        """A registry of its own (never the process's global one) holding only what was set."""
        registry = CollectorRegistry(auto_describe=True)
        for name, by_labels in self.values.items():
            help_text, label_names = specs[name]
            gauge = Gauge(name, help_text, label_names, registry=registry)
            for labels, value in by_labels.items():
                (gauge.labels(*labels) if label_names else gauge).set(value)
        return registry


def push_run_metrics(postgres: PostgresResource, instance: Any, run_id: str, status: str) -> None:
    """Push the run's metrics when FINOPS_PUSHGATEWAY_URL is set; never raises."""
    url = os.environ.get(PUSHGATEWAY_SETTING, "").strip()
    if not url:
        return
    try:
        gateway, handler = gateway_and_handler(url)
        job, run, domains = collect(postgres, instance, run_id, status)
        pushadd_to_gateway(gateway, job=job, registry=run.registry(RUN_METRICS), timeout=PUSH_TIMEOUT_S,
                           handler=handler)
        for domain, series in domains.items():
            pushadd_to_gateway(gateway, job=job, grouping_key={"domain": domain},
                               registry=series.registry(DOMAIN_METRICS), timeout=PUSH_TIMEOUT_S,
                               handler=handler)
    except Exception as error:
        log.warning(
            "could not push run %s's metrics to the Pushgateway at %s: %s",
            run_id, gateway_host(url), _reason(error, url),
        )


def gateway_host(url: str) -> str:
    """host[:port] of the gateway, fit for a log line: never its user or password."""
    parts = urlsplit(url if "//" in url else f"http://{url}")
    if not parts.hostname:
        return "(unparseable URL)"
    return parts.hostname + (f":{parts.port}" if parts.port else "")


def gateway_and_handler(url: str) -> tuple[str, Callable[..., Any]]:
    """The gateway URL without credentials, and a handler that sends them as basic auth if any."""
    parts = urlsplit(url if "//" in url else f"http://{url}")
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    bare = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    if parts.username is None:
        return bare, default_handler
    username, password = unquote(parts.username), unquote(parts.password or "")

    def handler(url: str, method: str, timeout: float | None, headers: list[tuple[str, str]],
                data: bytes) -> Callable[[], None]:
        return basic_auth_handler(url, method, timeout, headers, data, username, password)

    return bare, handler


def _reason(error: Exception, url: str) -> str:
    """The error's class and first line, with anything of the URL's userinfo blanked out."""
    text = " ".join(str(error).split())[:200]
    parts = urlsplit(url if "//" in url else f"http://{url}")
    for secret in (parts.password, parts.username, url):
        if secret:
            text = text.replace(secret, "***").replace(unquote(secret), "***")
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


RUN_QUERY = "SELECT job_name, started_at, coalesce(ended_at, now()) FROM finops.etl_runs WHERE run_id = %s"
LOADS_QUERY = """
SELECT domain_id, period_month, releve_count, reject_count, source_record_count, published_at IS NOT NULL
FROM finops.domain_load WHERE run_id = %s ORDER BY 1, 2
"""
COSTS_QUERY = """
SELECT period_month, currency, sum(total_cost),
       coalesce(sum(total_cost) FILTER (WHERE application_id = %s), 0)
FROM {table} WHERE run_id = %s GROUP BY 1, 2
"""
REJECT_COSTS_QUERY = """
SELECT period_month, currency, sum(cost) FROM finops.releve_reject
WHERE domain_id = %s AND run_id = %s AND currency IS NOT NULL AND cost IS NOT NULL GROUP BY 1, 2
"""


def collect(
    postgres: PostgresResource, instance: Any, run_id: str, status: str
) -> tuple[str, Series, dict[str, Series]]:
    """(job name, the run's series, each domain's series) as the mart and the instance hold them."""
    run = Series()
    with postgres.connect() as conn:
        row = conn.execute(RUN_QUERY, (run_id,)).fetchone()
        job = row[0] if row else _job_name(instance, run_id)
        started, ended = (row[1], row[2]) if row else (None, dt.datetime.now(dt.UTC))
        loads = conn.execute(LOADS_QUERY, (run_id,)).fetchall()
        domains: dict[str, Series] = {}
        for domain, month, releves, rejects, records, published in loads:
            series = domains.setdefault(domain, Series())
            label = f"{month:%Y-%m}"
            series.set("finops_releves", releves, label)
            series.set("finops_rejects", rejects, label)
            series.set("finops_source_records", records, label)
            series.set("finops_published", int(published), label)
        for domain, series in domains.items():
            _domain_figures(conn, domain, run_id, series)
    if started is not None:
        run.set("finops_run_duration_seconds", (ended - started).total_seconds())
    run.set("finops_run_success", int(status == "SUCCESS"))
    for known in STATUSES:
        run.set("finops_run_status", int(known == status), known)
    run.set("finops_run_end_timestamp_seconds", ended.timestamp())
    if status == "SUCCESS":
        run.set("finops_run_last_success_timestamp_seconds", ended.timestamp())
    steps, failed = step_durations(instance, run_id)
    run.set("finops_run_failed_steps", failed)
    for step, seconds in steps.items():
        run.set("finops_step_duration_seconds", seconds, step)
    return job, run, domains


def _domain_figures(conn: Any, domain: str, run_id: str, series: Series) -> None:
    """Costs per currency, unallocated cost, rejected cost, reconciliation and volume deviation."""
    from finops_dagster.pipeline import DOMAINS  # the pipeline imports the ledger, which imports this

    costs = conn.execute(
        sql.SQL(COSTS_QUERY).format(table=domain_table(domain)), (UNALLOCATED_APPLICATION, run_id)
    ).fetchall()
    for month, currency, total, unallocated in costs:
        series.set("finops_releve_cost", total, f"{month:%Y-%m}", currency)
        series.set("finops_unallocated_cost", unallocated, f"{month:%Y-%m}", currency)
    for month, currency, cost in conn.execute(REJECT_COSTS_QUERY, (domain, run_id)).fetchall():
        series.set("finops_reject_cost", cost, f"{month:%Y-%m}", currency)
    measure = DOMAINS[domain].reconciled_by if domain in DOMAINS else "quantity"
    for balance in BALANCES[measure](conn, domain, run_id):
        labels = (f"{balance.period_month:%Y-%m}", balance.unit)
        series.set("finops_reconciliation_difference", balance.difference, *labels)
        series.set("finops_reconciliation_tolerance", HALF_UNIT * (balance.rows + 1), *labels)
    findings, _ = volume_findings(conn, domain, run_id, volume_thresholds())
    for finding in findings:
        series.set("finops_volume_deviation_ratio", finding.deviation, f"{finding.period_month:%Y-%m}",
                   finding.metric)


STEP_EVENTS = {DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE}


def step_timings(instance: Any, run_id: str) -> list[tuple[str, float, float, bool]]:
    """(step, start, end, failed) of each step that ended, from the instance's step events."""
    if instance is None:
        return []
    started: dict[str, float] = {}
    timings = []
    for record in _records(instance, run_id):
        event = record.dagster_event
        if event is None or record.step_key is None:
            continue
        if event.event_type == DagsterEventType.STEP_START:
            started[record.step_key] = record.timestamp
        elif record.step_key in started:
            failed = event.event_type == DagsterEventType.STEP_FAILURE
            timings.append((record.step_key, started[record.step_key], record.timestamp, failed))
    return timings


def step_durations(instance: Any, run_id: str) -> tuple[dict[str, float], int]:
    """Seconds from each step's start to its success or failure, and how many steps failed."""
    timings = step_timings(instance, run_id)
    return {step: end - start for step, start, end, _ in timings}, sum(failed for *_, failed in timings)


def _records(instance: Any, run_id: str) -> Iterable[Any]:
    return instance.all_logs(run_id, of_type=STEP_EVENTS)


def _job_name(instance: Any, run_id: str) -> str:
    run = instance.get_run_by_id(run_id) if instance is not None else None
    return run.job_name if run is not None else "finops"
