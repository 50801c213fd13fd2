"""The read API tests' mart: a small CMDB over four months, published by the real `finops_nightly` job.

Applications move from month to month, so rankings and anomalies have something to say.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from dagster import instance_for_test
from psycopg import sql

from finops_dagster.mart.etl_runs import RANGE_END_TAG, RANGE_START_TAG
from finops_dagster.pipeline import build_definitions
from finops_dagster_tests.support.cmdb_documents import application, nights, vm

JANUARY, FEBRUARY, MARCH, APRIL = (dt.date(2025, month, 1) for month in (1, 2, 3, 4))
GROUPS = {"PAYMENTS": "GRP-A", "BILLING": "GRP-A", "BACKUP": "GRP-A", "CRM": "GRP-B", "SEARCH": "GRP-B"}

# What each application runs in each month: (vCPUs, RAM MiB, disk GB) per VM. Changes between months
# give spikes, drops, a new application (SEARCH in March) and one that disappears (BACKUP after February).
ESTATE: dict[dt.date, dict[str, list[tuple[int, int, int]]]] = {
    JANUARY: {
        "PAYMENTS": [(4, 8192, 100)],
        "BILLING": [(8, 16384, 200)],
        "CRM": [(16, 65536, 500)],
        "BACKUP": [(2, 2048, 1000)],
    },
    FEBRUARY: {
        "PAYMENTS": [(4, 8192, 100), (2, 4096, 50)],
        "BILLING": [(8, 16384, 200)],
        "CRM": [(16, 65536, 500)],
        "BACKUP": [(2, 2048, 1000)],
    },
    MARCH: {
        "PAYMENTS": [(4, 8192, 100), (2, 4096, 50)],
        "BILLING": [(24, 65536, 800)],
        "CRM": [(16, 65536, 500)],
        "SEARCH": [(4, 8192, 100)],
    },
    APRIL: {
        "PAYMENTS": [(1, 1024, 10)],
        "BILLING": [(24, 65536, 800)],
        "CRM": [(16, 65536, 500)],
        "SEARCH": [(8, 16384, 200)],
    },
}


def month_documents(month: dt.date) -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for day in nights(month, 2):
        documents += [application(code, day=day, group=group) for code, group in GROUPS.items()]
        for code, machines in ESTATE[month].items():
            for index, (cpus, memory, disk) in enumerate(machines):
                documents.append(
                    vm(
                        f"{code.lower()}-{index}",
                        day=day,
                        cpus=str(cpus),
                        memory=str(memory),
                        disks_size=str(disk),
                        app=code,
                    )
                )
        # an unallocated VM: cost with no application group
        documents.append(vm("orphan", day=day, cpus="1", memory="1024", disks_size="10"))
    return documents


@dataclass(frozen=True)
class Published:
    url: str
    runs: list[str]
    resources: dict[str, Any]

    def publish(self, first: dt.date, last: dt.date) -> str:
        """Run the pipeline again over these months (same CMDB: the same relevés, a new publish)."""
        with pytest.MonkeyPatch.context() as patch:
            pipeline_settings(patch)
            run_id = run_nightly(self.resources, first, last)
        self.runs.append(run_id)
        return run_id

    def rows(self, query: str | sql.Composed, params: Any = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(query, params or None).fetchall()


def run_nightly(resources: dict[str, Any], first: dt.date, last: dt.date) -> str:
    with instance_for_test() as instance:
        job = build_definitions(resources).resolve_job_def("finops_nightly")
        result = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            tags={RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()},
        )
    assert result.success, "the pipeline failed to publish the API's test months"
    return result.run_id


def pipeline_settings(patch: pytest.MonkeyPatch) -> None:
    patch.setenv("FINOPS_DOMAINS_ENABLED", "open_legacy")
    # months of this made-up estate move a lot: the volume check must not block them
    patch.setenv("FINOPS_VOLUME_WARN_DEVIATION", "1000")
    patch.setenv("FINOPS_VOLUME_ERROR_DEVIATION", "1000")
    # a small estate: its changes are far below the production cost floor, and all of them count here
    patch.setenv("FINOPS_ANOMALY_MIN_COST", "0")
