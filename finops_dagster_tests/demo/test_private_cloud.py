"""The simulated private cloud, called over real HTTP the way the private_cloud clients call it.

The demo and the domain's tests trust this simulator to behave like Keystone + Nova 2.40, OpenCost
and the in-house usage API contract, and to be deterministic; these tests pin both, through the
socket (auth, pagination, retention, error formats) and through the pure body functions.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from finops_dagster.demo.estate import FIXED_APPLICATIONS, Estate, build_estate
from finops_dagster.demo.private_cloud import (
    IDLE_KEY,
    OPENCOST_CPU_CORE_HOUR,
    SYSTEM_NAMESPACES,
    UNALLOCATED_KEY,
    PrivateCloudSimulator,
    RunningServer,
    Tenant,
    private_cloud_tenants,
    serve,
)

TODAY = dt.date(2026, 10, 10)
PACKAGE = Path(__file__).resolve().parents[2] / "finops_dagster"
RULES_FILE = PACKAGE / "reference" / "data" / "mapping_rules.csv"
CONTRACT_FILE = PACKAGE / "domains" / "private_cloud" / "usage_api.openapi.yaml"
NOVA_240 = {"X-OpenStack-Nova-API-Version": "2.40"}
FIXED_CODES = {code for code, _, _ in FIXED_APPLICATIONS}


@pytest.fixture(scope="module")
def estate() -> Estate:
    return build_estate()


@pytest.fixture(scope="module")
def tenants(estate: Estate) -> list[Tenant]:
    return private_cloud_tenants(estate)


@pytest.fixture(scope="module")
def simulator(tenants: list[Tenant]) -> PrivateCloudSimulator:
    return PrivateCloudSimulator(tenants, today=TODAY)


@pytest.fixture(scope="module")
def server(simulator: PrivateCloudSimulator) -> Iterator[RunningServer]:
    with serve(simulator) as running:
        yield running


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def keystone_token(http: httpx.Client, server: RunningServer, simulator: PrivateCloudSimulator) -> str:
    credentials = simulator.credentials
    body = {
        "auth": {
            "identity": {
                "methods": ["application_credential"],
                "application_credential": {
                    "id": credentials.application_credential_id,
                    "secret": credentials.application_credential_secret,
                },
            }
        }
    }
    response = http.post(f"{server.identity_url}/auth/tokens", json=body)
    assert response.status_code == 201, response.text
    return response.headers["X-Subject-Token"]


def oidc_token(http: httpx.Client, server: RunningServer, simulator: PrivateCloudSimulator) -> str:
    form = {
        "grant_type": "client_credentials",
        "client_id": simulator.credentials.oidc_client_id,
        "client_secret": simulator.credentials.oidc_client_secret,
    }
    response = http.post(server.oidc_token_url, data=form)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def nova_pages(http: httpx.Client, url: str, params: dict[str, Any] | None, token: str) -> list[Any]:
    """Every page, following the rel=next links as a client does."""
    pages = []
    next_url: str | None = url
    while next_url:
        response = http.get(next_url, params=params, headers={**NOVA_240, "X-Auth-Token": token})
        assert response.status_code == 200, response.text
        pages.append(response.json())
        links = [link["href"] for link in pages[-1].get("tenant_usages_links", []) if link["rel"] == "next"]
        next_url, params = (links[0] if links else None), None
    return pages


def usage_pages(http: httpx.Client, server: RunningServer, token: str, period: str, size: int) -> list[Any]:
    pages = []
    params: dict[str, Any] = {"period": period, "page_size": size}
    while True:
        response = http.get(f"{server.usage_api_url}/v1/usage", params=params, headers=_bearer(token))
        assert response.status_code == 200, response.text
        pages.append(response.json())
        if pages[-1]["next_page_token"] is None:
            return pages
        params = {**params, "page_token": pages[-1]["next_page_token"]}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _tenant_rule() -> re.Pattern[str]:
    with RULES_FILE.open(encoding="utf-8", newline="") as handle:
        rules = [row for row in csv.DictReader(handle) if row["domain_id"] == "private_cloud"]
    [rule] = [row for row in rules if row["field"] == "tenant"]
    return re.compile(rule["pattern"])


# --- tenants ---------------------------------------------------------------------------------------


def test_tenants_are_deterministic_and_follow_the_naming_convention(
    estate: Estate, tenants: list[Tenant]
) -> None:
    assert private_cloud_tenants(build_estate()) == tenants
    assert private_cloud_tenants(estate, seed=7) != tenants
    assert len(tenants) == 120
    assert all(re.fullmatch(r"[0-9a-f]{32}", tenant.id) for tenant in tenants)
    assert len({tenant.id for tenant in tenants}) == len({tenant.name for tenant in tenants}) == 120
    instance_ids = [server.instance_id for tenant in tenants for server in tenant.servers]
    assert len(set(instance_ids)) == len(instance_ids)

    rule = _tenant_rule()
    orphans = [tenant for tenant in tenants if tenant.application is None]
    assert len(orphans) == 12
    for tenant in orphans:
        assert re.fullmatch(r"(sandbox|poc|lab|training)-[0-9]+", tenant.name)
        assert rule.match(tenant.name) is None
    codes = set(estate.codes)
    for tenant in tenants:
        if tenant.application is not None:
            match = rule.match(tenant.name)
            assert match is not None, tenant.name
            assert match["application"].upper() == tenant.application
            assert tenant.application in codes


def test_tenant_sizes_follow_application_weights(tenants: list[Tenant]) -> None:
    biggest = sorted(tenants, key=lambda tenant: tenant.vcpus, reverse=True)[:3]
    assert {tenant.application for tenant in biggest} <= FIXED_CODES
    per_application = Counter[str | None]()
    for tenant in tenants:
        per_application[tenant.application] += tenant.vcpus
    assert per_application["PAYMENTS"] > 10 * per_application[None] / 12
    assert all(tenant.vcpus >= 2 and tenant.servers for tenant in tenants)


# --- Keystone and Nova -----------------------------------------------------------------------------


def test_keystone_issues_tokens_for_the_configured_credentials(
    server: RunningServer, simulator: PrivateCloudSimulator, http: httpx.Client
) -> None:
    credentials = simulator.credentials
    url = f"{server.identity_url}/auth/tokens"
    token = keystone_token(http, server, simulator)
    assert len(token) >= 32

    password = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": credentials.username,
                        "domain": {"name": credentials.user_domain},
                        "password": credentials.password,
                    }
                },
            },
            "scope": {"project": {"name": credentials.project, "domain": {"name": "Default"}}},
        }
    }
    response = http.post(url, json=password)
    assert response.status_code == 201
    body = response.json()["token"]
    expires = dt.datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert expires > dt.datetime.now(dt.UTC)
    endpoints = {entry["type"]: entry["endpoints"][0]["url"] for entry in body["catalog"]}
    assert endpoints["compute"] == server.compute_url

    wrong = json.loads(json.dumps(password))
    wrong["auth"]["identity"]["password"]["user"]["password"] = "guess"
    assert http.post(url, json=wrong).status_code == 401
    assert http.post(url, json={"auth": {}}).status_code == 400


def test_nova_and_keystone_listing_refuse_requests_without_a_valid_token(
    server: RunningServer, simulator: PrivateCloudSimulator, http: httpx.Client
) -> None:
    usage = f"{server.compute_url}/os-simple-tenant-usage"
    params = {"start": "2026-10-01T00:00:00", "end": "2026-10-02T00:00:00"}
    missing = http.get(usage, params=params, headers=NOVA_240)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == 401
    assert missing.headers["WWW-Authenticate"].startswith("Keystone uri=")
    assert http.get(usage, params=params, headers={**NOVA_240, "X-Auth-Token": "forged"}).status_code == 401
    assert http.get(f"{server.identity_url}/projects").status_code == 401

    token = keystone_token(http, server, simulator)
    projects = http.get(f"{server.identity_url}/projects", headers={"X-Auth-Token": token}).json()["projects"]
    names = {project["id"]: project["name"] for project in projects}
    assert {tenant.id: tenant.name for tenant in simulator.tenants}.items() <= names.items()


def test_nova_usage_is_proportional_to_the_window_hours(
    server: RunningServer, simulator: PrivateCloudSimulator, tenants: list[Tenant], http: httpx.Client
) -> None:
    token = keystone_token(http, server, simulator)
    url = f"{server.compute_url}/os-simple-tenant-usage"
    by_id = {tenant.id: tenant for tenant in tenants}
    # The month asked for is clipped to the simulated clock: 1 October to 10 October = 216 hours.
    for start, end, hours in (
        ("2026-10-08T00:00:00", "2026-10-09T00:00:00.000000", 24.0),
        ("2026-10-01T00:00:00.000000", "2026-11-01T00:00:00.000000", 216.0),
    ):
        response = http.get(
            url, params={"start": start, "end": end}, headers={**NOVA_240, "X-Auth-Token": token}
        )
        assert response.status_code == 200
        assert response.headers["X-OpenStack-Nova-API-Version"] == "2.40"
        usages = response.json()["tenant_usages"]
        assert {usage["tenant_id"] for usage in usages} == set(by_id)
        for usage in usages:
            tenant = by_id[usage["tenant_id"]]
            assert "server_usages" not in usage
            assert isinstance(usage["total_vcpus_usage"], float)
            assert usage["total_vcpus_usage"] == tenant.vcpus * hours
            assert usage["total_memory_mb_usage"] == tenant.memory_mb * hours
            assert usage["total_local_gb_usage"] == tenant.local_gb * hours
            assert usage["total_hours"] == len(tenant.servers) * hours
            assert usage["stop"] == min(end[:19], "2026-10-10T00:00:00")


def test_nova_pagination_lists_every_server_once_and_every_tenant_after_merging(
    server: RunningServer, simulator: PrivateCloudSimulator, tenants: list[Tenant], http: httpx.Client
) -> None:
    token = keystone_token(http, server, simulator)
    params = {"start": "2026-10-01T00:00:00", "end": "2026-10-10T00:00:00", "detailed": 1, "limit": 37}
    pages = nova_pages(http, f"{server.compute_url}/os-simple-tenant-usage", params, token)

    servers = [entry for page in pages for usage in page["tenant_usages"] for entry in usage["server_usages"]]
    expected = {entry.instance_id for tenant in tenants for entry in tenant.servers}
    assert len(servers) == len(expected) == len({entry["instance_id"] for entry in servers})
    assert {entry["instance_id"] for entry in servers} == expected
    assert all(len(page["tenant_usages"][0]["server_usages"]) <= 37 for page in pages)
    assert "tenant_usages_links" not in pages[-1]
    first_link = pages[0]["tenant_usages_links"][0]["href"]
    assert first_link.startswith(f"{server.compute_url}/os-simple-tenant-usage?")
    assert "limit=37" in first_link and "marker=" in first_link

    # Nova pages over servers: a tenant may straddle two pages, and a client merges by tenant_id.
    appearances = Counter(usage["tenant_id"] for page in pages for usage in page["tenant_usages"])
    assert any(count > 1 for count in appearances.values())
    merged: dict[str, float] = defaultdict(float)
    for page in pages:
        assert len({usage["tenant_id"] for usage in page["tenant_usages"]}) == len(page["tenant_usages"])
        for usage in page["tenant_usages"]:
            merged[usage["tenant_id"]] += usage["total_vcpus_usage"]
    assert sorted(merged) == sorted(tenant.id for tenant in tenants)
    for tenant in tenants:
        assert merged[tenant.id] == pytest.approx(tenant.vcpus * 216.0)


def test_nova_microversions_and_errors(
    server: RunningServer, simulator: PrivateCloudSimulator, tenants: list[Tenant], http: httpx.Client
) -> None:
    token = keystone_token(http, server, simulator)
    url = f"{server.compute_url}/os-simple-tenant-usage"
    window = {"start": "2026-10-01T00:00:00", "end": "2026-10-02T00:00:00", "detailed": "1"}

    legacy = http.get(url, params={**window, "limit": 5}, headers={"X-Auth-Token": token})
    assert legacy.status_code == 200
    assert legacy.headers["X-OpenStack-Nova-API-Version"] == "2.1"
    assert "tenant_usages_links" not in legacy.json()  # before 2.40, limit is ignored
    assert sum(len(usage["server_usages"]) for usage in legacy.json()["tenant_usages"]) == sum(
        len(tenant.servers) for tenant in tenants
    )

    def get(params: dict[str, Any], version: str = "2.40") -> httpx.Response:
        return http.get(
            url, params=params, headers={"X-OpenStack-Nova-API-Version": version, "X-Auth-Token": token}
        )

    assert get(window, "2.200").status_code == 406
    zulu = get({**window, "start": "2026-10-01T00:00:00Z"})
    assert zulu.status_code == 400 and "badRequest" in zulu.json()
    assert get({**window, "marker": "no-such-server"}).status_code == 400
    assert get({**window, "start": "2026-10-03T00:00:00"}).status_code == 400


# --- OpenCost --------------------------------------------------------------------------------------


def test_opencost_answers_one_allocation_set_per_day(
    server: RunningServer, tenants: list[Tenant], http: httpx.Client
) -> None:
    params = {"window": "2026-10-07T00:00:00Z,2026-10-10T00:00:00Z", "aggregate": "namespace", "step": "1d"}
    response = http.get(f"{server.opencost_url}/allocation/compute", params=params)
    assert response.status_code == 200
    body = response.json()
    assert body["code"] == 200 and body["status"] == "success"
    assert [item[IDLE_KEY]["window"]["start"] for item in body["data"]] == [
        "2026-10-07T00:00:00Z",
        "2026-10-08T00:00:00Z",
        "2026-10-09T00:00:00Z",
    ]
    expected = {tenant.name for tenant in tenants if tenant.namespace is not None}
    expected |= {name for name, _ in SYSTEM_NAMESPACES} | {IDLE_KEY, UNALLOCATED_KEY}
    for allocation_set in body["data"]:
        assert set(allocation_set) == expected
        assert list(allocation_set) == sorted(allocation_set)
        for key, allocation in allocation_set.items():
            assert allocation["name"] == key
            assert allocation["minutes"] == 1440.0
            assert allocation["properties"].get("namespace") == (None if key.startswith("__") else key)
            assert allocation["cpuCost"] == pytest.approx(
                allocation["cpuCoreHours"] * OPENCOST_CPU_CORE_HOUR, abs=1e-5
            )
            parts = allocation["cpuCost"] + allocation["ramCost"] + allocation["pvCost"]
            assert allocation["totalCost"] == pytest.approx(parts, abs=1e-5)
        assert allocation_set[IDLE_KEY]["cpuCoreHours"] > 0

    bad = http.get(f"{server.opencost_url}/allocation/compute", params={**params, "aggregate": "pod"})
    assert bad.status_code == 400


def test_opencost_only_keeps_the_last_fourteen_days(server: RunningServer, http: httpx.Client) -> None:
    url = f"{server.opencost_url}/allocation/compute"
    old = {"window": "2026-09-01T00:00:00Z,2026-09-20T00:00:00Z", "aggregate": "namespace", "step": "1d"}
    assert http.get(url, params=old).json() == {"code": 200, "status": "success", "data": []}

    straddling = {**old, "window": "2026-09-20T00:00:00Z,2026-10-10T00:00:00Z"}
    data = http.get(url, params=straddling).json()["data"]
    assert len(data) == 14
    assert data[0][IDLE_KEY]["window"]["start"] == "2026-09-26T00:00:00Z"


# --- OIDC and the generic usage API ----------------------------------------------------------------


def test_oidc_token_endpoint_implements_client_credentials(
    server: RunningServer, simulator: PrivateCloudSimulator, http: httpx.Client
) -> None:
    credentials = simulator.credentials
    form = {
        "grant_type": "client_credentials",
        "client_id": credentials.oidc_client_id,
        "client_secret": credentials.oidc_client_secret,
    }
    response = http.post(server.oidc_token_url, data=form)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0 and body["access_token"]

    basic = http.post(
        server.oidc_token_url,
        data={"grant_type": "client_credentials"},
        auth=(credentials.oidc_client_id, credentials.oidc_client_secret),
    )
    assert basic.status_code == 200
    refused = http.post(server.oidc_token_url, data={**form, "client_secret": "guess"})
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    wrong_grant = http.post(server.oidc_token_url, data={**form, "grant_type": "password"})
    assert wrong_grant.status_code == 400 and wrong_grant.json()["error"] == "unsupported_grant_type"


def test_usage_api_requires_a_bearer_token_from_the_identity_provider(
    server: RunningServer, simulator: PrivateCloudSimulator, http: httpx.Client
) -> None:
    url = f"{server.usage_api_url}/v1/usage"
    missing = http.get(url, params={"period": "2026-09"})
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "unauthorized"
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert http.get(url, params={"period": "2026-09"}, headers=_bearer("forged")).status_code == 401

    token = oidc_token(http, server, simulator)
    assert http.get(url, params={"period": "2026-09"}, headers=_bearer(token)).status_code == 200
    server.revoke_tokens()
    assert http.get(url, params={"period": "2026-09"}, headers=_bearer(token)).status_code == 401


def test_usage_api_pages_add_up_to_the_simulators_totals(
    server: RunningServer, simulator: PrivateCloudSimulator, tenants: list[Tenant], http: httpx.Client
) -> None:
    token = oidc_token(http, server, simulator)
    validate = _contract_validator("UsagePage")
    for period, measured_days in (("2026-09", 30), ("2026-10", 9)):
        pages = usage_pages(http, server, token, period, size=7)
        for page in pages:
            validate(page)
            assert page["period"] == period
        items = [item for page in pages for item in page["items"]]
        assert len(pages) == -(-len(items) // 7)
        assert items == simulator.usage_items(period)
        keys = [(item["tenant"], item["metric"]) for item in items]
        assert len(keys) == len(set(keys))
        totals: dict[str, Decimal] = defaultdict(Decimal)
        for item in items:
            totals[item["metric"]] += Decimal(item["quantity"])
        assert totals == simulator.usage_totals(period)

        inhouse = {tenant.name: tenant for tenant in tenants if tenant.inhouse is not None}
        assert {item["tenant"] for item in items} == set(inhouse)
        for item in items:
            tenant = inhouse[item["tenant"]]
            assert item["application"] in (None, tenant.application)
            if tenant.application is None:
                assert item["application"] is None
        vcpu_hours = {
            item["tenant"]: Decimal(item["quantity"]) for item in items if item["metric"] == "vcpu_hours"
        }
        assert all(value % (24 * measured_days) == 0 for value in vcpu_hours.values())
    assert any(item["application"] is None for item in simulator.usage_items("2026-09"))


def test_usage_api_refuses_bad_requests_and_has_nothing_for_future_months(
    server: RunningServer, simulator: PrivateCloudSimulator, http: httpx.Client
) -> None:
    token = oidc_token(http, server, simulator)
    url = f"{server.usage_api_url}/v1/usage"

    def get(**params: Any) -> httpx.Response:
        return http.get(url, params=params, headers=_bearer(token))

    assert get(period="2026-9").json()["error"]["code"] == "invalid_period"
    assert get(period="2026-09", page_size=0).status_code == 400
    september_token = get(period="2026-09", page_size=5).json()["next_page_token"]
    other_period = get(period="2026-08", page_token=september_token)
    assert other_period.status_code == 400
    assert other_period.json()["error"]["code"] == "invalid_page_token"
    assert get(period="2026-11").json() == {"period": "2026-11", "items": [], "next_page_token": None}


# --- determinism and the contract ------------------------------------------------------------------


def test_two_simulators_answer_identical_bodies(
    server: RunningServer, simulator: PrivateCloudSimulator, http: httpx.Client
) -> None:
    twin = PrivateCloudSimulator(private_cloud_tenants(build_estate()), today=TODAY)
    start, end = dt.datetime(2026, 10, 1), dt.datetime(2026, 10, 10)
    for make in (
        lambda sim: sim.nova_usage(start, end, detailed=True, limit=50),
        lambda sim: sim.opencost_allocation(start, end),
        lambda sim: sim.usage_page("2026-09", page_size=1000),
        lambda sim: sim.keystone_projects(),
    ):
        assert json.dumps(make(twin)) == json.dumps(make(simulator))

    with serve(twin) as other:
        token_a, token_b = (keystone_token(http, srv, simulator) for srv in (server, other))
        params = {
            "start": "2026-10-01T00:00:00",
            "end": "2026-10-10T00:00:00",
            "detailed": "1",
            "limit": "100",
        }
        bodies = [
            http.get(
                f"{srv.compute_url}/os-simple-tenant-usage",
                params=params,
                headers={**NOVA_240, "X-Auth-Token": token},
            ).text.replace(srv.url, "<base>")
            for srv, token in ((server, token_a), (other, token_b))
        ]
        assert bodies[0] == bodies[1]
        window = {
            "window": "2026-10-01T00:00:00Z,2026-10-10T00:00:00Z",
            "aggregate": "namespace",
            "step": "1d",
        }
        assert (
            http.get(f"{server.opencost_url}/allocation/compute", params=window).content
            == http.get(f"{other.opencost_url}/allocation/compute", params=window).content
        )


def test_usage_api_contract_is_a_valid_openapi_document() -> None:
    spec = yaml.safe_load(CONTRACT_FILE.read_text(encoding="utf-8"))
    assert spec["openapi"].startswith("3.0")
    operation = spec["paths"]["/v1/usage"]["get"]
    assert {parameter["name"] for parameter in operation["parameters"]} == {
        "period",
        "page_token",
        "page_size",
    }
    assert {"200", "400", "401"} <= set(operation["responses"])
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert spec["security"] == [{"bearerAuth": []}]
    item = spec["components"]["schemas"]["UsageItem"]
    assert set(item["required"]) == {"application", "tenant", "metric", "unit", "quantity"}
    assert item["properties"]["quantity"]["type"] == "string"
    _contract_validator("UsagePage")(operation["responses"]["200"]["content"]["application/json"]["example"])


def _contract_validator(name: str) -> Any:
    """A JSON Schema validator for a component of the OpenAPI 3.0 contract (``nullable`` rewritten)."""
    jsonschema = pytest.importorskip("jsonschema")
    spec = yaml.safe_load(CONTRACT_FILE.read_text(encoding="utf-8"))

    def convert(node: Any) -> Any:
        if isinstance(node, list):
            return [convert(item) for item in node]
        if not isinstance(node, dict):
            return node
        converted = {key: convert(value) for key, value in node.items() if key not in ("nullable", "example")}
        if "$ref" in converted:
            converted["$ref"] = converted["$ref"].replace("#/components/schemas/", "#/definitions/")
        if node.get("nullable"):
            converted["type"] = [node["type"], "null"]
        return converted

    definitions = convert(spec["components"]["schemas"])
    schema = {"$ref": f"#/definitions/{name}", "definitions": definitions}
    validator = jsonschema.Draft7Validator(schema)
    return validator.validate
