"""OpenCost (`GET /allocation/compute`) for the Kubernetes / OpenShift based private clouds.

OpenCost keeps a short history, so every run reads the complete days it can still see (default:
the last 14, one allocation set per day) and persists them in finops.opencost_allocation_daily; a
month is computed from the days persisted for it, so reprocessing a past month later gives the
same result even when the API no longer has that window. The application key is the aggregate:
`namespace` by default, or a label (`label:app`), set by FINOPS_OPENCOST_AGGREGATE.

A day OpenCost returns replaces that day: its persisted allocations and refusals are deleted and
what was read is inserted, in one transaction, so a key absent from the new read (after the
aggregate changed, say) does not stay next to the new keys. Days OpenCost no longer returns keep
what was persisted for them. Entries refused when read (unreadable values, a window that is not
one day) are persisted per day in finops.opencost_refused_daily and become the rejects of the
month of their day, whenever that month is computed.

Policy for OpenCost's own keys: `__idle__` (capacity no workload requested) and `__unallocated__`
(usage without the aggregate key) are kept as such and land on the unallocated application, so
the platform's unused capacity stays visible in the unallocated share and nothing is lost.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from decimal import Decimal

import psycopg

from finops_dagster.domains.private_cloud.opencost_payloads import Allocation, parse_allocation_sets
from finops_dagster.domains.private_cloud.problems import UsageProblem, ValueProblem, utc_instant
from finops_dagster.http.auth import auth_from_env
from finops_dagster.http.client import HttpSource
from finops_dagster.http.errors import SourceError
from finops_dagster.http.settings import http_settings
from finops_dagster.priced_usage import MeteredUsage
from finops_dagster.releve import next_month
from finops_dagster.settings import env_int

SOURCE = "opencost"
PREFIX = "FINOPS_OPENCOST"
BYTES_PER_GIB = Decimal(1024**3)

DELETE_DAY_ALLOCATIONS = "DELETE FROM finops.opencost_allocation_daily WHERE source = %s AND day = %s"
DELETE_DAY_REFUSALS = "DELETE FROM finops.opencost_refused_daily WHERE source = %s AND day = %s"

INSERT_DAY = """
INSERT INTO finops.opencost_allocation_daily
    (source, day, allocation_key, cpu_core_hours, ram_byte_hours, pv_byte_hours, properties, run_id)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
"""

# ON CONFLICT: a refusal attributed to a day this read does not replace (its day was unreadable)
# may have been persisted by an earlier run; the latest read of it wins.
UPSERT_REFUSAL = """
INSERT INTO finops.opencost_refused_daily (source, day, ref, reason, raw, run_id)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (source, day, ref, reason) DO UPDATE SET
    raw = EXCLUDED.raw, run_id = EXCLUDED.run_id, read_at = now()
"""

MONTH_REFUSALS = """
SELECT ref, reason, raw FROM finops.opencost_refused_daily
WHERE source = %s AND day >= %s AND day < %s
ORDER BY day, ref, reason
"""

MONTH_TOTALS = """
SELECT allocation_key, sum(cpu_core_hours), sum(ram_byte_hours), sum(pv_byte_hours), count(*)
FROM finops.opencost_allocation_daily
WHERE source = %s AND day >= %s AND day < %s
GROUP BY allocation_key ORDER BY allocation_key
"""


class OpenCostAllocations:
    def __init__(self, client: HttpSource, aggregate: str, lookback_days: int) -> None:
        self.client = client
        self.aggregate = aggregate
        self.lookback_days = lookback_days

    @classmethod
    def from_env(cls) -> OpenCostAllocations:
        return cls(
            HttpSource(http_settings(SOURCE, PREFIX), auth_from_env(PREFIX, default="none")),
            os.environ.get(f"{PREFIX}_AGGREGATE") or "namespace",
            env_int(f"{PREFIX}_LOOKBACK_DAYS", 14, minimum=1),
        )

    def recent_days(self, today: dt.date) -> tuple[list[Allocation], list[UsageProblem]]:
        """The complete days OpenCost can still show (yesterday and before), one set per day."""
        start = dt.datetime.combine(today - dt.timedelta(days=self.lookback_days), dt.time(), tzinfo=dt.UTC)
        end = dt.datetime.combine(today, dt.time(), tzinfo=dt.UTC)
        window = f"{start:%Y-%m-%dT%H:%M:%SZ},{end:%Y-%m-%dT%H:%M:%SZ}"
        body = self.client.get(
            "/allocation/compute", {"window": window, "aggregate": self.aggregate, "step": "1d"}
        ).body
        try:
            return parse_allocation_sets(body)
        except ValueError as error:
            raise SourceError(SOURCE, f"unexpected answer: {error}", path="/allocation/compute") from None

    def persist_recent_days(
        self, conn: psycopg.Connection, run_id: str, today: dt.date
    ) -> tuple[int, list[tuple[dt.date, UsageProblem]]]:
        """Read what OpenCost still has and let it replace the days it returned.

        Returns the number of days replaced and the refusals persisted, each with its day.
        """
        allocations, problems = self.recent_days(today)
        first_day = today - dt.timedelta(days=self.lookback_days)
        kept: list[Allocation] = []
        refused: list[tuple[dt.date, UsageProblem]] = []
        days: set[dt.date] = set()
        read: set[tuple[dt.date, str]] = set()
        for allocation in allocations:
            day = allocation.window_start.date()
            days.add(day)
            if not _is_one_day(allocation):
                refused.append((day, _window_refusal(allocation)))
            elif (day, allocation.key) in read:  # two sets for one day: keep the first, say so
                refused.append((day, _window_refusal(allocation, f"read twice for {day}")))
            else:
                read.add((day, allocation.key))
                kept.append(allocation)
        for problem in problems:
            problem_on = problem_day(problem)
            if problem_on is not None:
                days.add(problem_on)
                refused.append((problem_on, problem))
            else:
                reason = f"{problem.reason} (window unreadable: counted on {first_day}, the read's first day)"
                refused.append((first_day, UsageProblem(problem.ref, reason, problem.raw)))
        source = self.client.name
        with conn.transaction(), conn.cursor() as cur:
            for day in sorted(days):
                cur.execute(DELETE_DAY_ALLOCATIONS, (source, day))
                cur.execute(DELETE_DAY_REFUSALS, (source, day))
            cur.executemany(
                INSERT_DAY,
                [
                    (
                        source,
                        allocation.window_start.date(),
                        allocation.key,
                        allocation.cpu_core_hours,
                        allocation.ram_byte_hours,
                        allocation.pv_byte_hours,
                        json.dumps(allocation.properties),
                        run_id,
                    )
                    for allocation in kept
                ],
            )
            cur.executemany(
                UPSERT_REFUSAL,
                [
                    (source, day, problem.ref, problem.reason, json.dumps(problem.raw, default=str), run_id)
                    for day, problem in refused
                ],
            )
        return len(days), refused

    def refused(self, conn: psycopg.Connection, month: dt.date) -> list[UsageProblem]:
        """The month's entries refused when read, from the persisted days (rejects, no quantity)."""
        rows = conn.execute(MONTH_REFUSALS, (self.client.name, month, next_month(month))).fetchall()
        return [UsageProblem(ref=ref, reason=reason, raw=raw) for ref, reason, raw in rows]

    def metered(self, conn: psycopg.Connection, month: dt.date) -> Iterator[MeteredUsage]:
        """The month from the persisted days: core-hours, RAM GiB-hours, PV GiB-hours per key."""
        rows = conn.execute(MONTH_TOTALS, (self.client.name, month, next_month(month))).fetchall()
        for key, cpu, ram, pv, _days in rows:
            fields = {"tenant": key, "opencost_key": key}
            yield MeteredUsage(SOURCE, key, "PC_K8S_CPU_CORE_HOUR", cpu, fields=fields)
            yield MeteredUsage(SOURCE, key, "PC_K8S_RAM_GIB_HOUR", ram / BYTES_PER_GIB, fields=fields)
            yield MeteredUsage(SOURCE, key, "PC_K8S_PV_GIB_HOUR", pv / BYTES_PER_GIB, fields=fields)

    def persisted_days(self, conn: psycopg.Connection, month: dt.date) -> int:
        row = conn.execute(
            "SELECT count(DISTINCT day) FROM finops.opencost_allocation_daily "
            "WHERE source = %s AND day >= %s AND day < %s",
            (self.client.name, month, next_month(month)),
        ).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self.client.close()


def problem_day(problem: UsageProblem) -> dt.date | None:
    """The UTC day of a refused entry's window start (its own `start` without a window), if readable."""
    window = problem.raw.get("window")
    start = window.get("start") if isinstance(window, dict) and window else problem.raw.get("start")
    try:
        return utc_instant(start, "window.start").date()
    except ValueProblem:
        return None


def _is_one_day(allocation: Allocation) -> bool:
    """A complete UTC day: from midnight to the next midnight."""
    start = allocation.window_start
    return start.time() == dt.time() and allocation.window_end - start == dt.timedelta(days=1)


def _window_refusal(allocation: Allocation, reason: str | None = None) -> UsageProblem:
    """An allocation that cannot be a day's (by default: its window is not one day), as a refusal
    carrying what was read."""
    start, end = (f"{at:%Y-%m-%dT%H:%M:%SZ}" for at in (allocation.window_start, allocation.window_end))
    raw = {
        "name": allocation.key,
        "window": {"start": start, "end": end},
        "properties": allocation.properties,
        "cpuCoreHours": str(allocation.cpu_core_hours),
        "ramByteHours": str(allocation.ram_byte_hours),
        "pvByteHours": str(allocation.pv_byte_hours),
        "gpuHours": str(allocation.gpu_hours),
        "totalCost": str(allocation.total_cost),
    }
    return UsageProblem(ref=allocation.key, reason=reason or f"window is not one day: {start}–{end}", raw=raw)
