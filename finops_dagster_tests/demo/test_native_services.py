"""The simulated native services (GitLab, Artifactory, Cube), called over real HTTP.

The demo replays several nights of snapshots against this simulator, and the native domain's tests
trust it to behave like GitLab REST v4, Artifactory's storage summary and the usage-report contract,
to be deterministic, and to show the state as of the night it is set to. These tests pin all three
through the socket (auth, pagination, rate limit, error formats) and through the pure body functions.
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

from finops_dagster.demo.estate import Estate, build_estate
from finops_dagster.demo.native_services import (
    CONSUMER_NAME_PATTERN,
    CUBE_PRODUCTS,
    REPO_KEY_PATTERN,
    NativeServicesSimulator,
    RunningServer,
    artifactory_repositories,
    cube_consumers,
    gitlab_projects,
    readable_size,
    serve,
)

TODAY = dt.date(2026, 10, 10)
PACKAGE = Path(__file__).resolve().parents[2] / "finops_dagster"
CONTRACT_FILE = PACKAGE / "domains" / "native" / "usage_report.openapi.yaml"
PRODUCTS_FILE = PACKAGE / "domains" / "native" / "usage_report_products.csv"
UNITS = {"bytes": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


@pytest.fixture(scope="module")
def estate() -> Estate:
    return build_estate()


@pytest.fixture(scope="module")
def simulator(estate: Estate) -> NativeServicesSimulator:
    return NativeServicesSimulator(estate, today=TODAY)


@pytest.fixture(autouse=True)
def tonight(simulator: NativeServicesSimulator) -> Iterator[None]:
    """Every test starts on ``today`` with no rate limit, whatever the previous one replayed."""
    simulator.night = TODAY
    simulator.gitlab_rate_limit = None
    yield
    simulator.night = TODAY
    simulator.gitlab_rate_limit = None


@pytest.fixture(scope="module")
def server(simulator: NativeServicesSimulator) -> Iterator[RunningServer]:
    with serve(simulator) as running:
        yield running


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def gitlab_headers(simulator: NativeServicesSimulator) -> dict[str, str]:
    return {"PRIVATE-TOKEN": simulator.credentials.gitlab_token}


def keyset_pages(
    http: httpx.Client, server: RunningServer, simulator: NativeServicesSimulator, per_page: int
) -> list[httpx.Response]:
    """Every page, following ``Link: <…>; rel="next"`` as a client does."""
    params: dict[str, Any] | None = {
        "statistics": "true",
        "pagination": "keyset",
        "order_by": "id",
        "sort": "asc",
        "per_page": per_page,
    }
    pages = []
    url: str | None = f"{server.gitlab_url}/projects"
    while url:
        response = http.get(url, params=params, headers=gitlab_headers(simulator))
        assert response.status_code == 200, response.text
        pages.append(response)
        url, params = response.links.get("next", {}).get("url"), None
    return pages


def namespace_pages(
    http: httpx.Client, server: RunningServer, simulator: NativeServicesSimulator, per_page: int
) -> list[Any]:
    """Every namespace, following ``X-Next-Page`` until it is empty."""
    namespaces: list[Any] = []
    page = "1"
    while page:
        response = http.get(
            f"{server.gitlab_url}/namespaces",
            params={"per_page": per_page, "page": page},
            headers=gitlab_headers(simulator),
        )
        assert response.status_code == 200, response.text
        namespaces.extend(response.json())
        page = response.headers["X-Next-Page"]
    return namespaces


def oidc_token(http: httpx.Client, server: RunningServer, simulator: NativeServicesSimulator) -> str:
    form = {
        "grant_type": "client_credentials",
        "client_id": simulator.credentials.oidc_client_id,
        "client_secret": simulator.credentials.oidc_client_secret,
    }
    response = http.post(server.oidc_token_url, data=form)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def report_pages(http: httpx.Client, server: RunningServer, token: str, period: str, size: int) -> list[Any]:
    pages = []
    params: dict[str, Any] = {"period": period, "page_size": size}
    while True:
        response = http.get(f"{server.cube_url}/v1/usage-report", params=params, headers=_bearer(token))
        assert response.status_code == 200, response.text
        pages.append(response.json())
        if pages[-1]["next_page_token"] is None:
            return pages
        params = {**params, "page_token": pages[-1]["next_page_token"]}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def parse_size(text: str) -> tuple[Decimal, int]:
    """A human-readable Artifactory size as (bytes, the unit's size): the rounding is ±0.005 unit."""
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?) (bytes|KB|MB|GB|TB)", text)
    assert match is not None, text
    return Decimal(match[1]) * UNITS[match[2]], UNITS[match[2]]


# --- generators ------------------------------------------------------------------------------------


def test_generators_are_deterministic_and_depend_on_the_seed(
    estate: Estate, simulator: NativeServicesSimulator
) -> None:
    assert tuple(gitlab_projects(build_estate())) == simulator.projects
    assert tuple(artifactory_repositories(build_estate())) == simulator.repositories
    assert tuple(cube_consumers(build_estate())) == simulator.consumers
    assert gitlab_projects(estate, seed=7) != list(simulator.projects)
    assert artifactory_repositories(estate, seed=7) != list(simulator.repositories)
    assert cube_consumers(estate, seed=7) != list(simulator.consumers)

    twin = NativeServicesSimulator(build_estate(), today=TODAY)
    twin.night = simulator.night = dt.date(2026, 9, 20)
    for make in (
        lambda sim: sim.gitlab_projects_keyset(per_page=100),
        lambda sim: sim.gitlab_namespaces_page(per_page=100),
        lambda sim: sim.artifactory_storageinfo(),
        lambda sim: sim.cube_usage_report("2026-09", page_size=1000),
    ):
        assert json.dumps(make(twin)) == json.dumps(make(simulator))


def test_gitlab_projects_live_in_groups_named_after_their_applications(
    estate: Estate, simulator: NativeServicesSimulator
) -> None:
    projects = simulator.projects
    assert len(projects) == 400
    assert [project.id for project in projects] == sorted({project.id for project in projects})
    codes = set(estate.codes)
    outside = [project for project in projects if project.namespace.root.application is None]
    assert 0.06 <= len(outside) / len(projects) <= 0.10
    assert {project.namespace.root.kind for project in outside} == {"user", "group"}
    assert {p.namespace.root.path for p in outside if p.namespace.kind == "group"} <= {
        "sandbox",
        "archive-2019",
    }
    for project in projects:
        namespace = project.namespace
        if namespace.root.application is not None:
            assert project.application == namespace.root.application in codes
            assert namespace.root.full_path == project.application.lower()
            assert namespace.full_path.count("/") <= 1
        topics = [topic for topic in project.topics if topic.startswith("app:")]
        if topics:
            assert topics == [f"app:{project.application}"]
        elif namespace.root.application is None:
            assert project.application is None  # nothing maps it: unallocated
    assert any(project.namespace.parent is not None for project in projects)
    assert any(project.topics and project.namespace.kind == "user" for project in projects)
    assert Counter(project.malformed for project in projects) == {
        None: 396,
        "negative_size": 2,
        "missing_statistics": 2,
    }
    per_application = Counter(project.application for project in projects)
    assert per_application.most_common(1)[0][0] == "PAYMENTS"


# --- GitLab over HTTP ------------------------------------------------------------------------------


def test_keyset_pagination_returns_every_project_once(
    server: RunningServer, simulator: NativeServicesSimulator, http: httpx.Client
) -> None:
    pages = keyset_pages(http, server, simulator, per_page=37)
    assert len(pages) == 11
    assert all(len(page.json()) == 37 for page in pages[:-1]) and len(pages[-1].json()) == 400 - 370
    assert "link" not in pages[-1].headers
    link = pages[0].links["next"]["url"]
    assert (
        link.startswith(f"{server.gitlab_url}/projects?") and f"id_after={pages[0].json()[-1]['id']}" in link
    )
    projects = [project for page in pages for project in page.json()]
    ids = [project["id"] for project in projects]
    assert ids == sorted(set(ids)) == [project.id for project in simulator.projects]

    by_id = {project.id: project for project in simulator.projects}
    for body in projects:
        project = by_id[body["id"]]
        assert body["path_with_namespace"] == project.path_with_namespace
        assert body["namespace"]["full_path"] == project.namespace.full_path
        assert body["topics"] == list(project.topics)
        if project.malformed == "missing_statistics":
            assert "statistics" not in body
            continue
        statistics = body["statistics"]
        sizes = {key: value for key, value in statistics.items() if key.endswith("_size")}
        assert all(isinstance(value, int) for value in sizes.values())
        assert statistics["storage_size"] == sum(
            value for key, value in sizes.items() if key not in ("storage_size", "container_registry_size")
        )
        assert (min(sizes.values()) < 0) == (project.malformed == "negative_size")

    without = http.get(
        f"{server.gitlab_url}/projects", params={"per_page": 5}, headers=gitlab_headers(simulator)
    )
    assert without.status_code == 200 and "statistics" not in without.json()[0]
    assert without.headers["X-Total"] == "400" and without.headers["X-Next-Page"] == "2"


def test_gitlab_requires_a_token_and_refuses_unsupported_keyset_orders(
    server: RunningServer, simulator: NativeServicesSimulator, http: httpx.Client
) -> None:
    projects, namespaces = f"{server.gitlab_url}/projects", f"{server.gitlab_url}/namespaces"
    for url in (projects, namespaces, f"{namespaces}/{simulator.namespaces[0].id}"):
        missing = http.get(url)
        assert missing.status_code == 401 and missing.json() == {"message": "401 Unauthorized"}
        assert http.get(url, headers={"PRIVATE-TOKEN": "glpat-guess"}).status_code == 401
    bearer = http.get(projects, headers=_bearer(simulator.credentials.gitlab_token))
    assert bearer.status_code == 200

    params = {"pagination": "keyset", "order_by": "name", "sort": "asc"}
    unsupported = http.get(projects, params=params, headers=gitlab_headers(simulator))
    assert unsupported.status_code == 405
    assert unsupported.json() == {"error": "Keyset pagination is not yet available for this type of request"}
    unknown = http.get(f"{namespaces}/999999", headers=gitlab_headers(simulator))
    assert unknown.status_code == 404
    nested = next(namespace for namespace in simulator.namespaces if namespace.parent is not None)
    by_path = http.get(
        f"{namespaces}/{nested.full_path.replace('/', '%2F')}", headers=gitlab_headers(simulator)
    )
    assert by_path.status_code == 200 and by_path.json()["id"] == nested.id


def test_gitlab_rate_limit_answers_429_with_retry_after(
    server: RunningServer, simulator: NativeServicesSimulator, http: httpx.Client
) -> None:
    url = f"{server.gitlab_url}/namespaces"
    assert all(http.get(url, headers=gitlab_headers(simulator)).status_code == 200 for _ in range(6))
    simulator.gitlab_rate_limit = 2
    statuses = [http.get(url, headers=gitlab_headers(simulator)) for _ in range(6)]
    refused = [response for response in statuses if response.status_code == 429]
    assert len(refused) >= 2
    assert int(refused[0].headers["Retry-After"]) >= 1
    assert refused[0].headers["RateLimit-Limit"] == "2" and refused[0].text == "Retry later\n"


def test_project_sizes_grow_night_over_night(
    server: RunningServer, simulator: NativeServicesSimulator, http: httpx.Client
) -> None:
    def storage_by_id() -> dict[int, int]:
        pages = keyset_pages(http, server, simulator, per_page=100)
        return {
            project["id"]: project["statistics"]["storage_size"]
            for page in pages
            for project in page.json()
            if "statistics" in project
        }

    simulator.night = dt.date(2026, 10, 9)
    before = storage_by_id()
    simulator.night = TODAY
    after = storage_by_id()
    assert before.keys() == after.keys()
    healthy = {project.id for project in simulator.projects if project.malformed is None}
    assert all(after[key] > before[key] for key in healthy)

    # A month of nights: the average (what a gauge bills) is below the month's last night.
    project = max(simulator.projects, key=lambda item: item.sizes[0])
    nights = [dt.date(2026, 9, day) for day in range(1, 31)]
    sizes = [project.statistics(TODAY, night)["storage_size"] for night in nights]
    assert sizes == sorted(set(sizes))
    assert sum(sizes) / len(sizes) < sizes[-1] * 0.999


def test_ci_minutes_grow_through_the_month_and_reset_on_the_first(
    server: RunningServer, simulator: NativeServicesSimulator, http: httpx.Client
) -> None:
    namespaces = namespace_pages(http, server, simulator, per_page=25)
    assert [item["id"] for item in namespaces] == [namespace.id for namespace in simulator.namespaces]
    roots = [item for item in namespaces if item["parent_id"] is None]
    assert all("ci_minutes_usage" not in item for item in namespaces if item["parent_id"] is not None)
    assert {item["kind"] for item in roots} == {"group", "user"}

    def minutes(night: dt.date) -> dict[int, dict[str, int]]:
        simulator.night = night
        result = {}
        for item in roots:
            response = http.get(
                f"{server.gitlab_url}/namespaces/{item['id']}", headers=gitlab_headers(simulator)
            )
            assert response.status_code == 200
            result[item["id"]] = response.json()["ci_minutes_usage"]
        return result

    september_29, september_30, october_1, october_2 = (
        minutes(night)
        for night in (dt.date(2026, 9, 29), dt.date(2026, 9, 30), dt.date(2026, 10, 1), dt.date(2026, 10, 2))
    )
    for usage in (*september_30.values(), *october_2.values()):
        assert usage["monthly_minutes_used"] + usage["purchased_minutes_used"] == usage["total_minutes_used"]
    total = {
        night: sum(usage["total_minutes_used"] for usage in values.values())
        for night, values in (("29", september_29), ("30", september_30), ("1", october_1), ("2", october_2))
    }
    assert 0 < total["29"] < total["30"]
    assert total["1"] == 0  # the month-to-date counter reset: September's last day is never seen
    assert total["2"] > 0
    assert all(
        september_30[key]["total_minutes_used"] >= september_29[key]["total_minutes_used"]
        for key in september_30
    )
    assert any(usage["purchased_minutes_used"] > 0 for usage in september_30.values())  # over its quota


# --- Artifactory -----------------------------------------------------------------------------------


def test_artifactory_total_row_is_last_and_adds_up(
    server: RunningServer, simulator: NativeServicesSimulator, http: httpx.Client
) -> None:
    url = f"{server.artifactory_url}/api/storageinfo"
    assert http.get(url).status_code == 401
    assert (
        http.get(url, headers={"PRIVATE-TOKEN": simulator.credentials.artifactory_token}).status_code == 401
    )
    response = http.get(url, headers=_bearer(simulator.credentials.artifactory_token))
    assert response.status_code == 200
    rows = response.json()["repositoriesSummaryList"]
    *repositories, total = rows
    assert total["repoKey"] == "TOTAL" and total["repoType"] == "NA"
    assert len(repositories) == 120 and "TOTAL" not in {row["repoKey"] for row in repositories}
    for name in ("foldersCount", "filesCount", "itemsCount"):
        assert total[name] == sum(row[name] for row in repositories)
    truth = {repo.key: repo.used_bytes_at(TODAY, TODAY) for repo in simulator.repositories}
    claimed, unit = parse_size(total["usedSpace"])
    assert abs(claimed - sum(truth.values())) <= Decimal("0.005") * unit

    unparseable = [
        row for row in repositories if not re.fullmatch(r"[0-9.]+ (bytes|KB|MB|GB|TB)", row["usedSpace"])
    ]
    assert len(unparseable) == 1 and "usedSpaceInBytes" not in unparseable[0]
    with_bytes = [row for row in repositories if "usedSpaceInBytes" in row]
    assert 0.35 <= len(with_bytes) / len(repositories) <= 0.65
    for row in repositories:
        if row in unparseable:
            continue
        if "usedSpaceInBytes" in row:
            assert row["usedSpaceInBytes"] == truth[row["repoKey"]]
        value, unit = parse_size(row["usedSpace"])
        assert abs(value - truth[row["repoKey"]]) <= Decimal("0.005") * unit
    assert {row["repoType"] for row in repositories} == {"LOCAL", "REMOTE", "VIRTUAL", "FEDERATED"}
    assert all(row["usedSpace"] == "0 bytes" for row in repositories if row["repoType"] == "VIRTUAL")


def test_artifactory_repositories_resolve_by_project_key_or_by_name(
    simulator: NativeServicesSimulator,
) -> None:
    by_key = Counter[str]()
    for repo in simulator.repositories:
        match = REPO_KEY_PATTERN.match(repo.key)
        if repo.application is None:
            assert repo.project_key in (None, "default") and match is None
            by_key["shared"] += 1
        elif repo.project_key is not None:
            assert repo.project_key == repo.application.lower()
            by_key["project key"] += 1
            by_key["legacy name"] += match is None
        else:
            assert match is not None and match["application"].upper() == repo.application
            by_key["name only"] += 1
    assert by_key["shared"] == 8 and by_key["project key"] > 20 and by_key["name only"] > 20
    assert by_key["legacy name"] >= 1
    assert readable_size(0) == "0 bytes" and readable_size(36138261) == "34.46 MB"


def test_artifactory_sizes_follow_the_night(simulator: NativeServicesSimulator) -> None:
    def total(night: dt.date) -> int:
        simulator.night = night
        rows = simulator.artifactory_storageinfo()["repositoriesSummaryList"]
        return sum(row.get("usedSpaceInBytes", 0) for row in rows[:-1])

    assert total(dt.date(2026, 9, 1)) < total(dt.date(2026, 9, 30)) < total(TODAY)


# --- Cube ------------------------------------------------------------------------------------------


def test_cube_pages_add_up_to_the_simulators_totals(
    server: RunningServer, simulator: NativeServicesSimulator, http: httpx.Client
) -> None:
    token = oidc_token(http, server, simulator)
    validate = _contract_validator("UsageReport")
    products = set(CUBE_PRODUCTS)
    assert products <= _declared_products()
    consumers = {consumer.key: consumer for consumer in simulator.consumers}
    for period in ("2026-09", "2026-10"):
        pages = report_pages(http, server, token, period, size=7)
        for page in pages:
            validate(page)
            assert page["service"] == "cube" and page["period"] == period
        items = [item for page in pages for item in page["items"]]
        assert len(pages) == -(-len(items) // 7)
        assert items == simulator.cube_items(period)
        keys = [(item["consumer"], item["product"]) for item in items]
        assert len(keys) == len(set(keys))
        totals: dict[str, Decimal] = defaultdict(Decimal)
        for item in items:
            assert (item["product"], item["unit"]) in products
            totals[item["product"]] += Decimal(item["quantity"])
            consumer = consumers[item["consumer"]]
            assert item["application"] in (None, consumer.application)
            match = CONSUMER_NAME_PATTERN.match(consumer.key)
            assert (match is not None) == (consumer.application is not None)
        assert totals == simulator.cube_totals(period)
    assert any(item["application"] is None for item in simulator.cube_items("2026-09"))


def test_cube_report_is_month_to_date_as_of_the_night(simulator: NativeServicesSimulator) -> None:
    simulator.night = dt.date(2026, 9, 15)
    mid_september = simulator.cube_totals("2026-09")
    simulator.night = dt.date(2026, 10, 1)
    final_september = simulator.cube_totals("2026-09")
    assert simulator.cube_items("2026-10") == []  # nothing measured yet on the night of the 1st
    simulator.night = TODAY
    assert simulator.cube_totals("2026-09") == final_september  # a past month is final
    assert mid_september["cube_query_hours"] < final_september["cube_query_hours"]
    assert final_september["cube_storage_gb_month"] == sum(
        (Decimal(str(consumer.storage_gb)) for consumer in simulator.consumers), Decimal(0)
    )
    assert simulator.cube_usage_report("2026-11") == {
        "service": "cube",
        "period": "2026-11",
        "items": [],
        "next_page_token": None,
    }


def test_cube_requires_an_oidc_token_and_refuses_bad_requests(
    server: RunningServer, simulator: NativeServicesSimulator, http: httpx.Client
) -> None:
    url = f"{server.cube_url}/v1/usage-report"
    missing = http.get(url, params={"period": "2026-09"})
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert http.get(url, params={"period": "2026-09"}, headers=_bearer("forged")).status_code == 401
    refused = http.post(
        server.oidc_token_url,
        data={"grant_type": "client_credentials", "client_id": "finops-dagster", "client_secret": "guess"},
    )
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"

    token = oidc_token(http, server, simulator)

    def get(**params: Any) -> httpx.Response:
        return http.get(url, params=params, headers=_bearer(token))

    assert get(period="2026-9").json()["error"]["code"] == "invalid_period"
    assert get(period="2026-09", page_size=0).status_code == 400
    september_token = get(period="2026-09", page_size=5).json()["next_page_token"]
    other_period = get(period="2026-08", page_token=september_token)
    assert other_period.status_code == 400 and other_period.json()["error"]["code"] == "invalid_page_token"
    server.revoke_tokens()
    assert get(period="2026-09").status_code == 401


# --- determinism over HTTP, settings and the contract ----------------------------------------------


def test_two_servers_answer_identical_bodies_and_name_the_pipeline_settings(
    server: RunningServer, simulator: NativeServicesSimulator, http: httpx.Client
) -> None:
    twin = NativeServicesSimulator(build_estate(), today=TODAY)
    with serve(twin) as other:
        bodies = []
        for running, sim in ((server, simulator), (other, twin)):
            pages = keyset_pages(http, running, sim, per_page=100)
            text = "".join(page.text for page in pages)
            text += http.get(
                f"{running.gitlab_url}/namespaces/{sim.namespaces[0].id}", headers=gitlab_headers(sim)
            ).text
            text += http.get(
                f"{running.artifactory_url}/api/storageinfo",
                headers=_bearer(sim.credentials.artifactory_token),
            ).text
            bodies.append(text)
        assert bodies[0] == bodies[1]

        environment = other.environment()
        assert environment == {
            "FINOPS_GITLAB_URL": f"{other.url}/gitlab/api/v4",
            "FINOPS_GITLAB_AUTH": "token",
            "FINOPS_GITLAB_TOKEN": twin.credentials.gitlab_token,
            "FINOPS_GITLAB_TOKEN_HEADER": "PRIVATE-TOKEN",
            "FINOPS_ARTIFACTORY_URL": f"{other.url}/artifactory",
            "FINOPS_ARTIFACTORY_AUTH": "token",
            "FINOPS_ARTIFACTORY_TOKEN": twin.credentials.artifactory_token,
            "FINOPS_NATIVE_SERVICES": "cube",
            "FINOPS_SERVICE_CUBE_URL": f"{other.url}/cube",
            "FINOPS_SERVICE_CUBE_AUTH": "oidc",
            "FINOPS_SERVICE_CUBE_OIDC_TOKEN_URL": f"{other.url}/oidc/token",
            "FINOPS_SERVICE_CUBE_OIDC_CLIENT_ID": twin.credentials.oidc_client_id,
            "FINOPS_SERVICE_CUBE_OIDC_CLIENT_SECRET": twin.credentials.oidc_client_secret,
        }


def test_usage_report_contract_is_a_valid_openapi_document() -> None:
    spec = yaml.safe_load(CONTRACT_FILE.read_text(encoding="utf-8"))
    assert spec["openapi"].startswith("3.0")
    operation = spec["paths"]["/v1/usage-report"]["get"]
    assert {parameter["name"] for parameter in operation["parameters"]} == {
        "period",
        "page_token",
        "page_size",
    }
    assert {"200", "400", "401", "429"} <= set(operation["responses"])
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert spec["security"] == [{"bearerAuth": []}]
    item = spec["components"]["schemas"]["UsageReportItem"]
    assert set(item["required"]) == {"application", "consumer", "product", "unit", "quantity"}
    assert item["properties"]["quantity"]["type"] == "string"
    example = operation["responses"]["200"]["content"]["application/json"]["example"]
    _contract_validator("UsageReport")(example)


def _declared_products() -> set[tuple[str, str]]:
    """(product, unit) pairs the pipeline knows for Cube; skipped when the file is not there yet."""
    if not PRODUCTS_FILE.exists():
        return set(CUBE_PRODUCTS)
    with PRODUCTS_FILE.open(encoding="utf-8", newline="") as handle:
        return {(row["product"], row["unit"]) for row in csv.DictReader(handle) if row["service"] == "cube"}


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
    validator = jsonschema.Draft7Validator({"$ref": f"#/definitions/{name}", "definitions": definitions})
    return validator.validate
