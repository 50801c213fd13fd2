"""private_cloud's record ledger: every Nova tenant entry and usage-API item a page held ends in a
relevé's count or a reject, and a parser that drops or duplicates one fails the blocking check.

The simulated private cloud serves its estate plus malformed entries; the ledger the test expects is
counted here from the simulator's own bodies (a Nova tenant entry is three records, one per product
it measures: vCPU, RAM, local disk; a usage-API item is one).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

import finops_dagster.domains.private_cloud.openstack as openstack_client
from finops_dagster.demo.estate import Estate, build_estate
from finops_dagster.demo.private_cloud import PrivateCloudSimulator, Tenant, private_cloud_tenants
from finops_dagster.domains.private_cloud.usage_api import UsageApi
from finops_dagster.releve import next_month
from finops_dagster_tests.domains.private_cloud.test_assets import SOURCE_SETTINGS, TODAY, Pipeline
from finops_dagster_tests.support.domain_runs import check_evaluations, failures, open_domain_run

SEPTEMBER = dt.date(2025, 9, 1)
NOVA_RECORDS_PER_ENTRY = 3
BAD_NOVA_ENTRIES = [{"tenant_id": "broken-tenant", "start": "2025-09-01T00:00:00"}, "not an entry"]
BAD_USAGE_ITEMS: list[Any] = [
    {"tenant": "tenant-bad-quantity", "metric": "vcpu_hours", "unit": "vCPU-hour", "quantity": "a lot"},
    {"tenant": "tenant-gpu", "metric": "gpu_hours", "unit": "GPU-hour", "quantity": "3"},
    42,
]


class MalformedEntries(PrivateCloudSimulator):
    """The estate's usage, plus Nova entries and usage-API items no parser can use."""

    def nova_usage(self, start: dt.datetime, end: dt.datetime, **kwargs: Any) -> dict[str, Any]:
        body = super().nova_usage(start, end, **kwargs)
        body["tenant_usages"] = [*body["tenant_usages"], *BAD_NOVA_ENTRIES]
        return body

    def usage_items(self, period: str) -> list[dict[str, Any]]:
        return [*super().usage_items(period), *BAD_USAGE_ITEMS]


@pytest.fixture(scope="module")
def estate() -> Estate:
    return build_estate(applications=20)


@pytest.fixture(scope="module")
def tenants(estate: Estate) -> list[Tenant]:
    return private_cloud_tenants(estate, tenants=12)


@pytest.fixture
def pipeline(
    monkeypatch: pytest.MonkeyPatch, resources: dict[str, Any], mart: psycopg.Connection, estate: Estate
) -> Iterator[Pipeline]:
    with open_domain_run(Pipeline, domain="private_cloud", source_settings=SOURCE_SETTINGS, estate=estate,
                         day=TODAY, monkeypatch=monkeypatch, resources=resources, mart=mart) as pipeline:
        yield pipeline


def expected_ledger(simulator: PrivateCloudSimulator, month: dt.date) -> dict[str, int]:
    """What the pages hold, from the simulator's bodies (one Nova page holds this small estate)."""
    start = dt.datetime.combine(month, dt.time(), tzinfo=dt.UTC)
    end = min(dt.datetime.combine(next_month(month), dt.time(), tzinfo=dt.UTC), simulator.now)
    nova = simulator.nova_usage(start, end, detailed=True)["tenant_usages"]
    items = simulator.usage_items(f"{month:%Y-%m}")
    return {"openstack": NOVA_RECORDS_PER_ENTRY * len(nova), "usage_api": len(items)}


def records_by_source(mart: psycopg.Connection, run_id: str) -> dict[str, tuple[int, int]]:
    rows = mart.execute(
        """
        SELECT source, coalesce(sum(n) FILTER (WHERE kind = 'releve'), 0),
               coalesce(sum(n) FILTER (WHERE kind = 'reject'), 0)
        FROM (SELECT source, source_record_count AS n, 'releve' AS kind FROM finops.private_cloud_releves
              WHERE run_id = %(run)s
              UNION ALL
              SELECT source, source_record_count, 'reject' FROM finops.releve_reject
              WHERE run_id = %(run)s) AS r
        GROUP BY source
        """,
        {"run": run_id},
    ).fetchall()
    return {source: (int(releves), int(rejects)) for source, releves, rejects in rows}


def test_every_entry_read_is_in_a_releve_or_a_reject(pipeline: Pipeline, tenants: list[Tenant]) -> None:
    simulator = MalformedEntries(tenants, today=TODAY)
    pipeline.start(simulator)

    result = pipeline.run(SEPTEMBER)

    assert result.success, failures(result)
    assert check_evaluations(result)[("private_cloud_releves", "reconciliation")].passed
    expected = expected_ledger(simulator, SEPTEMBER)
    assert expected["openstack"] == NOVA_RECORDS_PER_ENTRY * (len(tenants) + len(BAD_NOVA_ENTRIES))
    (ledger,) = pipeline.mart.execute(
        "SELECT details -> 'record_ledger' FROM finops.domain_load WHERE run_id = %s", (result.run_id,)
    ).fetchone()
    assert ledger == expected
    found = records_by_source(pipeline.mart, result.run_id)
    for source, records in expected.items():
        assert sum(found[source]) == records
    rejects = pipeline.mart.execute(
        "SELECT source, source_ref, reason, source_record_count FROM finops.releve_reject "
        "WHERE run_id = %s AND source <> 'opencost' ORDER BY 1, 2", (result.run_id,)).fetchall()
    assert [(source, count) for source, _, _, count in rejects] == [
        ("openstack", 3), ("openstack", 3), ("usage_api", 1), ("usage_api", 1), ("usage_api", 1)]
    reasons = {ref: reason for _, ref, reason, _ in rejects}
    assert reasons["broken-tenant"].startswith("total_vcpus_usage: missing")
    assert reasons[f"tenant_usages[{len(tenants) + 1}]"] == "tenant usage entry is not an object (str)"
    assert any(reason.startswith("unknown metric 'gpu_hours'") for reason in reasons.values())
    assert any(reason == "quantity is not a number ('a lot')" for reason in reasons.values())


def _drop_last_entry(parse: Any) -> Any:
    def parse_all_but_one(body: Any) -> Any:
        return parse({**body, "tenant_usages": body["tenant_usages"][:-1]})

    return parse_all_but_one


def test_a_parser_that_drops_an_entry_fails_the_blocking_reconciliation(
    pipeline: Pipeline, tenants: list[Tenant], monkeypatch: pytest.MonkeyPatch
) -> None:
    simulator = MalformedEntries(tenants, today=TODAY)
    pipeline.start(simulator)
    dropping = _drop_last_entry(openstack_client.parse_tenant_usages)
    monkeypatch.setattr(openstack_client, "parse_tenant_usages", dropping)

    result = pipeline.run(SEPTEMBER)

    reconciliation = check_evaluations(result)[("private_cloud_releves", "reconciliation")]
    records = expected_ledger(simulator, SEPTEMBER)["openstack"]
    assert not reconciliation.passed
    assert reconciliation.description == (
        f"2025-09 private_cloud openstack: {records} records in the source, {records - 6} in relevés "
        "+ 3 in rejects (3 unaccounted for)")
    assert not result.success
    assert pipeline.mart.execute("SELECT count(*) FROM finops.fact_releve").fetchone() == (0,)


def test_a_reader_that_duplicates_an_item_fails_the_blocking_reconciliation(
    pipeline: Pipeline, tenants: list[Tenant], monkeypatch: pytest.MonkeyPatch
) -> None:
    simulator = MalformedEntries(tenants, today=TODAY)
    pipeline.start(simulator)
    original = UsageApi.metered

    def metered_twice_first(self: UsageApi, month: dt.date) -> Iterator[Any]:
        items = list(original(self, month))
        yield from [items[0], *items]

    monkeypatch.setattr(UsageApi, "metered", metered_twice_first)

    result = pipeline.run(SEPTEMBER)

    reconciliation = check_evaluations(result)[("private_cloud_releves", "reconciliation")]
    records = expected_ledger(simulator, SEPTEMBER)["usage_api"]
    assert not reconciliation.passed
    assert reconciliation.description.startswith(
        f"2025-09 private_cloud usage_api: {records} records in the source, ")
    assert reconciliation.description.endswith("+ 3 in rejects (1 counted twice or invented)")
    assert not result.success
