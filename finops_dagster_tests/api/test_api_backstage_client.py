"""The real Cost Insights client: the README's client (clients/backstage/client.ts) compiles against the
plugin's own types with `tsc --strict`, and every Backstage route's answers validate against JSON
Schemas generated from those types. Needs node and npm (`make install` runs `npm ci` there; this test
runs it too when the packages are missing); skipped only when node is not installed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from finops_dagster_tests.support.live_api import LiveApi

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "backstage"
INTERVALS = ["R2/P1M/2025-05-01", "R2/P3M/2025-04-01", "R2/P30D/2025-05-01", "R2/P90D/2025-05-01"]

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


def _npm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["npm", *args], cwd=CLIENT, capture_output=True, text=True, timeout=900, check=False
    )


@pytest.fixture(scope="module")
def installed() -> None:
    if not (CLIENT / "node_modules" / "@backstage" / "plugin-cost-insights").is_dir():
        done = _npm("ci", "--no-audit", "--no-fund")
        assert done.returncode == 0, done.stderr[-2000:]


@pytest.fixture(scope="module")
def schemas(installed: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    output = tmp_path_factory.mktemp("schemas")
    done = subprocess.run(
        ["node", "generate-schemas.mjs", str(output)], cwd=CLIENT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    yield {path.stem: json.loads(path.read_text()) for path in output.glob("*.json")}


def test_the_readme_client_compiles_strictly_against_the_plugin(installed: None) -> None:
    done = _npm("run", "--silent", "typecheck")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_no_any_on_the_response_path() -> None:
    source = (CLIENT / "client.ts").read_text()
    code = re.sub(r"//[^\n]*", "", re.sub(r"/\*.*?\*/", "", source, flags=re.DOTALL))
    assert not re.search(r"\bany\b", code)
    assert "const body: unknown = await response.json()" in code


def test_the_readme_shows_the_client() -> None:
    readme = (CLIENT.parents[1] / "README.md").read_text()
    assert "clients/backstage/client.ts" in readme
    for name in ("class FinopsGrowthAlert extends ProjectGrowthAlert", "get title(): string"):
        assert name in readme and name in (CLIENT / "client.ts").read_text()


def _valid(schema: dict[str, Any], body: Any) -> None:
    jsonschema.validate(body, schema, cls=jsonschema.Draft7Validator)


def test_every_backstage_route_answers_the_plugins_types(api: LiveApi, schemas: dict[str, Any]) -> None:
    def get(path: str, **params: str) -> Any:
        response = api.get("/api/v1/backstage" + path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    _valid(schemas["LastCompleteBillingDateBody"], get("/last-complete-billing-date"))
    groups = get("/groups")
    _valid(schemas["GroupsBody"], groups)
    for group in (g["id"] for g in groups):
        _valid(schemas["GroupProjectsBody"], get(f"/groups/{group}/projects"))
        _valid(schemas["AlertsBody"], get(f"/groups/{group}/alerts"))
        _valid(schemas["AlertsBody"], get(f"/groups/{group}/alerts", period="2025-03"))
        for intervals in INTERVALS:
            _valid(schemas["CostBody"], get(f"/groups/{group}/cost", intervals=intervals))
    for project in ("PAYMENTS", "SEARCH", "BACKUP"):  # SEARCH starts in March, BACKUP ends in February
        for intervals in INTERVALS:
            _valid(schemas["CostBody"], get(f"/projects/{project}/cost", intervals=intervals))
    for family in ("OL_COMPUTE", "OL_STORAGE", "NT_SCM", "PC_COMPUTE"):  # the last two have no cost
        for scope in ({}, {"group": "GRP-A"}, {"project": "BILLING"}):
            entity = get(f"/products/{family}/insights", intervals=INTERVALS[0], **scope)
            _valid(schemas["ProductInsightsBody"], entity)
    alerts = get("/groups/GRP-A/alerts", period="2025-04")
    assert alerts, "the test data has alerts in April"
    _valid(schemas["AlertsBody"], alerts)


def test_the_schemas_catch_what_the_plugin_forbids(schemas: dict[str, Any]) -> None:
    """The generated schemas are strict where the plugin is: a null ratio or trendline, a point
    without its amount, a null group name or billing date are all refused."""
    cost = {"id": "g", "aggregation": [{"date": "2025-01-01", "amount": 1.0}], "change": {"amount": 1.0}}
    _valid(schemas["CostBody"], cost)
    for broken in (
        {**cost, "change": {"amount": 1.0, "ratio": None}},
        {**cost, "trendline": None},
        {**cost, "aggregation": [{"date": "2025-01-01"}]},
    ):
        with pytest.raises(jsonschema.ValidationError):
            _valid(schemas["CostBody"], broken)
    with pytest.raises(jsonschema.ValidationError):
        _valid(schemas["GroupsBody"], [{"id": "g", "name": None}])
    with pytest.raises(jsonschema.ValidationError):
        _valid(schemas["LastCompleteBillingDateBody"], {"date": None})
