"""Dagster sensors that turn run failures and failed asset checks into webhook alerts.

Both sensors default to RUNNING so that alerting works as soon as the code location is
deployed; without ``FINOPS_ALERT_WEBHOOK_URL`` they only report a skip reason, so a RUNNING
default costs nothing in environments that do not alert.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from dagster import (
    AssetCheckEvaluation,
    DagsterEventType,
    DagsterInstance,
    DefaultSensorStatus,
    EventLogRecord,
    EventRecordsFilter,
    MetadataValue,
    RunFailureSensorContext,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    run_failure_sensor,
    sensor,
)
from dagster_shared.error import SerializableErrorInfo

from finops_dagster.alerts import (
    ERROR_SUMMARY_MAX_CHARS,
    Alert,
    PartitionRange,
    alerting_disabled_reason,
    partition_range_from_tags,
    send_alert,
    summarize_error,
    webhook_url_from_env,
)

if TYPE_CHECKING:
    from dagster._core.storage.event_log.base import EventLogStorage

CHECK_SENSOR_INTERVAL_SECONDS = 60
# Bounded so that a backlog (e.g. after a webhook outage) drains over several ticks instead of
# one tick that outlives the sensor timeout.
CHECK_EVENTS_PER_TICK = 100


# --------------------------------------------------------------------------------------------
# Run failures
# --------------------------------------------------------------------------------------------


def _root_cause(error: SerializableErrorInfo) -> SerializableErrorInfo:
    """Dagster wraps user exceptions (DagsterExecutionStepExecutionError); the cause is what
    the reader needs to see."""
    while error.cause is not None:
        error = error.cause
    return error


def _step_failure_summary(context: RunFailureSensorContext) -> tuple[str, list[str]]:
    """Return (first root-cause error line, failed step keys) from the run's step failures."""
    summary = ""
    step_keys: list[str] = []
    for event in context.get_step_failure_events():
        if event.step_key:
            step_keys.append(event.step_key)
        error = getattr(event.event_specific_data, "error", None)
        if not summary and isinstance(error, SerializableErrorInfo):
            summary = summarize_error(_root_cause(error).message)
    return summary, step_keys


def _run_failure_summary(context: RunFailureSensorContext) -> str:
    """Fallback when no step failed (e.g. the run worker crashed or the run was misconfigured)."""
    failure_event = context.failure_event
    error = getattr(failure_event.event_specific_data, "error", None)
    if isinstance(error, SerializableErrorInfo):
        return summarize_error(_root_cause(error).message)
    return summarize_error(failure_event.message)


def build_run_failure_alert(context: RunFailureSensorContext) -> Alert:
    """Gather the facts about a failed run into an :class:`Alert`."""
    run = context.dagster_run
    step_summary, step_keys = _step_failure_summary(context)
    run_message = summarize_error(context.failure_event.message)
    error_summary = step_summary or _run_failure_summary(context) or "run failed"
    details = [f"Failed steps: {', '.join(step_keys)}"] if step_keys else []
    if run_message and run_message != error_summary:
        details.append(run_message)
    return Alert(
        kind="run_failure",
        run_id=run.run_id,
        job=run.job_name,
        severity="ERROR",
        error_summary=error_summary,
        partition_range=partition_range_from_tags(run.tags),
        details=details,
    )


@run_failure_sensor(
    name="run_failure_alert_sensor",
    description="Posts one webhook alert per failed run of this code location's jobs.",
    default_status=DefaultSensorStatus.RUNNING,
)
def run_failure_alert_sensor(context: RunFailureSensorContext) -> SkipReason | None:
    """Alert on a failed run.

    Returns None after posting so Dagster keeps processing further failed runs in the same tick
    (a non-None return makes the run-status machinery stop after one run).
    """
    webhook_url = webhook_url_from_env()
    if webhook_url is None:
        return SkipReason(alerting_disabled_reason())
    alert = build_run_failure_alert(context)
    send_alert(alert, webhook_url)
    context.log.info("Posted run-failure alert for run %s", alert.run_id)
    return None


# --------------------------------------------------------------------------------------------
# Asset check failures
# --------------------------------------------------------------------------------------------


def _metadata_summary(metadata: Mapping[str, MetadataValue]) -> str:
    """Compact ``key=value`` rendering so the alert shows the numbers the check recorded."""
    text = ", ".join(f"{key}={value.value}" for key, value in metadata.items())
    return summarize_error(text, ERROR_SUMMARY_MAX_CHARS)


def _check_partition(evaluation: AssetCheckEvaluation, tags: Mapping[str, str]) -> PartitionRange | None:
    """Prefer the run's partition tags; fall back to the partition the check itself evaluated."""
    from_tags = partition_range_from_tags(tags)
    if from_tags is not None or not evaluation.partition:
        return from_tags
    return PartitionRange(start=evaluation.partition, end=evaluation.partition)


def build_check_failure_alert(instance: DagsterInstance, record: EventLogRecord) -> Alert | None:
    """Turn an ASSET_CHECK_EVALUATION record into an alert, or None when the check passed."""
    entry = record.event_log_entry
    event = entry.dagster_event
    evaluation = event.event_specific_data if event is not None else None
    if not isinstance(evaluation, AssetCheckEvaluation) or evaluation.passed:
        return None
    run = instance.get_run_by_id(entry.run_id) if entry.run_id else None
    metadata_summary = _metadata_summary(evaluation.metadata)
    return Alert(
        kind="check_failure",
        run_id=entry.run_id,
        job=entry.job_name or (run.job_name if run else None),
        severity=evaluation.severity.value,
        error_summary=summarize_error(evaluation.description) or metadata_summary or "check did not pass",
        partition_range=_check_partition(evaluation, run.tags if run else {}),
        asset_key=evaluation.asset_key.to_user_string(),
        check_name=evaluation.check_name,
        details=[f"Metadata: {metadata_summary}"] if metadata_summary else [],
    )


def _latest_check_storage_id(storage: EventLogStorage) -> int:
    """Storage id of the newest check evaluation (0 if none): where a fresh cursor starts."""
    latest = storage.get_event_records(
        EventRecordsFilter(event_type=DagsterEventType.ASSET_CHECK_EVALUATION), limit=1, ascending=False
    )
    return latest[0].storage_id if latest else 0


def _check_records_after(storage: EventLogStorage, after: int) -> Sequence[EventLogRecord]:
    """Oldest-first, so the cursor can advance to the last record handled."""
    return storage.get_event_records(
        EventRecordsFilter(event_type=DagsterEventType.ASSET_CHECK_EVALUATION, after_cursor=after),
        limit=CHECK_EVENTS_PER_TICK,
        ascending=True,
    )


_RUN_SHARDED_REASON = (
    "Asset check alerting needs an event log storage with global storage ids (Postgres or "
    "ConsolidatedSqliteEventLogStorage); this instance uses a run-sharded SQLite event log."
)


@sensor(
    name="check_failure_alert_sensor",
    description="Posts one webhook alert per failed asset check evaluation (WARN or ERROR).",
    minimum_interval_seconds=CHECK_SENSOR_INTERVAL_SECONDS,
    default_status=DefaultSensorStatus.RUNNING,
)
def check_failure_alert_sensor(context: SensorEvaluationContext) -> SensorResult | SkipReason:
    """Alert on failed asset check evaluations recorded since the last tick.

    The cursor is the storage id of the last evaluation event handled. The instance-level
    ``get_event_records`` is deprecated, so the event log storage is queried directly with the
    same filter. On the first tick the cursor starts at the newest existing evaluation, so
    turning the sensor on does not replay the whole history.
    """
    webhook_url = webhook_url_from_env()
    if webhook_url is None:
        return SkipReason(alerting_disabled_reason())
    storage = context.instance.event_log_storage
    if storage.is_run_sharded:
        return SkipReason(_RUN_SHARDED_REASON)
    if not context.cursor:
        start = _latest_check_storage_id(storage)
        return SensorResult(
            skip_reason=f"Cursor initialised at storage id {start}; only newer check failures alert.",
            cursor=str(start),
        )
    after = int(context.cursor)
    records = _check_records_after(storage, after)
    if not records:
        return SkipReason(f"No asset check evaluations after storage id {after}.")
    posted = 0
    for record in records:
        alert = build_check_failure_alert(context.instance, record)
        if alert is not None:
            send_alert(alert, webhook_url)
            posted += 1
    last = records[-1].storage_id
    return SensorResult(
        skip_reason=f"Posted {posted} check-failure alert(s) for {len(records)} evaluation(s) "
        f"up to storage id {last}.",
        cursor=str(last),
    )


ALERT_SENSORS: list[SensorDefinition] = [run_failure_alert_sensor, check_failure_alert_sensor]
