"""The headless nightly: `finops-dagster nightly`, the command of the Kubernetes CronJob.

For organisations without a Dagster deployment. It runs the same `finops_nightly` job as the
schedule, in this process, over the same months (the current one, and the previous one unless
FINOPS_RECALC_PREVIOUS_MONTH is false) or those of `--months`, and etl_runs records it with the
trigger CRON. Its Dagster instance is ephemeral unless asked otherwise: the run's record is
etl_runs. The exit status is what a CronJob needs: 0 when the run succeeded, 1 when it did not,
with the run's error summary as the last line printed. With FINOPS_LOG_FORMAT=json what it prints
becomes log records too (one per domain and month, with their figures), so every line is JSON.

A closed month is never rewritten by the nightly: without `--months` it is skipped (and said so);
named by `--months` (or `finops-dagster restate`), its restatement is computed, to be approved.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg
from dagster import DagsterInstance

from finops_dagster.mart.etl_runs import RANGE_END_TAG, RANGE_START_TAG, TRIGGER_TAG
from finops_dagster.mart.publish import CLOSED_MONTHS_TAG, RESTATE, SKIP
from finops_dagster.mart.restatement import Restatement, skipped_announcement
from finops_dagster.observe.logs import json_logs
from finops_dagster.partitions import monthly_partitions
from finops_dagster.schedules import nightly_months
from finops_dagster.settings import SettingError, reporting_currency, schedule_settings

log = logging.getLogger(__name__)

MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True)
class MonthRange:
    first: str
    last: str
    """Partition keys (YYYY-MM-01), first <= last."""


def parse_months(value: str) -> MonthRange:
    """`YYYY-MM` or `FIRST:LAST`, checked against the partitions so a typo fails before any work."""
    first_text, colon, last_text = value.partition(":")
    first = _partition_key(first_text.strip(), value)
    last = _partition_key(last_text.strip(), value) if colon else first
    if last < first:
        raise SettingError(f"--months {value}: the last month is before the first")
    return MonthRange(first, last)


def _partition_key(text: str, value: str) -> str:
    match = MONTH.match(text)
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise SettingError(f"--months {value}: expected YYYY-MM or YYYY-MM:YYYY-MM")
    key = f"{text}-01"
    if not monthly_partitions.has_partition_key(key):
        keys = monthly_partitions.get_partition_keys()
        raise SettingError(
            f"--months {value}: {text} is not a month the pipeline computes ({keys[0][:7]} to {keys[-1][:7]})"
        )
    return key


def tonight(now: dt.datetime) -> MonthRange:
    """The schedule's months for a night starting at `now`."""
    first, last = nightly_months(now, recalc_previous_month=schedule_settings().recalc_previous_month)
    return MonthRange(first, last)


def run_nightly(months: MonthRange, *, use_dagster_home: bool = False, restate: bool = False) -> int:
    """Run the nightly job in process over `months`; print what it did; 0 on success, else 1.
    `restate`: closed months among them get a restatement computed, instead of being skipped."""
    from finops_dagster.pipeline import build_definitions
    from finops_dagster.resources.postgres import postgres_from_env

    defs = build_definitions()
    job = defs.resolve_job_def("finops_nightly")
    _say(f"finops-dagster nightly: {months.first[:7]} to {months.last[:7]}")
    instance = DagsterInstance.get() if use_dagster_home else DagsterInstance.ephemeral()
    with instance:
        result = job.execute_in_process(
            instance=instance,
            tags={
                RANGE_START_TAG: months.first,
                RANGE_END_TAG: months.last,
                TRIGGER_TAG: "CRON",
                CLOSED_MONTHS_TAG: RESTATE if restate else SKIP,
            },
            run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
            raise_on_error=False,
        )
    postgres = postgres_from_env().process_config_and_initialize()
    with postgres.connect() as conn:
        status, summary = print_run_summary(conn, result.run_id)
        print_closed_months(conn, result.run_id, months)
    if result.success and status == "SUCCESS":
        return 0
    _say(f"FAILED: {summary or 'the run failed before recording its outcome (see the log above)'}",
         level=logging.ERROR, run_id=result.run_id)
    return 1


def _say(text: str, *, level: int = logging.INFO, **context: Any) -> None:
    """A line for the operator: printed in text mode, a log record (with its context) in JSON mode."""
    if json_logs():
        log.log(level, text, extra=context)
    else:
        print(text, flush=True)


SUMMARY_QUERY = """
SELECT l.domain_id, l.period_month, l.releve_count, l.total_cost, l.reject_count,
       coalesce((SELECT sum(total_cost) FROM finops.fact_releve f
                 WHERE f.period_month = l.period_month AND f.domain_id = l.domain_id
                   AND f.application_id = 'UNALLOCATED'), 0),
       l.published_at IS NOT NULL
FROM finops.domain_load l WHERE l.run_id = %s ORDER BY 1, 2
"""


RUN_RECORD = "SELECT status, error_summary FROM finops.etl_runs WHERE run_id = %s"

CLOSED_MONTHS = """
SELECT s.period_month, s.version, s.closed_by, r.lines_changed, r.changed_inputs, r.direct_before,
       r.direct_after
FROM finops.month_status AS s
LEFT JOIN finops.month_restatement AS r ON r.period_month = s.period_month AND r.run_id = %(run)s
WHERE s.status = 'CLOSED' AND s.period_month BETWEEN %(first)s AND %(last)s
ORDER BY s.period_month
"""


def print_closed_months(conn: psycopg.Connection, run_id: str, months: MonthRange) -> None:
    """Each closed month of the run: skipped, or the restatement computed and how to approve it."""
    rows = conn.execute(
        CLOSED_MONTHS,
        {
            "run": run_id,
            "first": dt.date.fromisoformat(months.first),
            "last": dt.date.fromisoformat(months.last),
        },
    ).fetchall()
    for month, version, closed_by, lines, changed, before, after in rows:
        closed = f"{month:%Y-%m} is closed (version {version}, by {closed_by})"
        if lines is None:
            said = skipped_announcement(closed, month)
        else:
            restatement = Restatement(month, run_id, version, tuple(changed), lines, before, after)
            said = restatement.announcement(closed)
        _say(said, level=logging.WARNING, run_id=run_id, month=f"{month:%Y-%m}")


def print_run_summary(conn: psycopg.Connection, run_id: str) -> tuple[str | None, str | None]:
    """Per domain and month what the run loaded and whether it was published, then its status;
    returns (status, error summary) from etl_runs."""
    rows = conn.execute(SUMMARY_QUERY, (run_id,)).fetchall()
    record = conn.execute(RUN_RECORD, (run_id,)).fetchone()
    status, summary = record if record else (None, None)
    if json_logs():
        _log_run_summary(run_id, rows, status, summary)
        return status, summary
    header = (
        f"{'domain':<13} {'month':<8} {'relevés':>8} {'total cost':>16} {'rejects':>8} {'unallocated':>14}"
        "  published"
    )
    print(header)
    print("-" * len(header))
    for domain, month, releves, total, rejects, unallocated, published in rows:
        print(
            f"{domain:<13} {month:%Y-%m}  {releves:>8} {_money(total):>16} {rejects:>8} "
            f"{_money(unallocated):>14}  {'yes' if published else 'NO'}"
        )
    print(f"\nRun {run_id}: {status or 'not recorded'}" + (f" — {summary}" if summary else ""), flush=True)
    return status, summary


def _log_run_summary(run_id: str, rows: list[Any], status: str | None, summary: str | None) -> None:
    for domain, month, releves, total, rejects, unallocated, published in rows:
        log.info(
            f"{domain} {month:%Y-%m}: {releves} relevés, {_money(total)}, {rejects} rejects, "
            f"{_money(unallocated)} unallocated, {'published' if published else 'NOT published'}",
            extra={"run_id": run_id, "domain": domain, "month": f"{month:%Y-%m}"},
        )
    log.info(f"Run {run_id}: {status or 'not recorded'}" + (f" — {summary}" if summary else ""),
             extra={"run_id": run_id})


def _money(value: Decimal) -> str:
    return f"{value:,.2f} {reporting_currency()}"
