"""Volume anomaly: a month's relevé count and total cost against the trailing published months.

The deviation is |value − trailing average| / trailing average. Above FINOPS_VOLUME_WARN_DEVIATION
the check warns (alert only); above FINOPS_VOLUME_ERROR_DEVIATION it fails with ERROR, which blocks
the publish. Not compared, and said so: the month in progress (month-to-date figures of sources
that accumulate, such as hours of use, would look like a collapse every morning of a new month),
a month with no source data, and a month with no published history. When no month of the run is
compared, the check is skipped rather than passed (see build_volume_check).
"""

import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import psycopg
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    MetadataValue,
    multi_asset_check,
)

from finops_dagster.releve import month_start
from finops_dagster.resources.postgres import PostgresResource
from finops_dagster.settings import VolumeThresholds, volume_thresholds

TRAILING_QUERY = """
SELECT count(*)::numeric / nullif(count(DISTINCT period_month), 0),
       sum(total_cost) / nullif(count(DISTINCT period_month), 0),
       count(DISTINCT period_month)
FROM finops.fact_releve
WHERE domain_id = %s AND period_month >= %s::date - make_interval(months => %s) AND period_month < %s
"""


@dataclass(frozen=True)
class VolumeFinding:
    period_month: dt.date
    metric: str
    value: Decimal
    trailing_average: Decimal
    deviation: Decimal
    level: str


def volume_findings(
    conn: psycopg.Connection,
    domain_id: str,
    run_id: str,
    thresholds: VolumeThresholds,
    *,
    in_progress: dt.date | None = None,
) -> tuple[list[VolumeFinding], list[tuple[dt.date, str]]]:
    """Per month loaded by the run: one finding per metric, and the months not compared with why."""
    current = in_progress or month_start(dt.datetime.now(dt.UTC))
    findings: list[VolumeFinding] = []
    not_compared: list[tuple[dt.date, str]] = []
    loads = conn.execute(
        "SELECT period_month, releve_count, total_cost, source_record_count FROM finops.domain_load "
        "WHERE domain_id = %s AND run_id = %s ORDER BY period_month",
        (domain_id, run_id),
    ).fetchall()
    for month, count, cost, source_records in loads:
        if month >= current:
            not_compared.append((month, "month in progress"))
            continue
        if source_records == 0:
            not_compared.append((month, "no source data"))
            continue
        row = conn.execute(TRAILING_QUERY, (domain_id, month, thresholds.trailing_months, month)).fetchone()
        if row is None or not row[2]:
            not_compared.append((month, "no published history"))
            continue
        for metric, value, average in (("releves", Decimal(count), row[0]), ("total_cost", cost, row[1])):
            deviation = abs(value - average) / average if average else Decimal(0 if value == 0 else 1)
            level = (
                "ERROR"
                if deviation > thresholds.error_deviation
                else "WARN"
                if deviation > thresholds.warn_deviation
                else "OK"
            )
            findings.append(VolumeFinding(month, metric, value, average, deviation, level))
    return findings, not_compared


CHECK_NAME = "volume_anomaly"


class _QuietIntendedSkip(logging.Filter):
    """Dagster warns when a blocking check emits no result, and then lets the publish go on: for
    this check that is the intended skip (nothing to compare), already logged in the run, so the
    warning about this one check is dropped; every other check's still shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (f":{CHECK_NAME}'" in message and "emitted no result" in message)


logging.getLogger("dagster._core.execution.plan.active").addFilter(_QuietIntendedSkip())


def deviation_metadata(findings: list[VolumeFinding]) -> dict[str, MetadataValue]:
    """The largest deviation per metric, in percent: what the UI plots from one evaluation to the next."""
    largest: dict[str, Decimal] = {}
    for finding in findings:
        largest[finding.metric] = max(largest.get(finding.metric, Decimal(0)), finding.deviation)
    return {
        f"{metric}_deviation_pct": MetadataValue.float(round(float(value * 100), 2))
        for metric, value in largest.items()
    }


def _findings_table(findings: list[VolumeFinding]) -> str:
    table = [
        "| month | metric | value | trailing avg | deviation | level |",
        "|---|---|---:|---:|---:|---|",
    ]
    table += [
        f"| {f.period_month:%Y-%m} | {f.metric} | {f.value:,.2f} | {f.trailing_average:,.2f} | "
        f"{f.deviation:.1%} | {f.level} |"
        for f in findings
    ]
    return "\n".join(table)


def volume_result(
    findings: list[VolumeFinding], not_compared: list[tuple[dt.date, str]], thresholds: VolumeThresholds
) -> AssetCheckResult:
    """The evaluation of months that were compared; the months that were not are named in it."""
    errors = [f for f in findings if f.level == "ERROR"]
    flagged = errors or [f for f in findings if f.level == "WARN"]
    description = (
        "; ".join(
            f"{f.period_month:%Y-%m} {f.metric} {f.deviation:.0%} from trailing average ({f.level})"
            for f in flagged[:5]
        )
        if flagged
        else "volumes within thresholds"
    )
    if not_compared:
        description += "; not compared: " + describe_not_compared(not_compared)
    return AssetCheckResult(
        check_name=CHECK_NAME,
        passed=not flagged,
        severity=AssetCheckSeverity.ERROR if errors else AssetCheckSeverity.WARN,
        description=description,
        metadata={
            **deviation_metadata(findings),
            "findings": MetadataValue.md(_findings_table(findings)),
            "thresholds": MetadataValue.text(
                f"warn above {thresholds.warn_deviation:.0%}, block above {thresholds.error_deviation:.0%} "
                f"of the trailing {thresholds.trailing_months} month(s)"
            ),
        },
    )


def describe_not_compared(not_compared: list[tuple[dt.date, str]]) -> str:
    return ", ".join(f"{month:%Y-%m} ({why})" for month, why in not_compared)


def build_volume_check(asset_key: AssetKey, domain_id: str) -> AssetChecksDefinition:
    """Blocking, and skipped (Dagster's own *Skipped* status, no evaluation) when no month of the run
    can be compared: a pass would claim volumes that were never checked, a failure would alert on a
    new mart. A skipped blocking check does not hold the publish back."""

    @multi_asset_check(
        specs=[
            AssetCheckSpec(
                CHECK_NAME,
                asset=asset_key,
                blocking=True,
                description="Relevés and total cost per month within the configured deviation of the "
                "trailing published months; skipped when no month of the run has history to compare.",
            )
        ],
        can_subset=True,
        name=f"{asset_key.path[-1]}_{CHECK_NAME}",
    )
    def volume_anomaly(
        context: AssetCheckExecutionContext, postgres: PostgresResource
    ) -> Iterator[AssetCheckResult]:
        thresholds = volume_thresholds()
        with postgres.connect() as conn:
            findings, not_compared = volume_findings(conn, domain_id, context.run.run_id, thresholds)
        if not findings:
            skipped = describe_not_compared(not_compared) or "no load"
            context.log.info(f"{CHECK_NAME} skipped, no month to compare: {skipped}")
            return
        yield volume_result(findings, not_compared, thresholds)

    return volume_anomaly
