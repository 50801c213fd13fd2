"""Freshness: by the morning's deadline, the night's run has published the current month.

At FINOPS_FRESHNESS_DEADLINE (default 06:00) in FINOPS_TIMEZONE, a schedule runs one asset check on
`fact_releve`, `published_by_deadline`: for every enabled domain, the month the deadline falls in
must have been published in the 24 hours before the deadline (or since). A failed evaluation is an
ordinary failed check, so the check-failure alert sensor posts it like any other.

The check reads the mart (`finops.domain_load.published_at`), not Dagster's materializations: the
headless nightly (`finops-dagster nightly`, the Kubernetes CronJob) records its runs in an
ephemeral Dagster instance, so only the mart knows that it published. For the same reason it is
not one of Dagster's freshness factories (`build_time_partition_freshness_checks`, superseded in
this Dagster version by `FreshnessPolicy`): both judge from the instance's records.

A run of the check says which moment it judges: the schedule tags the run with its tick
(`finops/freshness_as_of`); a run launched by hand judges the latest deadline before now.
"""

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckKey,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetSelection,
    DefaultScheduleStatus,
    MetadataValue,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    asset_check,
    define_asset_job,
    schedule,
)

from finops_dagster.mart.assets import FACT_RELEVE
from finops_dagster.resources.postgres import PostgresResource
from finops_dagster.settings import SettingError, freshness_deadline, schedule_settings

CHECK_NAME = "published_by_deadline"
JOB_NAME = "fact_releve_freshness"
AS_OF_TAG = "finops/freshness_as_of"
WINDOW = dt.timedelta(hours=24)
"""How recent the publish must be at the deadline: one night's run."""

LAST_PUBLISHED = """
SELECT domain_id, max(published_at) FROM finops.domain_load
WHERE period_month = %s AND published_at IS NOT NULL AND domain_id = ANY(%s)
GROUP BY domain_id
"""


@dataclass(frozen=True)
class Deadline:
    """The moment the current month must have been published by, in the pipeline's time zone."""

    at: dt.datetime

    @property
    def month(self) -> dt.date:
        return self.at.date().replace(day=1)

    @property
    def window_start(self) -> dt.datetime:
        return self.at - WINDOW

    def label(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.at.tzname()}"


def pipeline_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingError(
            f"FINOPS_TIMEZONE must be an IANA time zone (e.g. Europe/Paris), got {name!r}"
        ) from None


def latest_deadline(as_of: dt.datetime, deadline: dt.time, zone: ZoneInfo) -> Deadline:
    """The last deadline at or before `as_of`: today's if it has passed, else yesterday's."""
    local = as_of.astimezone(zone)
    today = dt.datetime.combine(local.date(), deadline, tzinfo=zone)
    if today > local:
        today = dt.datetime.combine(local.date() - dt.timedelta(days=1), deadline, tzinfo=zone)
    return Deadline(today)


def last_published(
    conn: psycopg.Connection, month: dt.date, domains: Sequence[str]
) -> dict[str, dt.datetime | None]:
    """When each domain's rows of `month` were last published (None: never)."""
    found: dict[str, dt.datetime] = dict(conn.execute(LAST_PUBLISHED, (month, list(domains))).fetchall())
    return {domain: found.get(domain) for domain in domains}


def stale_domains(published: Mapping[str, dt.datetime | None], deadline: Deadline) -> list[str]:
    """The domains whose month was not published in the window before the deadline (or since)."""
    return [
        domain for domain, at in published.items() if at is None or at < deadline.window_start
    ]


def _describe(published: Mapping[str, dt.datetime | None], deadline: Deadline, zone: ZoneInfo) -> str:
    stale = stale_domains(published, deadline)
    month = f"{deadline.month:%Y-%m}"
    if not stale:
        return f"{month} published for the deadline of {deadline.label()} by every domain"

    def when(domain: str) -> str:
        at = published[domain]
        return "never published" if at is None else f"last published {at.astimezone(zone):%Y-%m-%d %H:%M}"

    return (
        f"{month} not published since {deadline.window_start:%Y-%m-%d %H:%M} for the deadline of "
        f"{deadline.label()}: " + "; ".join(f"{domain} {when(domain)}" for domain in stale)
        + ". Run the nightly for the current month (job finops_nightly or publish_months)"
    )


def _as_of(context: AssetCheckExecutionContext) -> dt.datetime:
    tagged = context.run.tags.get(AS_OF_TAG)
    return dt.datetime.fromisoformat(tagged) if tagged else dt.datetime.now(dt.UTC)


def build_freshness_check(domains: Sequence[str]) -> AssetChecksDefinition:
    """`published_by_deadline` on fact_releve, for the enabled domains."""
    deadline_time = freshness_deadline()
    zone = pipeline_zone(schedule_settings().timezone)

    @asset_check(
        asset=FACT_RELEVE,
        name=CHECK_NAME,
        description=(
            f"The current month published by every enabled domain by {deadline_time:%H:%M} {zone.key} "
            "(FINOPS_FRESHNESS_DEADLINE), within the 24 hours before; run at the deadline by the "
            "schedule fact_releve_freshness_schedule."
        ),
    )
    def published_by_deadline(
        context: AssetCheckExecutionContext, postgres: PostgresResource
    ) -> AssetCheckResult:
        """Reads the mart's publish times, so the headless nightly's publishes count too."""
        deadline = latest_deadline(_as_of(context), deadline_time, zone)
        with postgres.connect() as conn:
            published = last_published(conn, deadline.month, domains)
        stale = stale_domains(published, deadline)
        known = [at for at in published.values() if at is not None]
        metadata: dict[str, MetadataValue] = {
            "month": MetadataValue.text(f"{deadline.month:%Y-%m}"),
            "deadline": MetadataValue.timestamp(deadline.at),
            "stale_domains": MetadataValue.int(len(stale)),
        }
        if known:
            metadata["oldest_publish"] = MetadataValue.timestamp(min(known))
        return AssetCheckResult(
            passed=not stale,
            severity=AssetCheckSeverity.ERROR,
            description=_describe(published, deadline, zone),
            metadata=metadata,
        )

    return published_by_deadline


freshness_job = define_asset_job(
    JOB_NAME,
    selection=AssetSelection.checks(AssetCheckKey(FACT_RELEVE, CHECK_NAME)),
    description="The freshness check of fact_releve alone (the schedule runs it at the deadline).",
)


def build_freshness_schedule() -> ScheduleDefinition:
    """One evaluation a day, at the deadline, judged as of the tick."""
    deadline_time = freshness_deadline()
    zone = pipeline_zone(schedule_settings().timezone)

    @schedule(
        name="fact_releve_freshness_schedule",
        job=freshness_job,
        cron_schedule=f"{deadline_time.minute} {deadline_time.hour} * * *",
        execution_timezone=zone.key,
        default_status=DefaultScheduleStatus.RUNNING,
    )
    def fact_releve_freshness_schedule(context: ScheduleEvaluationContext) -> RunRequest:
        """The freshness check as of this tick."""
        tick = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
        return RunRequest(run_key=f"freshness-{tick:%Y-%m-%d}", tags={AS_OF_TAG: tick.isoformat()})

    return fact_releve_freshness_schedule
