"""Volume anomaly: a month's relevé count and total cost against the trailing published months.

The deviation is |value − trailing average| / trailing average. Above FINOPS_VOLUME_WARN_DEVIATION
the check warns (alert only); above FINOPS_VOLUME_ERROR_DEVIATION it fails with ERROR, which blocks
the publish. Not compared, and said so: the month in progress (month-to-date figures of sources
that accumulate, such as hours of use, would look like a collapse every morning of a new month),
a month with no source data, and a month with no published history.
"""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import psycopg
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    MetadataValue,
    asset_check,
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


def build_volume_check(asset_key: AssetKey, domain_id: str) -> AssetChecksDefinition:
    @asset_check(asset=asset_key, name="volume_anomaly", blocking=True)
    def volume_anomaly(context: AssetCheckExecutionContext, postgres: PostgresResource) -> AssetCheckResult:
        """Row count and total cost per month within the configured deviation of the trailing months."""
        thresholds = volume_thresholds()
        with postgres.connect() as conn:
            findings, not_compared = volume_findings(conn, domain_id, context.run.run_id, thresholds)
        errors = [f for f in findings if f.level == "ERROR"]
        warnings = [f for f in findings if f.level == "WARN"]
        flagged = errors or warnings
        table = [
            "| month | metric | value | trailing avg | deviation | level |",
            "|---|---|---:|---:|---:|---|",
        ]
        table += [
            f"| {f.period_month:%Y-%m} | {f.metric} | {f.value} | {f.trailing_average:.2f} | "
            f"{f.deviation:.1%} | {f.level} |"
            for f in findings
        ]
        description = (
            "; ".join(
                f"{f.period_month:%Y-%m} {f.metric} {f.deviation:.0%} from trailing average ({f.level})"
                for f in flagged[:5]
            )
            if flagged
            else "volumes within thresholds"
        )
        if not_compared:
            skipped = ", ".join(f"{month:%Y-%m} ({why})" for month, why in not_compared)
            description += f"; not compared: {skipped}"
        return AssetCheckResult(
            passed=not flagged,
            severity=AssetCheckSeverity.ERROR if errors else AssetCheckSeverity.WARN,
            description=description,
            metadata={
                "findings": MetadataValue.md("\n".join(table)),
                "warn_deviation": MetadataValue.float(float(thresholds.warn_deviation)),
                "error_deviation": MetadataValue.float(float(thresholds.error_deviation)),
            },
        )

    return volume_anomaly
