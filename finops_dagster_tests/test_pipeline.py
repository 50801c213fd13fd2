"""The whole pipeline through Dagster's real machinery, on a small hand-built CMDB and a real mart.

Tests run the `finops_nightly` job in process (as the schedule, the UI and backfills do, with the
partition-range tags) against a PostgreSQL database and an in-memory CMDB of their own, and assert
what the mart holds afterwards. Tests that only read a published March share one module-scoped
mart (`march`); one more runs the real `dagster asset materialize` CLI in a subprocess.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import psycopg
import pytest
from dagster import (
    AssetCheckKey,
    AssetCheckSeverity,
    AssetKey,
    DagsterInstance,
    DagsterRunStatus,
    ExecuteInProcessResult,
    instance_for_test,
)
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from psycopg import sql

import finops_dagster.month_loader as month_loader
from finops_dagster.checks.reconciliation import unit_balances
from finops_dagster.mart.aggregates import AGGREGATES
from finops_dagster.mart.etl_runs import RANGE_END_TAG, RANGE_START_TAG, RunLedger
from finops_dagster.mart.staging import stage_domain_load
from finops_dagster.observe.logs import JsonFormatter
from finops_dagster.pipeline import build_definitions
from finops_dagster.releve import DomainLoad, month_start
from finops_dagster.resources.mongo import MongoResource
from finops_dagster.resources.postgres import MartUnavailable, PostgresResource
from finops_dagster_tests.conftest import database_url
from finops_dagster_tests.support.cmdb_documents import application, night, nights, vm

MARCH = dt.date(2025, 3, 1)
APRIL = dt.date(2025, 4, 1)
DOMAIN = "open_legacy"
CRM_SYS_ID = "app-crm"

# --------------------------------------------------------------------------------------------
# A small CMDB: 5 applications, 12 CIs over 3 nights per month, some malformed
# --------------------------------------------------------------------------------------------


def server(sys_id: str, *, day: dt.date, cpu_count: str, ram: str, disk_space: str) -> dict[str, Any]:
    return {"sys_id": sys_id, "sys_class_name": "cmdb_ci_linux_server", "name": f"srv-{sys_id}",
            "cpu_count": cpu_count, "ram": ram, "disk_space": disk_space, "_ingested_at": night(day, 2)}


def month_documents(month: dt.date) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(cmdb_ci documents, cmdb_rel_ci documents) of a month's three nightly dumps."""
    cis: list[dict[str, Any]] = []
    relations: list[dict[str, Any]] = []
    three = nights(month, 3)
    for day in three:
        cis += [application(code, day=day, group="GRP-A" if code != "CRM" else "GRP-B")
                for code in ("PAYMENTS", "BILLING", "BACKUP")]
        cis.append(application("CRM", day=day, group="GRP-B", sys_id=CRM_SYS_ID))
        cis += [
            vm("vm-01", day=day, cpus="4", memory="8192", disks_size="100", app="PAYMENTS"),
            vm("vm-02", day=day, cpus="2", memory="4096", disks_size="50",
               app={"display_value": "Payments", "value": "PAYMENTS"}),
            vm("vm-03", day=day, cpus="8", memory="16384", disks_size="200", app=" billing "),
            server("srv-04", day=day, cpu_count="16", ram="65536", disk_space="500"),  # CRM by relation
            vm("vm-05", day=day, cpus="2", memory="2048", disks_size="1000", name="bkp-005"),  # rule → BACKUP
            vm("vm-06", day=day, cpus="1", memory="1024", disks_size="10"),  # nothing → UNALLOCATED
            vm("vm-08", day=day, cpus="n/a", memory="8192", disks_size="100", app="PAYMENTS"),  # bad cpus
            vm("vm-09", day=day, cpus="4", memory="8192", disks_size="100", app="PAYMENTS"),
            {"sys_id": "prn-10", "sys_class_name": "cmdb_ci_printer", "name": "prn-10",
             "_ingested_at": night(day, 3)},  # not billable
            {"sys_id": "vol-11", "sys_class_name": "cmdb_ci_storage_volume", "name": "vol-11",
             "size_bytes": {"$numberLong": "500000000000"}, "u_application": "CRM",
             "_ingested_at": night(day, 4)},  # 500 GB of legacy storage
        ]
        relations.append({"parent": {"value": CRM_SYS_ID, "link": "https://x/api"}, "child": "srv-04",
                          "type": "Depends on::Used by", "_ingested_at": night(day)})
    # vm-07 is in one dump of three and names an application the referential does not know
    cis.append(vm("vm-07", day=three[0], cpus="3", memory="3072", disks_size="30", app="GHOST"))
    # vm-09 is dumped twice in the first night: the second document is a duplicate
    cis.append(vm("vm-09", day=three[0], cpus="4", memory="8192", disks_size="100", app="PAYMENTS", second=9))
    return cis, relations


def fill(cmdb: MongoResource, *months: dt.date) -> None:
    db = cmdb.db()
    for month in months:
        cis, relations = month_documents(month)
        db["cmdb_ci"].insert_many(cis)
        db["cmdb_rel_ci"].insert_many(relations)


# (application, product) → (quantity, unit cost, total cost), March 2025 (rate card RC-2024.1)
EXPECTED_MARCH: dict[tuple[str, str], tuple[Decimal, Decimal, Decimal]] = {
    ("BACKUP", "OL_DISK_GB"): (Decimal("1000.000000"), Decimal("0.085000"), Decimal("85.000000")),
    ("BACKUP", "OL_RAM_GB"): (Decimal("2.000000"), Decimal("4.200000"), Decimal("8.400000")),
    ("BACKUP", "OL_VCPU"): (Decimal("2.000000"), Decimal("18.500000"), Decimal("37.000000")),
    ("BILLING", "OL_DISK_GB"): (Decimal("200.000000"), Decimal("0.085000"), Decimal("17.000000")),
    ("BILLING", "OL_RAM_GB"): (Decimal("16.000000"), Decimal("4.200000"), Decimal("67.200000")),
    ("BILLING", "OL_VCPU"): (Decimal("8.000000"), Decimal("18.500000"), Decimal("148.000000")),
    ("CRM", "OL_DISK_GB"): (Decimal("500.000000"), Decimal("0.085000"), Decimal("42.500000")),
    ("CRM", "OL_LEGACY_STORAGE_GB"): (Decimal("500.000000"), Decimal("0.042000"), Decimal("21.000000")),
    ("CRM", "OL_RAM_GB"): (Decimal("64.000000"), Decimal("4.200000"), Decimal("268.800000")),
    ("CRM", "OL_VCPU"): (Decimal("16.000000"), Decimal("18.500000"), Decimal("296.000000")),
    # vm-01 + vm-02 + vm-09 (vm-08's CPUs are rejected, its RAM and disk count)
    ("PAYMENTS", "OL_DISK_GB"): (Decimal("350.000000"), Decimal("0.085000"), Decimal("29.750000")),
    ("PAYMENTS", "OL_RAM_GB"): (Decimal("28.000000"), Decimal("4.200000"), Decimal("117.600000")),
    ("PAYMENTS", "OL_VCPU"): (Decimal("10.000000"), Decimal("18.500000"), Decimal("185.000000")),
    # vm-06 (3 of 3 dumps) + vm-07 (1 of 3 dumps, unknown application GHOST)
    ("UNALLOCATED", "OL_DISK_GB"): (Decimal("20.000000"), Decimal("0.085000"), Decimal("1.700000")),
    ("UNALLOCATED", "OL_RAM_GB"): (Decimal("2.000000"), Decimal("4.200000"), Decimal("8.400000")),
    ("UNALLOCATED", "OL_VCPU"): (Decimal("2.000000"), Decimal("18.500000"), Decimal("37.000000")),
}
MARCH_TOTAL = Decimal("1370.350000")

# --------------------------------------------------------------------------------------------
# Running the job
# --------------------------------------------------------------------------------------------


SETTINGS = (
    "FINOPS_DOMAINS_ENABLED", "FINOPS_VOLUME_WARN_DEVIATION", "FINOPS_VOLUME_ERROR_DEVIATION",
    "FINOPS_VOLUME_TRAILING_MONTHS", "FINOPS_CMDB_CI_COLLECTION", "FINOPS_CMDB_REL_COLLECTION",
    "FINOPS_CMDB_APPLICATION_CLASS", "FINOPS_CMDB_APPLICATION_FIELD", "FINOPS_CMDB_APPLICATION_CODE_FIELD",
    "FINOPS_CMDB_APPLICATION_GROUP_FIELD",
)


@pytest.fixture(autouse=True)
def _default_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FINOPS_DOMAINS_ENABLED", "open_legacy")


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as test_instance:
        yield test_instance


def run_months(resources: dict[str, Any], instance: DagsterInstance, first: dt.date,
               last: dt.date | None = None) -> ExecuteInProcessResult:
    job = build_definitions(resources).resolve_job_def("finops_nightly")
    return job.execute_in_process(
        instance=instance, raise_on_error=False,
        tags={RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: (last or first).isoformat()},
    )


def checks(result: ExecuteInProcessResult) -> dict[tuple[str, str], Any]:
    return {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}


def check_status(instance: DagsterInstance, asset: str, name: str) -> str:
    """The latest execution's status as the UI resolves it (SUCCEEDED, FAILED, SKIPPED…)."""
    key = AssetCheckKey(AssetKey(asset), name)
    record = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
    if record.status == AssetCheckExecutionRecordStatus.PLANNED:
        run = instance.get_run_by_id(record.run_id)
        assert run is not None and run.is_finished
        return "EXECUTION_FAILED" if run.status == DagsterRunStatus.FAILURE else "SKIPPED"
    return record.status.value


def fact_rows(mart: psycopg.Connection, month: dt.date) -> list[tuple[Any, ...]]:
    """fact_releve of a month without run_id and computed_at, in key order."""
    return mart.execute(
        "SELECT period_month, application_id, product_id, family_id, domain_id, usage_quantity, usage_unit, "
        "unit_cost, total_cost, currency, source, rate_card_version, source_record_count "
        "FROM finops.fact_releve WHERE period_month = %s ORDER BY application_id, product_id", (month,),
    ).fetchall()


def full_fact_rows(mart: psycopg.Connection, month: dt.date) -> list[tuple[Any, ...]]:
    return mart.execute("SELECT * FROM finops.fact_releve WHERE period_month = %s "
                        "ORDER BY application_id, product_id", (month,)).fetchall()


def etl_run(mart: psycopg.Connection, run_id: str) -> dict[str, Any]:
    with mart.cursor(row_factory=psycopg.rows.dict_row) as cur:
        row = cur.execute("SELECT * FROM finops.etl_runs WHERE run_id = %s", (run_id,)).fetchone()
    assert row is not None, f"no etl_runs row for {run_id}"
    return row


@dataclass(frozen=True)
class PublishedMonth:
    mart: psycopg.Connection
    result: ExecuteInProcessResult
    instance: DagsterInstance


@pytest.fixture(scope="module")
def march(server_url: str, template_db: str) -> Iterator[PublishedMonth]:
    """March published once, in a mart of its own, for the tests that only read it."""
    name = f"finops_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template_db)))
    url = database_url(server_url, name)
    cmdb = MongoResource(url=f"mongomock://{uuid.uuid4().hex}")
    fill(cmdb, MARCH)
    postgres = PostgresResource(url=url)
    resources = {"postgres": postgres, "cmdb": cmdb, "run_ledger": RunLedger(postgres=postgres)}
    try:
        with pytest.MonkeyPatch.context() as patch, instance_for_test() as instance, \
                psycopg.connect(url, autocommit=True) as mart:
            for setting in SETTINGS:
                patch.delenv(setting, raising=False)
            patch.setenv("FINOPS_DOMAINS_ENABLED", "open_legacy")
            yield PublishedMonth(mart, run_months(resources, instance, MARCH), instance)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# --------------------------------------------------------------------------------------------
# (a) a month materializes
# --------------------------------------------------------------------------------------------


def test_month_materializes_with_expected_releves_views_and_checks(march: PublishedMonth) -> None:
    mart, result = march.mart, march.result

    assert result.success
    rows = mart.execute(
        "SELECT application_id, product_id, usage_quantity, unit_cost, total_cost, family_id, domain_id, "
        "currency, source, rate_card_version, run_id FROM finops.fact_releve ORDER BY 1, 2").fetchall()
    assert {(r[0], r[1]): (r[2], r[3], r[4]) for r in rows} == EXPECTED_MARCH
    assert len(rows) == len(EXPECTED_MARCH)
    assert {(r[5], r[6], r[7], r[8], r[9], r[10]) for r in rows if r[1] == "OL_VCPU"} == {
        ("OL_COMPUTE", DOMAIN, "EUR", "cmdb", "RC-2024.1", result.run_id)}
    assert mart.execute("SELECT sum(total_cost) FROM finops.fact_releve").fetchone() == (MARCH_TOTAL,)
    assert mart.execute(
        "SELECT source_record_count FROM finops.fact_releve WHERE application_id = 'PAYMENTS' "
        "AND product_id = 'OL_RAM_GB'").fetchone() == (12,)  # vm-01, 02, 08, 09 × 3 dumps

    # the aggregates are maintained by the publish and add up
    assert mart.execute(
        "SELECT period_month, domain_id, currency, total_cost, releve_count, application_count "
        "FROM finops.mv_cost_domain_month").fetchall() == [(MARCH, DOMAIN, "EUR", MARCH_TOTAL, 16, 5)]
    assert mart.execute(
        "SELECT total_cost FROM finops.mv_cost_application_month WHERE application_id = 'CRM'"
    ).fetchone() == (Decimal("628.300000"),)

    evaluations = checks(result)
    view_checks = {key: e for key, e in evaluations.items() if key[1] == "matches_fact_releve"}
    assert len(view_checks) == len(AGGREGATES) - 1  # mv_anomalies_month lists exceptions, not totals
    assert all(e.passed for e in view_checks.values())
    assert evaluations[("open_legacy_releves", "reconciliation")].passed
    # a first month has no history: the volume check is skipped (no evaluation), not passed
    assert ("open_legacy_releves", "volume_anomaly") not in evaluations
    assert check_status(march.instance, "open_legacy_releves", "volume_anomaly") == "SKIPPED"

    run = etl_run(mart, result.run_id)
    assert (run["status"], run["trigger_type"], run["periods"]) == ("SUCCESS", "MANUAL", ["2025-03-01"])
    assert (run["records_inserted"], run["errors_count"], run["error_summary"]) == (16, 0, None)
    assert run["records_rejected"] == 5
    assert run["ended_at"] is not None


# --------------------------------------------------------------------------------------------
# (b) idempotence
# --------------------------------------------------------------------------------------------


def test_same_month_twice_gives_identical_releves(
    resources: dict[str, Any], mart: psycopg.Connection, instance: DagsterInstance
) -> None:
    fill(resources["cmdb"], MARCH, APRIL)

    first = run_months(resources, instance, MARCH, APRIL)
    assert first.success
    after_first = {month: fact_rows(mart, month) for month in (MARCH, APRIL)}
    rejects_query = ("SELECT period_month, source_ref, reason, usage_unit, usage_quantity, raw_payload "
                     "FROM finops.releve_reject ORDER BY 1, 2, 3, 4, 5")
    rejects_first = mart.execute(rejects_query).fetchall()

    second = run_months(resources, instance, MARCH, APRIL)
    assert second.success

    assert {month: fact_rows(mart, month) for month in (MARCH, APRIL)} == after_first
    assert len(after_first[MARCH]) == 16
    assert [row[1:] for row in after_first[APRIL]] == [row[1:] for row in after_first[MARCH]]
    assert mart.execute("SELECT DISTINCT run_id FROM finops.fact_releve").fetchall() == [(second.run_id,)]
    # superseded staging and rejects are discarded: the mart holds exactly one run's rejects
    assert mart.execute(rejects_query).fetchall() == rejects_first
    assert mart.execute("SELECT DISTINCT run_id FROM finops.releve_reject").fetchall() == [(second.run_id,)]
    assert mart.execute("SELECT DISTINCT run_id FROM finops.open_legacy_releves").fetchall() == [
        (second.run_id,)]
    assert [etl_run(mart, r.run_id)["status"] for r in (first, second)] == ["SUCCESS", "SUCCESS"]


# --------------------------------------------------------------------------------------------
# (c) nothing lost
# --------------------------------------------------------------------------------------------


def test_nothing_lost_per_unit_and_unallocated_bucket(march: PublishedMonth) -> None:
    mart, result = march.mart, march.result
    assert result.success

    load = mart.execute("SELECT source_totals, source_record_count, releve_count, reject_count, details "
                        "FROM finops.domain_load WHERE run_id = %s AND period_month = %s",
                        (result.run_id, MARCH)).fetchone()
    assert load is not None
    source_totals, documents, releve_count, reject_count, details = load
    # 118/3 vCPU-month: 38 allocated + vm-09's duplicate 4/3; GB: 2682 allocated + (8 + 100)/3 duplicate
    assert {unit: Decimal(q) for unit, q in source_totals.items()} == {
        "vCPU-month": Decimal("39.333333"), "GB-month": Decimal("2718.000000")}
    assert (documents, releve_count, reject_count) == (32, 16, 5)
    fact = dict(mart.execute("SELECT usage_unit, sum(usage_quantity) FROM finops.fact_releve "
                             "GROUP BY 1").fetchall())
    rejected = dict(mart.execute(
        "SELECT usage_unit, sum(usage_quantity) FROM finops.releve_reject WHERE usage_unit IS NOT NULL "
        "GROUP BY 1").fetchall())
    assert fact == {"vCPU-month": Decimal("38.000000"), "GB-month": Decimal("2682.000000")}
    assert rejected == {"vCPU-month": Decimal("1.333333"), "GB-month": Decimal("36.000000")}
    for unit, total in source_totals.items():
        assert Decimal(total) == fact[unit] + rejected[unit], unit

    # every reject says why
    reasons = sorted(r[0] for r in mart.execute("SELECT reason FROM finops.releve_reject").fetchall())
    assert reasons[0] == "cpus: not a number ('n/a') in 3 document(s)"
    assert sum("duplicate sys_id within a dump" in reason for reason in reasons) == 3
    assert sum(reason.startswith("unknown CI class 'cmdb_ci_printer'") for reason in reasons) == 1
    assert details["unknown_application_refs"] == 1
    assert details["unknown_application_examples"] == ["GHOST"]
    assert details["resolved_by_unallocated"] == 3  # vm-06, vm-07 and the printer

    # costs that cannot be tied to an application are on UNALLOCATED, never dropped
    unallocated = mart.execute("SELECT product_id, usage_quantity FROM finops.fact_releve "
                               "WHERE application_id = 'UNALLOCATED' ORDER BY 1").fetchall()
    assert unallocated == [("OL_DISK_GB", Decimal("20.000000")), ("OL_RAM_GB", Decimal("2.000000")),
                           ("OL_VCPU", Decimal("2.000000"))]
    assert mart.execute("SELECT group_id FROM finops.dim_application WHERE application_id = 'UNALLOCATED'"
                        ).fetchone() == ("UNALLOCATED",)
    balances = unit_balances(mart, DOMAIN, result.run_id)
    assert [(b.unit, b.difference, b.balanced) for b in balances] == [
        ("GB-month", Decimal("0E-6"), True), ("vCPU-month", Decimal("0E-6"), True)]


# --------------------------------------------------------------------------------------------
# (d) strict policy
# --------------------------------------------------------------------------------------------


UNREACHABLE_MONGO = "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=500"


class CmdbGoneAfterApplications(MongoResource):
    """The CMDB answers the applications step, then is gone when the domain step connects."""

    reachable_calls: int = 1
    _calls: ClassVar[dict[str, int]] = {}

    def db(self) -> Any:
        calls = self._calls[self.url] = self._calls.get(self.url, 0) + 1
        if calls <= self.reachable_calls:
            return super().db()
        return MongoResource(url=UNREACHABLE_MONGO, timeout_ms=500).db()


def assert_strict_failure(mart: psycopg.Connection, result: ExecuteInProcessResult,
                          published: dict[dt.date, list[tuple[Any, ...]]]) -> None:
    assert not result.success
    assert not result.is_node_success("open_legacy_releves")
    assert not result.is_node_success("fact_releve")
    assert result.asset_materializations_for_node("fact_releve") == []
    assert result.asset_materializations_for_node("materialized_views") == []
    for month, rows in published.items():
        assert full_fact_rows(mart, month) == rows  # previous data untouched, run id and all
    assert mart.execute("SELECT count(*) FROM finops.domain_load WHERE run_id = %s",
                        (result.run_id,)).fetchone() == (0,)

    run = etl_run(mart, result.run_id)
    assert (run["status"], run["errors_count"], run["records_inserted"]) == ("FAILED", 1, 0)
    assert run["ended_at"] is not None
    summary = run["error_summary"]
    assert "MongoDB 127.0.0.1:1 (database cmdb_raw) is unreachable (ServerSelectionTimeoutError); " \
           "check MONGO_URL" in summary
    assert "Traceback" not in summary and len(summary) <= 500


def test_failed_cmdb_publishes_nothing_and_is_recorded(
    resources: dict[str, Any], mart: psycopg.Connection, instance: DagsterInstance
) -> None:
    fill(resources["cmdb"], MARCH, APRIL)
    assert run_months(resources, instance, MARCH, APRIL).success
    published = {month: full_fact_rows(mart, month) for month in (MARCH, APRIL)}
    assert [len(rows) for rows in published.values()] == [16, 16]
    resources["cmdb"].db()["cmdb_ci"].delete_many({"sys_id": "vm-03"})  # a new run would change both months

    # 1. the CMDB is unreachable: the application referential is the first step to need it;
    #    the domain never runs
    unreachable = MongoResource(url=UNREACHABLE_MONGO, timeout_ms=500)
    result = run_months({**resources, "cmdb": unreachable}, instance, MARCH, APRIL)

    assert set(result.get_failed_step_keys()) == {"applications"}
    assert_strict_failure(mart, result, published)
    assert etl_run(mart, result.run_id)["error_summary"].startswith("applications: ")

    # 2. the CMDB answers the referential, then is gone when the domain step reads it
    flaky = CmdbGoneAfterApplications(url=resources["cmdb"].url)
    result = run_months({**resources, "cmdb": flaky}, instance, MARCH, APRIL)

    assert result.is_node_success("applications")
    assert set(result.get_failed_step_keys()) == {"open_legacy_releves"}
    assert_strict_failure(mart, result, published)
    assert etl_run(mart, result.run_id)["error_summary"].startswith("open_legacy_releves: ")


# --------------------------------------------------------------------------------------------
# (e) volume anomalies
# --------------------------------------------------------------------------------------------


def test_volume_error_blocks_publish_and_warning_publishes(
    resources: dict[str, Any], mart: psycopg.Connection, instance: DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fill(resources["cmdb"], MARCH, APRIL)
    assert run_months(resources, instance, MARCH, APRIL).success
    april_before = full_fact_rows(mart, APRIL)
    assert mart.execute("SELECT sum(total_cost) FROM finops.fact_releve WHERE period_month = %s",
                        (APRIL,)).fetchone() == (MARCH_TOTAL,)

    # CRM's server and storage and the backup VM leave April's dumps: cost -55 %, relevés -44 %
    gone = ["srv-04", "vol-11", "vm-05"]
    deleted = resources["cmdb"].db()["cmdb_ci"].delete_many(
        {"sys_id": {"$in": gone}, "_ingested_at": {"$gte": night(APRIL)}})
    assert deleted.deleted_count == 9

    blocked = run_months(resources, instance, APRIL)

    volume = checks(blocked)[("open_legacy_releves", "volume_anomaly")]
    assert not volume.passed
    assert volume.severity == AssetCheckSeverity.ERROR
    assert "2025-04 total_cost 55% from trailing average (ERROR)" in volume.description
    assert volume.metadata["total_cost_deviation_pct"].value == 55.37  # |611.65 − 1370.35| / 1370.35
    assert volume.metadata["releves_deviation_pct"].value == 43.75  # |9 − 16| / 16
    assert "error_deviation" not in volume.metadata
    assert not blocked.is_node_success("fact_releve")
    assert blocked.asset_materializations_for_node("fact_releve") == []
    assert full_fact_rows(mart, APRIL) == april_before
    run = etl_run(mart, blocked.run_id)
    assert run["status"] == "FAILED"
    assert run["error_summary"].startswith(
        "open_legacy_releves_volume_anomaly: blocking check failed: open_legacy_releves volume_anomaly: "
        "2025-04 total_cost 55% from trailing average (ERROR)")

    # the same drop under a higher error threshold is only a warning: published, and said so
    monkeypatch.setenv("FINOPS_VOLUME_ERROR_DEVIATION", "0.9")
    warned = run_months(resources, instance, APRIL)

    assert warned.success
    volume = checks(warned)[("open_legacy_releves", "volume_anomaly")]
    assert not volume.passed
    assert volume.severity == AssetCheckSeverity.WARN
    assert "(WARN)" in volume.description and "(ERROR)" not in volume.description
    assert mart.execute("SELECT count(*), sum(total_cost) FROM finops.fact_releve WHERE period_month = %s",
                        (APRIL,)).fetchone() == (9, Decimal("611.650000"))
    assert mart.execute("SELECT DISTINCT run_id FROM finops.fact_releve WHERE period_month = %s",
                        (APRIL,)).fetchall() == [(warned.run_id,)]
    assert etl_run(mart, warned.run_id)["status"] == "SUCCESS"
    # March was not part of these runs: untouched
    assert mart.execute("SELECT sum(total_cost) FROM finops.fact_releve WHERE period_month = %s",
                        (MARCH,)).fetchone() == (MARCH_TOTAL,)


# --------------------------------------------------------------------------------------------
# (f) reconciliation failures are detected
# --------------------------------------------------------------------------------------------


def test_unit_balances_detect_a_tampered_staged_row(march: PublishedMonth) -> None:
    mart, run_id = march.mart, march.result.run_id
    assert all(b.balanced for b in unit_balances(mart, DOMAIN, run_id))

    with mart.transaction():  # rolled back: the published month stays as it was for the other tests
        mart.execute("UPDATE finops.open_legacy_releves SET usage_quantity = usage_quantity - 0.5 "
                     "WHERE run_id = %s AND application_id = 'BILLING' AND product_id = 'OL_VCPU'", (run_id,))
        balances = {b.unit: b for b in unit_balances(mart, DOMAIN, run_id)}
        assert not balances["vCPU-month"].balanced
        assert balances["vCPU-month"].difference == Decimal("0.500000")
        assert balances["GB-month"].balanced
        # within the tolerance (half a unit of the sixth decimal per row) a rounding is not a loss
        mart.execute("UPDATE finops.open_legacy_releves SET usage_quantity = usage_quantity + 0.5 "
                     "WHERE run_id = %s AND application_id = 'BILLING' AND product_id = 'OL_VCPU'", (run_id,))
        mart.execute("UPDATE finops.domain_load SET source_totals = jsonb_set(source_totals, '{vCPU-month}', "
                     "to_jsonb((source_totals->>'vCPU-month')::numeric + 0.0000005)) WHERE run_id = %s",
                     (run_id,))
        assert all(b.balanced for b in unit_balances(mart, DOMAIN, run_id))
        raise psycopg.Rollback()
    assert all(b.balanced for b in unit_balances(mart, DOMAIN, run_id))


def test_reconciliation_check_fails_and_blocks_publish_when_a_load_loses_quantity(
    resources: dict[str, Any], mart: psycopg.Connection, instance: DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A domain that loses quantity between reading and staging is caught by the blocking check."""
    fill(resources["cmdb"], MARCH)

    def lossy_stage(conn: psycopg.Connection, load: DomainLoad, run_id: str) -> Any:
        staged = stage_domain_load(conn, load, run_id)
        conn.execute("UPDATE finops.open_legacy_releves SET usage_quantity = usage_quantity - 1 "
                     "WHERE run_id = %s AND application_id = 'CRM' AND product_id = 'OL_RAM_GB'", (run_id,))
        conn.commit()
        return staged

    monkeypatch.setattr(month_loader, "stage_domain_load", lossy_stage)
    result = run_months(resources, instance, MARCH)

    reconciliation = checks(result)[("open_legacy_releves", "reconciliation")]
    assert not reconciliation.passed
    assert reconciliation.severity == AssetCheckSeverity.ERROR
    assert reconciliation.description == (
        "1 month/unit pair(s) do not add up: 2025-03 GB-month off by 1.000000")
    assert not result.success
    assert result.asset_materializations_for_node("fact_releve") == []
    assert mart.execute("SELECT count(*) FROM finops.fact_releve").fetchone() == (0,)
    run = etl_run(mart, result.run_id)
    assert (run["status"], run["error_summary"]) == (
        "FAILED", "open_legacy_releves_reconciliation: blocking check failed: open_legacy_releves "
        "reconciliation: 1 month/unit pair(s) do not add up: 2025-03 GB-month off by 1.000000")


# --------------------------------------------------------------------------------------------
# (g) unreachable PostgreSQL
# --------------------------------------------------------------------------------------------

SENTINEL = "s3cr3t-sentinel"


@pytest.mark.parametrize("url", ["postgresql://finops@127.0.0.1:1/finops",
                                 f"postgresql://finops:{SENTINEL}@127.0.0.1:1/finops"])
def test_unreachable_postgres_is_named_without_password(url: str) -> None:
    postgres = PostgresResource(url=url, password=SENTINEL, connect_timeout_s=2)

    with pytest.raises(MartUnavailable) as caught, postgres.connect():
        pass

    message = str(caught.value)
    assert message.startswith("PostgreSQL 127.0.0.1:1/finops is unreachable: ")
    assert SENTINEL not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_unreachable_postgres_fails_the_run_without_leaking_the_password(
    cmdb: MongoResource, instance: DagsterInstance
) -> None:
    postgres = PostgresResource(url="postgresql://finops@127.0.0.1:1/finops", password=SENTINEL,
                                connect_timeout_s=2)
    resources = {"postgres": postgres, "cmdb": cmdb, "run_ledger": RunLedger(postgres=postgres)}

    result = run_months(resources, instance, MARCH)

    assert not result.success
    texts = [str(event.message or "") + json.dumps(str(event.event_specific_data))
             for event in result.all_events]
    assert any("PostgreSQL 127.0.0.1:1/finops is unreachable" in text for text in texts)
    assert not any(SENTINEL in text for text in texts)
    for record in instance.all_logs(result.run_id):
        assert SENTINEL not in (record.user_message or "")
        assert SENTINEL not in str(record.dagster_event)


# --------------------------------------------------------------------------------------------
# (h) the CLI path
# --------------------------------------------------------------------------------------------


def test_cli_asset_materialize_records_a_manual_run_and_is_idempotent(
    mart_url: str, mart: psycopg.Connection, tmp_path: Path
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("")
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("FINOPS_", "POSTGRES_", "MONGO_", "DAGSTER_"))}
    env.update(POSTGRES_URL=mart_url, MONGO_URL="demo://?cis=200&months=2&today=2026-11-22",
               DAGSTER_HOME=str(home), FINOPS_DOMAINS_ENABLED="open_legacy")
    dagster = Path(sys.executable).with_name("dagster")
    command = [str(dagster), "asset", "materialize", "-m", "finops_dagster.definitions",
               "--select", "*open_legacy_releves*", "--partition", "2026-10-01"]
    october = dt.date(2026, 10, 1)

    outputs = []
    for _ in range(2):
        done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "RUN_SUCCESS" in done.stderr + done.stdout
        outputs.append(fact_rows(mart, october))

    runs = mart.execute("SELECT status, trigger_type, periods, records_inserted, error_summary "
                        "FROM finops.etl_runs ORDER BY started_at").fetchall()
    assert len(runs) == 2
    for status, trigger, periods, inserted, summary in runs:
        assert (status, trigger, periods, summary) == ("SUCCESS", "MANUAL", ["2026-10-01"], None)
        assert inserted == len(outputs[0])
    assert len(outputs[0]) > 50
    assert outputs[0] == outputs[1]
    assert mart.execute("SELECT count(*) FROM finops.fact_releve WHERE period_month <> %s",
                        (october,)).fetchone() == (0,)
    assert mart.execute("SELECT count(DISTINCT run_id) FROM finops.fact_releve").fetchone() == (1,)
    assert mart.execute("SELECT count(*) FROM finops.mv_cost_domain_month").fetchone() == (1,)


def test_cli_partition_range_materializes_both_months_in_one_run(
    mart_url: str, mart: psycopg.Connection, tmp_path: Path
) -> None:
    """Every asset the selection reaches (reference data, applications, the domain, the publish and
    the views) has a single-run backfill policy, so the CLI runs a range of months as one run."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("")
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("FINOPS_", "POSTGRES_", "MONGO_", "DAGSTER_"))}
    env.update(POSTGRES_URL=mart_url, MONGO_URL="demo://?cis=200&months=2&today=2026-10-20",
               DAGSTER_HOME=str(home), FINOPS_DOMAINS_ENABLED="open_legacy")
    dagster = Path(sys.executable).with_name("dagster")
    command = [str(dagster), "asset", "materialize", "-m", "finops_dagster.definitions",
               "--select", "*fact_releve*", "--partition-range", "2026-09-01...2026-10-01"]

    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)

    assert done.returncode == 0, done.stderr[-3000:]
    assert "RUN_SUCCESS" in done.stderr + done.stdout
    september, october = dt.date(2026, 9, 1), dt.date(2026, 10, 1)
    assert len(fact_rows(mart, september)) > 50
    assert len(fact_rows(mart, october)) > 50
    runs = mart.execute("SELECT status, trigger_type, periods FROM finops.etl_runs").fetchall()
    assert runs == [("SUCCESS", "MANUAL", ["2026-09-01", "2026-10-01"])]
    assert mart.execute("SELECT count(DISTINCT run_id) FROM finops.fact_releve").fetchone() == (1,)
    published = mart.execute(
        "SELECT period_month FROM finops.domain_load WHERE published_at IS NOT NULL ORDER BY 1").fetchall()
    assert published == [(september,), (october,)]
    views = mart.execute("SELECT count(DISTINCT period_month) FROM finops.mv_cost_domain_month").fetchone()
    assert views == (2,)


# --------------------------------------------------------------------------------------------
# months without any dump
# --------------------------------------------------------------------------------------------


def test_a_past_month_without_dumps_fails_instead_of_publishing_zero(
    resources: dict[str, Any], mart: psycopg.Connection, instance: DagsterInstance
) -> None:
    fill(resources["cmdb"], MARCH)
    result = run_months(resources, instance, MARCH, APRIL)  # April has no dump at all

    assert set(result.get_failed_step_keys()) == {"open_legacy_releves"}
    assert result.asset_materializations_for_node("fact_releve") == []
    assert mart.execute("SELECT count(*) FROM finops.fact_releve").fetchone() == (0,)
    summary = etl_run(mart, result.run_id)["error_summary"]
    assert "holds no CMDB dump ingested in 2025-04: the month cannot be computed" in summary


def test_the_current_month_before_its_first_dump_publishes_empty_and_skips_the_volume_check(
    resources: dict[str, Any], mart: psycopg.Connection, instance: DagsterInstance,
    caplog: pytest.LogCaptureFixture,
) -> None:
    current = month_start(dt.datetime.now(dt.UTC))
    previous = month_start(current - dt.timedelta(days=1))
    fill(resources["cmdb"], previous)
    assert run_months(resources, instance, previous).success

    result = run_months(resources, instance, previous, current)

    assert result.success
    assert ("open_legacy_releves", "volume_anomaly") not in checks(result)
    assert check_status(instance, "open_legacy_releves", "volume_anomaly") == "SKIPPED"
    said = [e.message for e in instance.all_logs(result.run_id) if "volume_anomaly skipped" in e.message]
    assert said == [f"volume_anomaly skipped, no month to compare: {previous:%Y-%m} (no published history), "
                    f"{current:%Y-%m} (month in progress)"]
    assert not [r for r in caplog.records if "emitted no result" in r.getMessage()]
    loads = dict(mart.execute(
        "SELECT period_month, releve_count FROM finops.domain_load WHERE run_id = %s", (result.run_id,)
    ).fetchall())
    assert loads[current] == 0 and loads[previous] == 16
    assert etl_run(mart, result.run_id)["status"] == "SUCCESS"


def test_unreachable_mongodb_with_credentials_is_named_without_them(
    resources: dict[str, Any], mart: psycopg.Connection, instance: DagsterInstance,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "m0ngo-s3cret-sentinel"
    cmdb = MongoResource(url=f"mongodb://finops:{secret}@127.0.0.1:1/?authSource=admin", timeout_ms=300)
    result = run_months({**resources, "cmdb": cmdb}, instance, MARCH)

    assert not result.success
    summary = etl_run(mart, result.run_id)["error_summary"]
    assert "MongoDB 127.0.0.1:1 (database cmdb_raw) is unreachable" in summary
    events = "\n".join(str(event) for event in instance.all_logs(result.run_id))
    json_log = "\n".join(JsonFormatter().format(record) for record in caplog.records)
    for text in (summary, events, caplog.text, json_log):
        assert secret not in text
