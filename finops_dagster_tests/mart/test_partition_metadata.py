"""Each month of a run over several months records its own figures on its own partition.

A run over March–May (one run, as the schedule, the UI's backfills and the CLI run months) is
materialized with Dagster's `materialize` on a Dagster instance; the figures are read back from the
instance's event log, one materialization per partition, as the UI's plots by partition read them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from dagster import AssetKey, DagsterInstance, instance_for_test, materialize

from finops_dagster.domains.open_legacy.assets import open_legacy_releves
from finops_dagster.mart.assets import build_fact_releve
from finops_dagster.mart.etl_runs import RANGE_END_TAG, RANGE_START_TAG
from finops_dagster.reference.assets import applications, reference_data
from finops_dagster.resources.mongo import MongoResource
from finops_dagster_tests.support.cmdb_documents import application, night, nights, vm

MARCH, APRIL, MAY = dt.date(2025, 3, 1), dt.date(2025, 4, 1), dt.date(2025, 5, 1)
DOMAIN_ASSET = AssetKey("open_legacy_releves")
FACT = AssetKey("fact_releve")


def fill(cmdb: MongoResource) -> None:
    """March: one VM of PAYMENTS. April: the same, one unallocated VM and a printer (a class that is
    not billable: a reject). May: the first VM with twice its CPUs."""
    documents: list[dict[str, Any]] = []
    for month in (MARCH, APRIL, MAY):
        for day in nights(month, 2):
            documents.append(application("PAYMENTS", day=day))
            cpus = "8" if month == MAY else "4"
            documents.append(vm("vm-01", day=day, cpus=cpus, memory="8192", disks_size="100", app="PAYMENTS"))
            if month == APRIL:
                documents.append(vm("vm-02", day=day, cpus="2", memory="4096", disks_size="50"))
                documents.append(
                    {
                        "sys_id": "prn-10",
                        "sys_class_name": "cmdb_ci_printer",
                        "name": "prn-10",
                        "_ingested_at": night(day, 3),
                    }
                )
    cmdb.db()["cmdb_ci"].insert_many(documents)


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as test_instance:
        yield test_instance


def partition_metadata(instance: DagsterInstance, key: AssetKey) -> dict[str, dict[str, Any]]:
    """Each partition's materialization metadata, as stored in the instance's event log."""
    records = instance.fetch_materializations(key, limit=100).records
    by_partition: dict[str, dict[str, Any]] = {}
    for record in records:
        materialization = record.asset_materialization
        assert materialization is not None and materialization.partition is not None
        by_partition[materialization.partition] = {
            name: value.value for name, value in materialization.metadata.items()
        }
    return by_partition


def month_costs(mart: psycopg.Connection) -> dict[str, tuple[int, Decimal, Decimal]]:
    """Per month, what fact_releve holds: relevés, cost, unallocated cost."""
    rows = mart.execute(
        "SELECT period_month, count(*), sum(total_cost), "
        "coalesce(sum(total_cost) FILTER (WHERE application_id = 'UNALLOCATED'), 0) "
        "FROM finops.fact_releve GROUP BY 1 ORDER BY 1"
    ).fetchall()
    return {month.isoformat(): (count, total, unallocated) for month, count, total, unallocated in rows}


def test_each_partition_of_a_run_carries_its_own_months_figures(
    resources: dict[str, Any], cmdb: MongoResource, instance: DagsterInstance, mart: psycopg.Connection
) -> None:
    fill(cmdb)
    result = materialize(
        [reference_data, applications, open_legacy_releves, build_fact_releve([DOMAIN_ASSET])],
        instance=instance,
        resources=resources,
        tags={RANGE_START_TAG: MARCH.isoformat(), RANGE_END_TAG: MAY.isoformat()},
    )
    assert result.success
    assert len({run.run_id for run in instance.get_runs()}) == 1  # three months, one run

    domain = partition_metadata(instance, DOMAIN_ASSET)
    fact = partition_metadata(instance, FACT)
    assert sorted(domain) == sorted(fact) == ["2025-03-01", "2025-04-01", "2025-05-01"]

    # vm-01: 4 vCPU × 18.50 + 8 GB × 4.20 + 100 GB × 0.085 = 116.10 EUR; vm-02 in April: 58.05 EUR
    # unallocated; in May vm-01 has 8 vCPUs: 190.10 EUR
    expected = {
        "2025-03-01": (3, "116.100000", "0.000000", 0),
        "2025-04-01": (6, "174.150000", "58.050000", 1),
        "2025-05-01": (3, "190.100000", "0.000000", 0),
    }
    assert month_costs(mart) == {
        key: (count, Decimal(total), Decimal(unallocated))
        for key, (count, total, unallocated, _) in expected.items()
    }
    for key, (releves, total, unallocated, rejects) in expected.items():
        for metadata in (domain[key], fact[key]):
            assert metadata["period_month"] == key[:7]
            assert metadata["releves"] == releves
            assert metadata["total_cost_exact_eur"] == f"{total} EUR"
            assert metadata["total_cost_eur"] == float(total)
            assert metadata["unallocated_cost_eur"] == float(unallocated)
            assert metadata["rejects"] == rejects
            assert not any(name.startswith("total_cost") and not name.endswith("_eur") for name in metadata)
    assert domain["2025-04-01"]["unallocated_share_eur"] == round(58.05 / 174.15, 6)
    for metadata in (domain, fact):
        assert [record.data for record in metadata["2025-04-01"]["reject_reasons"].records] == [
            {"reason_code": "UNKNOWN_CI_CLASS", "rejects": 1, "cost": "", "currency": ""}
        ]
        assert metadata["2025-03-01"]["reject_reasons"].records == []
    assert fact["2025-04-01"]["domains_published"] == "open_legacy"
    assert {metadata["total_cost_eur"] for metadata in domain.values()} == {116.1, 174.15, 190.1}
