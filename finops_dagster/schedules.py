"""The nightly schedule: one run over the previous and the current month.

One RunRequest carries a partition range, so the domains process both months in one run and the
views refresh once. Whether the previous month is recomputed (late data) is
FINOPS_RECALC_PREVIOUS_MONTH (default true).
"""

import datetime as dt

from dagster import (
    DefaultScheduleStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    schedule,
)

from finops_dagster.jobs import nightly_job
from finops_dagster.mart.etl_runs import RANGE_END_TAG, RANGE_START_TAG
from finops_dagster.releve import month_start
from finops_dagster.settings import schedule_settings


def nightly_months(now: dt.datetime, *, recalc_previous_month: bool) -> tuple[str, str]:
    """The first and last partition keys the night covers."""
    current = month_start(now)
    first = month_start(current - dt.timedelta(days=1)) if recalc_previous_month else current
    return first.isoformat(), current.isoformat()


def nightly_run_request(now: dt.datetime, *, recalc_previous_month: bool) -> RunRequest:
    first, last = nightly_months(now, recalc_previous_month=recalc_previous_month)
    return RunRequest(
        run_key=f"nightly-{now:%Y-%m-%d}",
        tags={RANGE_START_TAG: first, RANGE_END_TAG: last},
    )


def build_nightly_schedule() -> ScheduleDefinition:
    settings = schedule_settings()

    @schedule(
        name="finops_nightly_schedule",
        job=nightly_job,
        cron_schedule=settings.cron,
        execution_timezone=settings.timezone,
        default_status=DefaultScheduleStatus.RUNNING,
    )
    def finops_nightly_schedule(context: ScheduleEvaluationContext) -> RunRequest:
        """Previous and current month, every night."""
        now = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
        return nightly_run_request(now, recalc_previous_month=settings.recalc_previous_month)

    return finops_nightly_schedule
