"""OpenCost (`GET /allocation/compute`) for the Kubernetes / OpenShift based private clouds.

OpenCost keeps a short history, so every run reads the complete days it can still see (default:
the last 14, one allocation set per day) and persists them in finops.opencost_allocation_daily; a
month is computed from the days persisted for it, so reprocessing a past month later gives the
same result even when the API no longer has that window. The application key is the aggregate:
`namespace` by default, or a label (`label:app`), set by FINOPS_OPENCOST_AGGREGATE.

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

from finops_dagster.domains.private_cloud.opencost_allocation import Allocation, parse_allocation_sets
from finops_dagster.domains.private_cloud.problems import UsageProblem
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

UPSERT_DAY = """
INSERT INTO finops.opencost_allocation_daily
    (source, day, allocation_key, cpu_core_hours, ram_byte_hours, pv_byte_hours, properties, run_id)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (source, day, allocation_key) DO UPDATE SET
    cpu_core_hours = EXCLUDED.cpu_core_hours, ram_byte_hours = EXCLUDED.ram_byte_hours,
    pv_byte_hours = EXCLUDED.pv_byte_hours, properties = EXCLUDED.properties,
    run_id = EXCLUDED.run_id, read_at = now()
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
    ) -> tuple[int, list[UsageProblem]]:
        """Read what OpenCost still has and persist it; return the days written and the problems."""
        allocations, problems = self.recent_days(today)
        days = set()
        with conn.transaction(), conn.cursor() as cur:
            for allocation in allocations:
                day = allocation.window_start.date()
                if allocation.window_end - allocation.window_start != dt.timedelta(days=1):
                    continue
                days.add(day)
                cur.execute(
                    UPSERT_DAY,
                    (
                        self.client.name,
                        day,
                        allocation.key,
                        allocation.cpu_core_hours,
                        allocation.ram_byte_hours,
                        allocation.pv_byte_hours,
                        json.dumps(allocation.properties),
                        run_id,
                    ),
                )
        return len(days), problems

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
