"""The private_cloud domain end to end: real sockets, a real mart, real Dagster runs.

The simulated private cloud (finops_dagster/demo/private_cloud.py) serves Keystone + Nova, OpenCost
and the in-house usage API over HTTP for a small estate; each test runs the `finops_nightly` job in
process against a PostgreSQL database of its own. Expected relevés are recomputed here from the
simulator's own bodies and quantities and the rate card's prices, not with the pipeline's code.

The private_cloud asset's clock (`utc_now`) is set to the simulator's, so "the last 14 days" of
OpenCost and "the current month" mean the same day on both sides of the socket.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections import Counter, defaultdict
from collections.abc import Iterator
from decimal import Decimal, localcontext
from typing import Any

import httpx
import psycopg
import pytest
from pytest_httpserver import HTTPServer

import finops_dagster.demo.private_cloud as private_cloud_demo
import finops_dagster.domains.private_cloud.assets as private_cloud_asset
from finops_dagster.demo.estate import Estate, build_estate
from finops_dagster.demo.private_cloud import (
    IDLE_KEY,
    UNALLOCATED_KEY,
    Credentials,
    PrivateCloudSimulator,
    RunningServer,
    Tenant,
    private_cloud_tenants,
    serve,
)
from finops_dagster.domains.private_cloud.openstack import KeystoneToken, OpenStackUsage
from finops_dagster.domains.private_cloud.resource import private_cloud_from_env
from finops_dagster.domains.private_cloud.usage_api import UsageApi
from finops_dagster.http.auth import OidcClientCredentials
from finops_dagster.pipeline import build_definitions
from finops_dagster.releve import next_month
from finops_dagster.settings import SettingError
from finops_dagster_tests.support.domain_runs import (
    SHARED_SOURCE_SETTINGS,
    SIX_DECIMALS,
    UNALLOCATED,
    DomainRun,
    Key,
    assert_no_secret,
    check_evaluations,
    domain_loads,
    etl_run,
    fact_rows,
    fact_run_ids,
    failures,
    open_domain_run,
    priced,
    record_issued_tokens,
    releves,
)

TODAY = dt.date(2025, 10, 10)
"""The simulators' day (past, so its months are partitions whatever the real date): OpenCost still
shows 26 September - 9 October, Nova measures up to 10 October."""
LATER = TODAY + dt.timedelta(days=40)
SEPTEMBER = dt.date(2025, 9, 1)  # complete
OCTOBER = dt.date(2025, 10, 1)  # the simulator's current month, measured up to yesterday
OPENCOST_DAYS = 14
DOMAIN = "private_cloud"
GIB = Decimal(1024**3)
MIB_PER_GIB = Decimal(1024)

# reference/data/rate_cards.csv (RC-2024.1, EUR) and products.csv, written out independently
RATES: dict[str, Decimal] = {
    "PC_VCPU_HOUR": Decimal("0.0240"),
    "PC_RAM_GIB_HOUR": Decimal("0.0052"),
    "PC_LOCAL_DISK_GIB_HOUR": Decimal("0.00011"),
    "PC_BLOCK_STORAGE_GIB_MONTH": Decimal("0.070"),
    "PC_K8S_CPU_CORE_HOUR": Decimal("0.0310"),
    "PC_K8S_RAM_GIB_HOUR": Decimal("0.0041"),
    "PC_K8S_PV_GIB_HOUR": Decimal("0.00013"),
}
FAMILIES: dict[str, str] = {
    "PC_VCPU_HOUR": "PC_COMPUTE",
    "PC_RAM_GIB_HOUR": "PC_COMPUTE",
    "PC_LOCAL_DISK_GIB_HOUR": "PC_STORAGE",
    "PC_BLOCK_STORAGE_GIB_MONTH": "PC_STORAGE",
    "PC_K8S_CPU_CORE_HOUR": "PC_CONTAINERS",
    "PC_K8S_RAM_GIB_HOUR": "PC_CONTAINERS",
    "PC_K8S_PV_GIB_HOUR": "PC_CONTAINERS",
}
USAGE_API_PRODUCTS = {  # usage_api_metrics.csv, factor 1
    "vcpu_hours": "PC_VCPU_HOUR",
    "ram_gib_hours": "PC_RAM_GIB_HOUR",
    "block_storage_gib_month": "PC_BLOCK_STORAGE_GIB_MONTH",
}
SOURCE_SETTINGS = (
    "FINOPS_OPENSTACK_", "FINOPS_OPENCOST_", "FINOPS_USAGE_API_", "FINOPS_PRIVATE_CLOUD_",
    *SHARED_SOURCE_SETTINGS,
)
DAILY_COLUMNS = "source, day, allocation_key, cpu_core_hours, ram_byte_hours, pv_byte_hours, properties"


# --------------------------------------------------------------------------------------------
# The estate, the pipeline harness
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def estate() -> Estate:
    return build_estate(applications=40)


@pytest.fixture(scope="module")
def tenants(estate: Estate) -> list[Tenant]:
    return private_cloud_tenants(estate, tenants=30)


class Pipeline(DomainRun):
    """The nightly job against this test's mart, pointed at a simulated private cloud."""

    asset_nodes = ("private_cloud_releves", "fact_releve")

    def domain_resources(self) -> dict[str, Any]:
        return {"private_cloud": private_cloud_from_env()}

    def start(self, simulator: PrivateCloudSimulator) -> RunningServer:
        """Serve the simulator and point the sources and the asset's clock at it."""
        return self.serve(serve(simulator), private_cloud_asset, lambda: simulator.now)


@pytest.fixture
def pipeline(
    monkeypatch: pytest.MonkeyPatch, resources: dict[str, Any], mart: psycopg.Connection, estate: Estate
) -> Iterator[Pipeline]:
    with open_domain_run(Pipeline, domain=DOMAIN, source_settings=SOURCE_SETTINGS, estate=estate, day=TODAY,
                         monkeypatch=monkeypatch, resources=resources, mart=mart) as pipeline:
        yield pipeline


# --------------------------------------------------------------------------------------------
# What the simulator says, and the relevés that follow from it
# --------------------------------------------------------------------------------------------


def midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def owner(tenant: Tenant | None) -> str:
    """The application a tenant's usage belongs to: the simulator's truth, or unallocated."""
    return tenant.application if tenant is not None and tenant.application else UNALLOCATED


def measured_hours(simulator: PrivateCloudSimulator, month: dt.date) -> Decimal:
    end = min(midnight(next_month(month)), simulator.now)
    return Decimal(int((end - midnight(month)).total_seconds()) // 3600)


def nova_tenant_usages(simulator: PrivateCloudSimulator, month: dt.date) -> list[dict[str, Any]]:
    """The simulator's Nova answer for the month (one page holds this small estate)."""
    end = min(midnight(next_month(month)), simulator.now)
    body = simulator.nova_usage(midnight(month), end, detailed=True)
    assert "tenant_usages_links" not in body
    return list(body["tenant_usages"])


def opencost_days(simulator: PrivateCloudSimulator, month: dt.date) -> tuple[dt.date, dt.date]:
    """[first, end) of the month's days the simulator still showed on its day (what a run persists)."""
    first = max(month, simulator.today - dt.timedelta(days=OPENCOST_DAYS))
    return first, max(first, min(next_month(month), simulator.today))


def opencost_totals(simulator: PrivateCloudSimulator, month: dt.date) -> dict[str, list[Decimal]]:
    """Per OpenCost key: [core-hours, RAM byte-hours, PV byte-hours] over the month's visible days."""
    first, end = opencost_days(simulator, month)
    totals: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0), Decimal(0)])
    if first == end:
        return totals
    body = simulator.opencost_allocation(midnight(first), midnight(end))
    assert len(body["data"]) == (end - first).days
    for allocation_set in body["data"]:
        for key, allocation in allocation_set.items():
            for index, name in enumerate(("cpuCoreHours", "ramByteHours", "pvByteHours")):
                totals[key][index] += Decimal(str(allocation[name]))
    return totals


def expected_quantities(
    simulator: PrivateCloudSimulator, month: dt.date, opencost: PrivateCloudSimulator | None = None
) -> dict[Key, Decimal]:
    """(application, product, source) → quantity of the month, from the simulator's own numbers.

    `opencost` is the simulator whose days were persisted, when that is another (earlier) one.
    """
    by_id = {tenant.id: tenant for tenant in simulator.tenants}
    by_name = {tenant.name: tenant for tenant in simulator.tenants}
    quantities: dict[Key, Decimal] = defaultdict(Decimal)
    with localcontext() as ctx:
        ctx.prec = 60
        for usage in nova_tenant_usages(simulator, month):
            app = owner(by_id[usage["tenant_id"]])
            quantities[(app, "PC_VCPU_HOUR", "openstack")] += Decimal(str(usage["total_vcpus_usage"]))
            quantities[(app, "PC_RAM_GIB_HOUR", "openstack")] += (
                Decimal(str(usage["total_memory_mb_usage"])) / MIB_PER_GIB)
            quantities[(app, "PC_LOCAL_DISK_GIB_HOUR", "openstack")] += (
                Decimal(str(usage["total_local_gb_usage"])))
        for key, (cpu, ram, pv) in opencost_totals(opencost or simulator, month).items():
            app = owner(by_name.get(key))
            quantities[(app, "PC_K8S_CPU_CORE_HOUR", "opencost")] += cpu
            quantities[(app, "PC_K8S_RAM_GIB_HOUR", "opencost")] += ram / GIB
            quantities[(app, "PC_K8S_PV_GIB_HOUR", "opencost")] += pv / GIB
        for tenant, metric, _unit, quantity in simulator.usage_quantities(f"{month:%Y-%m}"):
            quantities[(owner(tenant), USAGE_API_PRODUCTS[metric], "usage_api")] += quantity
    return dict(quantities)


# --------------------------------------------------------------------------------------------
# What the mart holds
# --------------------------------------------------------------------------------------------


def full_fact_rows(mart: psycopg.Connection) -> list[tuple[Any, ...]]:
    return mart.execute("SELECT * FROM finops.fact_releve ORDER BY 1, 2, 3, source").fetchall()


def daily_rows(mart: psycopg.Connection, *, with_run: bool = False) -> list[tuple[Any, ...]]:
    columns = f"{DAILY_COLUMNS}, run_id, read_at" if with_run else DAILY_COLUMNS
    return mart.execute(
        f"SELECT {columns} FROM finops.opencost_allocation_daily ORDER BY source, day, allocation_key"
    ).fetchall()


# --------------------------------------------------------------------------------------------
# 1. a month and the current month, from the three sources
# --------------------------------------------------------------------------------------------


def test_months_publish_every_source_priced_with_the_rate_card(
    pipeline: Pipeline, tenants: list[Tenant]
) -> None:
    simulator = PrivateCloudSimulator(tenants, today=TODAY)
    pipeline.start(simulator)
    mart = pipeline.mart

    result = pipeline.run(SEPTEMBER, OCTOBER)

    assert result.success, failures(result)
    evaluations = check_evaluations(result)
    assert evaluations[("private_cloud_releves", "reconciliation")].passed
    assert all(evaluation.passed for evaluation in evaluations.values()), evaluations
    by_name = {tenant.name: tenant for tenant in tenants}
    orphans = [tenant for tenant in tenants if tenant.application is None]
    assert orphans and any(t.namespace for t in orphans) and any(t.inhouse for t in orphans)
    month_totals: dict[dt.date, Decimal] = {}
    for month in (SEPTEMBER, OCTOBER):
        expected = priced(expected_quantities(simulator, month), RATES)
        found = releves(mart, month)
        assert found == expected
        assert {source for _, _, source in found} == {"openstack", "opencost", "usage_api"}
        assert {product for _, product, _ in found} == set(RATES)  # every PC_* product
        total = sum((total for _, _, total in expected.values()), Decimal(0))
        assert mart.execute("SELECT sum(total_cost) FROM finops.fact_releve WHERE period_month = %s",
                            (month,)).fetchone() == (total,)
        month_totals[month] = total
        for row in mart.execute("SELECT product_id, family_id, domain_id, currency, rate_card_version, "
                                "run_id FROM finops.fact_releve WHERE period_month = %s", (month,)):
            assert row[1:] == (FAMILIES[row[0]], DOMAIN, "EUR", "RC-2024.1", result.run_id)

        # Nova's vCPU-hours, summed exactly, are the OpenStack vCPU relevés over all applications,
        # and all the vCPUs of the estate over the hours measured (servers are older than any month)
        hours = measured_hours(simulator, month)
        nova_vcpu_hours = sum(Decimal(str(usage["total_vcpus_usage"]))
                              for usage in nova_tenant_usages(simulator, month))
        assert nova_vcpu_hours == sum(tenant.vcpus for tenant in tenants) * hours
        assert mart.execute(
            "SELECT sum(usage_quantity) FROM finops.fact_releve WHERE period_month = %s "
            "AND product_id = 'PC_VCPU_HOUR' AND source = 'openstack'", (month,)
        ).fetchone() == (nova_vcpu_hours,)

        # orphan tenants (sandbox-17, ...) land on UNALLOCATED, never on an application or nowhere
        assert found[(UNALLOCATED, "PC_VCPU_HOUR", "openstack")][0] == sum(t.vcpus for t in orphans) * hours
        orphan_inhouse = sum(q for t, m, _, q in simulator.usage_quantities(f"{month:%Y-%m}")
                             if t.application is None and m == "vcpu_hours")
        assert orphan_inhouse > 0
        assert found[(UNALLOCATED, "PC_VCPU_HOUR", "usage_api")][0] == orphan_inhouse
        owners = {t.application for t in tenants if t.application}
        assert {app for app, _, _ in found} <= {*owners, UNALLOCATED}

        # OpenCost's __idle__ and __unallocated__ (and namespaces no tenant owns) are UNALLOCATED's
        allocations = opencost_totals(simulator, month)
        unowned = {key for key in allocations if owner(by_name.get(key)) == UNALLOCATED}
        assert {IDLE_KEY, UNALLOCATED_KEY} <= unowned
        assert allocations[IDLE_KEY][0] > 0 and allocations[UNALLOCATED_KEY][0] > 0
        assert found[(UNALLOCATED, "PC_K8S_CPU_CORE_HOUR", "opencost")][0] == sum(
            (allocations[key][0] for key in unowned), Decimal(0)).quantize(SIX_DECIMALS)
        assert not any(app.startswith("__") for app, _, _ in found)

    # September is complete; October is measured up to the simulator's yesterday
    assert measured_hours(simulator, SEPTEMBER) == 720 and measured_hours(simulator, OCTOBER) == 216
    loads: dict[dt.date, int] = dict(mart.execute(
        "SELECT period_month, details->'opencost_days' FROM finops.domain_load WHERE run_id = %s "
        "AND published_at IS NOT NULL", (result.run_id,)).fetchall())
    assert loads == {SEPTEMBER: 5, OCTOBER: 9}
    assert mart.execute("SELECT min(day), max(day), count(DISTINCT day) FROM finops.opencost_allocation_daily"
                        ).fetchone() == (dt.date(2025, 9, 26), dt.date(2025, 10, 9), OPENCOST_DAYS)

    # the views show the published months
    assert mart.execute("SELECT period_month, domain_id, currency, total_cost "
                        "FROM finops.mv_cost_domain_month ORDER BY 1").fetchall() == [
        (month, DOMAIN, "EUR", total) for month, total in sorted(month_totals.items())]

    run = etl_run(mart, result.run_id)
    assert (run["status"], run["periods"], run["errors_count"], run["error_summary"]) == (
        "SUCCESS", [SEPTEMBER.isoformat(), OCTOBER.isoformat()], 0, None)
    assert (run["records_inserted"],) == mart.execute("SELECT count(*) FROM finops.fact_releve").fetchone()
    assert run["records_rejected"] == 0
    assert all(total > 0 for total in month_totals.values())


# --------------------------------------------------------------------------------------------
# 2. OpenCost's short history: a month is computed from the days persisted for it
# --------------------------------------------------------------------------------------------


def test_a_month_reprocessed_after_opencost_forgot_it_gives_the_same_releves(
    pipeline: Pipeline, tenants: list[Tenant]
) -> None:
    mart = pipeline.mart
    first_simulator = PrivateCloudSimulator(tenants, today=TODAY)
    pipeline.start(first_simulator)
    first = pipeline.run(SEPTEMBER)
    assert first.success, failures(first)
    september = fact_rows(mart, SEPTEMBER)
    opencost_september = fact_rows(mart, SEPTEMBER, "opencost")
    assert len(opencost_september) > 10
    persisted = daily_rows(mart, with_run=True)
    assert {row[1] for row in persisted} == {
        TODAY - dt.timedelta(days=n) for n in range(1, OPENCOST_DAYS + 1)}
    assert {row[-2] for row in persisted} == {first.run_id}

    # 40 days later: OpenCost no longer has anything of that window
    later_simulator = PrivateCloudSimulator(tenants, today=LATER)
    later = pipeline.start(later_simulator)
    window = f"{TODAY - dt.timedelta(days=OPENCOST_DAYS)}T00:00:00Z,{TODAY}T00:00:00Z"
    answer = httpx.get(f"{later.opencost_url}/allocation/compute", timeout=10,
                       params={"window": window, "aggregate": "namespace", "step": "1d"})
    assert answer.status_code == 200 and answer.json()["data"] == []

    second = pipeline.run(SEPTEMBER)

    assert second.success, failures(second)
    assert fact_rows(mart, SEPTEMBER, "opencost") == opencost_september
    assert fact_rows(mart, SEPTEMBER) == september  # OpenStack and the usage API say the same again
    expected = priced(expected_quantities(later_simulator, SEPTEMBER, opencost=first_simulator), RATES)
    assert releves(mart, SEPTEMBER, "opencost") == {
        key: value for key, value in expected.items() if key[2] == "opencost"}
    assert fact_run_ids(mart) == [(second.run_id,)]
    # the first window's rows are untouched (run and read time included); the later window is added
    now_persisted = daily_rows(mart, with_run=True)
    assert [row for row in now_persisted if row[1] < TODAY] == persisted
    assert {row[1] for row in now_persisted if row[1] >= TODAY} == {
        LATER - dt.timedelta(days=n) for n in range(1, OPENCOST_DAYS + 1)}
    metadata = second.asset_materializations_for_node("private_cloud_releves")[0].metadata
    assert metadata["opencost_days_persisted"].value == OPENCOST_DAYS
    assert mart.execute("SELECT details->'opencost_days' FROM finops.domain_load WHERE run_id = %s",
                        (second.run_id,)).fetchone() == (5,)
    assert etl_run(mart, second.run_id)["status"] == "SUCCESS"


BAD_DAY = "2025-09-28T00:00:00Z"


class OneBadOpenCostEntry(PrivateCloudSimulator):
    """OpenCost answers a negative core-hours figure for kube-system on 28 September."""

    def opencost_allocation(self, start: dt.datetime, end: dt.datetime, **kwargs: Any) -> dict[str, Any]:
        body = super().opencost_allocation(start, end, **kwargs)
        for allocation_set in body["data"]:
            if allocation_set["kube-system"]["window"]["start"] == BAD_DAY:
                allocation_set["kube-system"]["cpuCoreHours"] = -1.5
        return body


def test_an_unreadable_opencost_entry_becomes_a_reject_of_its_month(
    pipeline: Pipeline, tenants: list[Tenant]
) -> None:
    mart = pipeline.mart
    pipeline.start(OneBadOpenCostEntry(tenants, today=TODAY))

    result = pipeline.run(SEPTEMBER, OCTOBER)

    assert result.success, failures(result)
    assert mart.execute(
        "SELECT period_month, source, source_ref, reason, raw_payload->'window'->>'start' "
        "FROM finops.releve_reject WHERE run_id = %s", (result.run_id,)).fetchall() == [
        (SEPTEMBER, "opencost", "data[2]/kube-system", "cpuCoreHours: negative (-1.5)",
         BAD_DAY)]
    assert mart.execute("SELECT count(*) FROM finops.opencost_allocation_daily "
                        "WHERE allocation_key = 'kube-system'").fetchone() == (OPENCOST_DAYS - 1,)
    assert etl_run(mart, result.run_id)["records_rejected"] == 1


# --------------------------------------------------------------------------------------------
# 3. settings are checked at start
# --------------------------------------------------------------------------------------------


def test_an_enabled_source_without_its_settings_fails_at_start_naming_the_variable(
    pipeline: Pipeline, tenants: list[Tenant], mart_url: str
) -> None:
    server = pipeline.start(PrivateCloudSimulator(tenants, today=TODAY))
    pipeline.setenv(POSTGRES_URL=mart_url, MONGO_URL="mongomock://settings-test", FINOPS_USAGE_API_URL=None)

    with pytest.raises(SettingError, match="FINOPS_USAGE_API_URL is not set"):
        private_cloud_from_env()
    with pytest.raises(SettingError, match="FINOPS_USAGE_API_URL is not set"):
        build_definitions()

    pipeline.setenv(FINOPS_PRIVATE_CLOUD_SOURCES="openstack,vmware")
    with pytest.raises(SettingError, match="FINOPS_PRIVATE_CLOUD_SOURCES: unknown source 'vmware'"):
        private_cloud_from_env()

    # OpenStack alone needs only the OpenStack settings
    others = [name for name in server.environment() if not name.startswith("FINOPS_OPENSTACK_")]
    pipeline.setenv(FINOPS_PRIVATE_CLOUD_SOURCES="openstack", **dict.fromkeys(others))
    assert not [name for name in os.environ if name.startswith(("FINOPS_OPENCOST_", "FINOPS_USAGE_API_"))]
    assert private_cloud_from_env().sources == ["openstack"]
    assert build_definitions().resources["private_cloud"].sources == ["openstack"]  # type: ignore[index]
    result = pipeline.run(SEPTEMBER)
    assert result.success, failures(result)
    assert {row[10] for row in fact_rows(pipeline.mart, SEPTEMBER)} == {"openstack"}
    assert pipeline.mart.execute("SELECT count(*) FROM finops.opencost_allocation_daily").fetchone() == (0,)

    pipeline.setenv(FINOPS_OPENSTACK_APPLICATION_CREDENTIAL_SECRET=None)
    with pytest.raises(SettingError, match="FINOPS_OPENSTACK_APPLICATION_CREDENTIAL_SECRET is not set"):
        private_cloud_from_env()


# --------------------------------------------------------------------------------------------
# 4. strict policy, messages a person can act on, tokens fetched again
# --------------------------------------------------------------------------------------------


def test_a_failing_usage_api_fails_the_run_and_leaves_the_published_month(
    pipeline: Pipeline, tenants: list[Tenant], httpserver: HTTPServer
) -> None:
    mart = pipeline.mart
    pipeline.start(PrivateCloudSimulator(tenants, today=TODAY))
    assert pipeline.run(SEPTEMBER).success
    published = full_fact_rows(mart)
    views = mart.execute("SELECT * FROM finops.mv_cost_application_month ORDER BY 1, 2").fetchall()
    assert published and views

    httpserver.expect_request("/v1/usage").respond_with_json({"error": "internal"}, status=500)
    pipeline.setenv(FINOPS_USAGE_API_URL=httpserver.url_for("/").rstrip("/"), FINOPS_USAGE_API_RETRIES="1",
                    FINOPS_USAGE_API_RETRY_BUDGET_S="5")
    result = pipeline.run(SEPTEMBER)

    assert not result.success
    assert set(result.get_failed_step_keys()) == {"private_cloud_releves"}
    assert result.asset_materializations_for_node("fact_releve") == []
    assert full_fact_rows(mart) == published
    assert mart.execute("SELECT * FROM finops.mv_cost_application_month ORDER BY 1, 2").fetchall() == views
    assert mart.execute("SELECT count(*) FROM finops.domain_load WHERE run_id = %s",
                        (result.run_id,)).fetchone() == (0,)
    assert [request.path for request, _ in httpserver.log] == ["/v1/usage", "/v1/usage"]
    run = etl_run(mart, result.run_id)
    assert (run["status"], run["errors_count"], run["records_inserted"]) == ("FAILED", 1, 0)
    summary = run["error_summary"]
    assert summary.startswith("private_cloud_releves: ")
    assert summary.endswith("usage_api: gave up: server error (GET /v1/usage, HTTP 500, after 2 attempts)")
    assert "Traceback" not in summary


def test_revoked_tokens_are_fetched_again_once_and_the_run_succeeds(
    pipeline: Pipeline, tenants: list[Tenant], monkeypatch: pytest.MonkeyPatch
) -> None:
    mart = pipeline.mart
    server = pipeline.start(PrivateCloudSimulator(tenants, today=TODAY))
    pipeline.setenv(FINOPS_USAGE_API_PAGE_SIZE="3")
    assert pipeline.run(SEPTEMBER).success
    september = fact_rows(mart, SEPTEMBER)
    server.revoke_tokens()  # between runs

    fetched: Counter[str] = Counter()
    for kind, cls in (("keystone", KeystoneToken), ("oidc", OidcClientCredentials)):
        def counting_fetch(
            self: Any, http: httpx.Client, _kind: str = kind, _original: Any = cls.fetch
        ) -> Any:
            fetched[_kind] += 1
            return _original(self, http)
        monkeypatch.setattr(cls, "fetch", counting_fetch)
    # and during the run, as a rotating identity provider would: once the Keystone token has served
    # Nova (before the project list), and once the OIDC token has served the usage API's first page
    revoked: list[str] = []
    project_names, meter = OpenStackUsage.project_names, UsageApi._meter

    def names_after_revocation(self: OpenStackUsage) -> dict[str, str]:
        server.revoke_tokens()
        revoked.append("keystone")
        return project_names(self)

    def meter_then_revoke(self: UsageApi, index: int, item: Any) -> Any:
        if index == 2:  # the last item of the first page: the next call is page 2
            server.revoke_tokens()
            revoked.append("oidc")
        return meter(self, index, item)

    monkeypatch.setattr(OpenStackUsage, "project_names", names_after_revocation)
    monkeypatch.setattr(UsageApi, "_meter", meter_then_revoke)
    result = pipeline.run(SEPTEMBER)

    assert result.success, failures(result)
    assert revoked == ["keystone", "oidc"]
    # each token: the first one, then exactly one more after its revocation
    assert fetched == {"keystone": 2, "oidc": 2}
    assert fact_rows(mart, SEPTEMBER) == september
    assert etl_run(mart, result.run_id)["status"] == "SUCCESS"


# --------------------------------------------------------------------------------------------
# 5. no secret anywhere
# --------------------------------------------------------------------------------------------

SECRET_CREDENTIALS = Credentials(
    application_credential_secret="app-cred-sentinel-5f0c2d9e",
    password="keystone-password-sentinel-71aa",
    oidc_client_secret="oidc-client-sentinel-b83e41",
)
WRONG_CLIENT_SECRET = "wrong-oidc-client-sentinel-0d9f"


def test_no_secret_in_logs_events_metadata_or_run_records(
    pipeline: Pipeline, tenants: list[Tenant], caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    pipeline.start(PrivateCloudSimulator(tenants, today=TODAY, credentials=SECRET_CREDENTIALS))
    environment = dict(os.environ)
    assert environment["FINOPS_OPENSTACK_APPLICATION_CREDENTIAL_SECRET"] == "app-cred-sentinel-5f0c2d9e"
    assert environment["FINOPS_USAGE_API_OIDC_CLIENT_SECRET"] == "oidc-client-sentinel-b83e41"
    tokens = record_issued_tokens(monkeypatch, KeystoneToken, OidcClientCredentials)
    secrets = [SECRET_CREDENTIALS.application_credential_secret, SECRET_CREDENTIALS.password,
               SECRET_CREDENTIALS.oidc_client_secret, WRONG_CLIENT_SECRET]

    succeeded = pipeline.run(SEPTEMBER)

    assert succeeded.success, failures(succeeded)
    assert len(tokens) == 2  # a Keystone token and an OIDC token were issued and used
    texts = {**pipeline.run_texts(succeeded), "logs": caplog.text}
    # the HTTP libraries' log lines were captured (so their absence of secrets means something)
    assert "os-simple-tenant-usage" in texts["logs"] and "/oidc/token" in texts["logs"]
    assert "opencost_days_persisted" in texts["metadata"] and "total_cost_exact" in texts["metadata"]
    assert_no_secret(texts, (*secrets, *tokens))

    # the usage API's client secret is wrong: the token endpoint refuses it
    caplog.clear()
    pipeline.setenv(FINOPS_USAGE_API_OIDC_CLIENT_SECRET=WRONG_CLIENT_SECRET)
    failed = pipeline.run(SEPTEMBER)

    assert not failed.success
    summary = etl_run(pipeline.mart, failed.run_id)["error_summary"]
    assert summary.startswith("private_cloud_releves: ")
    assert summary.endswith("OIDC token endpoint: token request refused; check OIDC_CLIENT_ID/SECRET "
                            "(POST /oidc/token, HTTP 401)")
    texts = {**pipeline.run_texts(failed), "logs": caplog.text}
    assert "OIDC token endpoint" in texts["event log"]
    assert_no_secret(texts, (*secrets, *tokens), " of the failed run")


# --------------------------------------------------------------------------------------------
# 6. idempotence
# --------------------------------------------------------------------------------------------


def test_the_same_month_twice_gives_identical_releves(pipeline: Pipeline, tenants: list[Tenant]) -> None:
    mart = pipeline.mart
    pipeline.start(PrivateCloudSimulator(tenants, today=TODAY))
    rejects = ("SELECT period_month, source, source_ref, reason, usage_unit, usage_quantity, raw_payload "
               "FROM finops.releve_reject ORDER BY 1, 2, 3, 4")

    first = pipeline.run(SEPTEMBER)
    assert first.success, failures(first)
    after_first = fact_rows(mart, SEPTEMBER)
    rejects_first = mart.execute(rejects).fetchall()
    daily_first = daily_rows(mart)
    load_first = domain_loads(mart, first.run_id)

    second = pipeline.run(SEPTEMBER)

    assert second.success, failures(second)
    assert len(after_first) > 50
    assert fact_rows(mart, SEPTEMBER) == after_first
    assert fact_run_ids(mart) == [(second.run_id,)]
    assert mart.execute(rejects).fetchall() == rejects_first
    assert daily_rows(mart) == daily_first
    assert domain_loads(mart, second.run_id) == load_first
    assert etl_run(mart, second.run_id)["records_inserted"] == len(after_first)


# --------------------------------------------------------------------------------------------
# 7. a day read again replaces the day; refusals are persisted per day like the allocations
# --------------------------------------------------------------------------------------------

APP_LABEL = "label:app"
OPENCOST_SUMMED = ("cpuCoreHours", "ramByteHours", "pvByteHours", "gpuHours", "totalCost")


class ByAppLabel(PrivateCloudSimulator):
    """OpenCost aggregating by the `app` label: each namespace's allocation summed under its tenant's
    application, `__unallocated__` for namespaces without one (system namespaces, orphans)."""

    def opencost_allocation(self, start: dt.datetime, end: dt.datetime, **kwargs: Any) -> dict[str, Any]:
        body = super().opencost_allocation(start, end, **kwargs)
        applications = {tenant.name: tenant.application for tenant in self.tenants}
        regrouped = []
        for allocation_set in body["data"]:
            by_app: dict[str, dict[str, Any]] = {}
            for name, allocation in allocation_set.items():
                key = name if name == IDLE_KEY else applications.get(name) or UNALLOCATED_KEY
                if key not in by_app:
                    by_app[key] = {**allocation, "name": key,
                                   "properties": {"cluster": allocation["properties"]["cluster"]}}
                else:
                    for field_name in OPENCOST_SUMMED:
                        by_app[key][field_name] += allocation[field_name]
            regrouped.append(dict(sorted(by_app.items())))
        return {**body, "data": regrouped}


def serve_app_label_aggregate(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Let the simulated OpenCost take `aggregate=label:app` when it is a `ByAppLabel` (it only
    aggregates by namespace); return the aggregates it was asked for."""
    asked: list[str] = []
    original = private_cloud_demo._Handler._opencost_allocation

    def allocation(self: Any, query: dict[str, str], body: bytes) -> Any:
        asked.append(query.get("aggregate", ""))
        if query.get("aggregate") == APP_LABEL and isinstance(self.server.simulator, ByAppLabel):
            query = {**query, "aggregate": "namespace"}
        return original(self, query, body)

    monkeypatch.setattr(private_cloud_demo._Handler, "_opencost_allocation", allocation)
    return asked


def opencost_core_hours(mart: psycopg.Connection, month: dt.date) -> tuple[Decimal, Decimal]:
    """(the persisted days' core-hours, the published relevés' core-hours) of the month."""
    persisted = mart.execute(
        "SELECT sum(cpu_core_hours) FROM finops.opencost_allocation_daily WHERE day >= %s AND day < %s",
        (month, next_month(month))).fetchone()
    published = mart.execute(
        "SELECT sum(usage_quantity) FROM finops.fact_releve WHERE period_month = %s AND source = 'opencost' "
        "AND product_id = 'PC_K8S_CPU_CORE_HOUR'", (month,)).fetchone()
    assert persisted is not None and published is not None
    return persisted[0], published[0]


def test_a_day_read_again_under_another_aggregate_replaces_the_day(
    pipeline: Pipeline, tenants: list[Tenant], monkeypatch: pytest.MonkeyPatch
) -> None:
    mart = pipeline.mart
    asked = serve_app_label_aggregate(monkeypatch)
    namespace_simulator = PrivateCloudSimulator(tenants, today=TODAY)
    pipeline.start(namespace_simulator)
    first = pipeline.run(SEPTEMBER)
    assert first.success, failures(first)
    by_namespace = sum((cpu for cpu, _, _ in opencost_totals(namespace_simulator, SEPTEMBER).values()),
                       Decimal(0))
    persisted, published = opencost_core_hours(mart, SEPTEMBER)
    assert persisted == by_namespace > 0
    assert abs(published - by_namespace) < Decimal("0.0001")

    # the same days, read again with FINOPS_OPENCOST_AGGREGATE=label:app
    app_simulator = ByAppLabel(tenants, today=TODAY)
    pipeline.start(app_simulator)
    pipeline.setenv(FINOPS_OPENCOST_AGGREGATE=APP_LABEL)
    second = pipeline.run(SEPTEMBER)

    assert second.success, failures(second)
    assert asked == ["namespace", APP_LABEL]
    app_totals = opencost_totals(app_simulator, SEPTEMBER)
    by_app = sum((cpu for cpu, _, _ in app_totals.values()), Decimal(0))
    assert abs(by_app - by_namespace) < Decimal("0.0001")  # the same usage, keyed otherwise
    # every day read holds the second read's keys only, each day once, all written by the second run
    rows = daily_rows(mart, with_run=True)
    assert {row[2] for row in rows} == set(app_totals) == {
        *(t.application for t in tenants if t.namespace and t.application), IDLE_KEY, UNALLOCATED_KEY}
    assert len(rows) == OPENCOST_DAYS * len(app_totals)
    assert {row[-2] for row in rows} == {second.run_id}
    # the month counts one read, not both
    persisted, published = opencost_core_hours(mart, SEPTEMBER)
    assert persisted == by_app
    assert abs(published - by_app) < Decimal("0.0001")
    assert published < by_namespace * Decimal("1.5")


def test_a_refused_entry_stays_a_reject_of_its_month_after_opencost_forgot_it(
    pipeline: Pipeline, tenants: list[Tenant]
) -> None:
    mart = pipeline.mart
    rejects = ("SELECT period_month, source, source_ref, reason, usage_unit, usage_quantity, raw_payload "
               "FROM finops.releve_reject WHERE run_id = %s ORDER BY 1, 2, 3, 4")
    pipeline.start(OneBadOpenCostEntry(tenants, today=TODAY))
    first = pipeline.run(SEPTEMBER)
    assert first.success, failures(first)
    first_rejects = mart.execute(rejects, (first.run_id,)).fetchall()
    assert [row[:6] for row in first_rejects] == [
        (SEPTEMBER, "opencost", "data[2]/kube-system", "cpuCoreHours: negative (-1.5)", None, None)]
    assert first_rejects[0][6]["window"]["start"] == BAD_DAY
    assert mart.execute("SELECT source, day, ref, reason, run_id FROM finops.opencost_refused_daily"
                        ).fetchall() == [("opencost", dt.date(2025, 9, 28), "data[2]/kube-system",
                                          "cpuCoreHours: negative (-1.5)", first.run_id)]

    # 40 days later OpenCost no longer serves September: the month is computed from what was persisted
    pipeline.start(PrivateCloudSimulator(tenants, today=LATER))
    second = pipeline.run(SEPTEMBER)

    assert second.success, failures(second)
    assert mart.execute(rejects, (second.run_id,)).fetchall() == first_rejects
    assert etl_run(mart, second.run_id)["records_rejected"] == 1
    load = mart.execute("SELECT reject_count FROM finops.domain_load WHERE run_id = %s", (second.run_id,))
    assert load.fetchall() == [(1,)]


class KubeSystemOverTwoDays(PrivateCloudSimulator):
    """OpenCost answers kube-system's allocation of 28 September over a 36-hour window."""

    def opencost_allocation(self, start: dt.datetime, end: dt.datetime, **kwargs: Any) -> dict[str, Any]:
        body = super().opencost_allocation(start, end, **kwargs)
        for allocation_set in body["data"]:
            if allocation_set["kube-system"]["window"]["start"] == BAD_DAY:
                allocation_set["kube-system"]["window"] = {"start": BAD_DAY, "end": "2025-09-29T12:00:00Z"}
        return body


def test_an_allocation_whose_window_is_not_one_day_becomes_a_reject(
    pipeline: Pipeline, tenants: list[Tenant]
) -> None:
    mart = pipeline.mart
    pipeline.start(PrivateCloudSimulator(tenants, today=TODAY))
    assert pipeline.run(SEPTEMBER).success  # 28 September's kube-system persisted first, as a day
    pipeline.start(KubeSystemOverTwoDays(tenants, today=TODAY))

    result = pipeline.run(SEPTEMBER)

    assert result.success, failures(result)
    reason = "window is not one day: 2025-09-28T00:00:00Z–2025-09-29T12:00:00Z"
    assert mart.execute(
        "SELECT period_month, source, source_ref, reason, usage_quantity, raw_payload->'window' "
        "FROM finops.releve_reject WHERE run_id = %s", (result.run_id,)).fetchall() == [
        (SEPTEMBER, "opencost", "kube-system", reason, None,
         {"start": BAD_DAY, "end": "2025-09-29T12:00:00Z"})]
    assert mart.execute("SELECT day, ref, reason FROM finops.opencost_refused_daily").fetchall() == [
        (dt.date(2025, 9, 28), "kube-system", reason)]
    # the day read again no longer holds kube-system: its usage is the reject, not also an allocation
    assert mart.execute("SELECT count(*) FROM finops.opencost_allocation_daily WHERE allocation_key = "
                        "'kube-system' AND day = '2025-09-28'").fetchone() == (0,)
    assert mart.execute("SELECT count(*) FROM finops.opencost_allocation_daily "
                        "WHERE allocation_key = 'kube-system'").fetchone() == (OPENCOST_DAYS - 1,)
    assert etl_run(mart, result.run_id)["records_rejected"] == 1
    metadata = result.asset_materializations_for_node("private_cloud_releves")[0].metadata
    assert metadata["opencost_entries_refused"].value == 1
