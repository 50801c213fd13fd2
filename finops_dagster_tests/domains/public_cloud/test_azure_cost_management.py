"""Azure Cost Management Query API source: a local Entra ID + Query API over real sockets.

Backoff waits go to a recorder and time to a fake clock, so rate limits are checked without waiting.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from finops_dagster.domains.public_cloud.azure_cost_management import (
    NO_CONTENT,
    AzureCostManagement,
    EntraClientCredentials,
)
from finops_dagster.domains.public_cloud.azure_cost_management_payloads import SOURCE
from finops_dagster.domains.public_cloud.charges import ChargeGroup
from finops_dagster.http.client import HttpSource
from finops_dagster.http.errors import SourceError
from finops_dagster.http.settings import HttpSettings
from finops_dagster.settings import SettingError
from finops_dagster_tests.support.fake_time import FakeTime

TENANT = "contoso.onmicrosoft.com"
TOKEN_PATH = f"/{TENANT}/oauth2/v2.0/token"
CLIENT_SECRET = "entra-secret-Zq8~do-not-log"
ACCESS_TOKEN = "eyJ0eXAi.entra-access-token"
SCOPE = "/subscriptions/00000000-0000-0000-0000-000000000001"
QUERY_PATH = f"{SCOPE}/providers/Microsoft.CostManagement/query"
OCTOBER = dt.date(2026, 10, 1)
LATER = dt.datetime(2026, 12, 2, 3, 0, tzinfo=dt.UTC)
COLUMNS = [
    {"name": "Cost", "type": "Number"},
    {"name": "TagKey", "type": "String"},
    {"name": "TagValue", "type": "String"},
    {"name": "ServiceName", "type": "String"},
    {"name": "Currency", "type": "String"},
]


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
def make_azure(httpserver: HTTPServer, fake: FakeTime) -> Iterator[Callable[..., AzureCostManagement]]:
    made: list[AzureCostManagement] = []

    def make(scopes: tuple[str, ...] = (SCOPE,), cost_type: str = "AmortizedCost") -> AzureCostManagement:
        settings = HttpSettings(SOURCE, httpserver.url_for("/").rstrip("/"), 5.0, 3, 300.0, None, 5, 60.0)
        auth = EntraClientCredentials(
            httpserver.url_for(TOKEN_PATH), "reader-app", CLIENT_SECRET, "https://management.azure.com/.default"
        )
        client = HttpSource(
            settings, auth, sleep=fake.sleep, clock=fake.clock, rng=random.Random(7),
            exact_numbers=True, no_content=NO_CONTENT,
        )
        source = AzureCostManagement(client, scopes, "app-id", cost_type)
        made.append(source)
        return source

    yield make
    for source in made:
        source.close()


def page(rows: list[list[Any]], next_link: str | None = None) -> str:
    """A Query API answer as text; costs are written as given (strings here become JSON numbers)."""
    body = {"properties": {"nextLink": next_link, "columns": COLUMNS, "rows": ["ROWS"]}}
    text = json.dumps(body)
    rendered = ", ".join(
        "[" + ", ".join(str(cell) if i == 0 else json.dumps(cell) for i, cell in enumerate(row)) + "]"
        for row in rows
    )
    return text.replace('["ROWS"]', f"[{rendered}]")


def answer(text: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(text, status=status, headers=headers, content_type="application/json")


def token_endpoint(counter: list[Request]) -> Callable[[Request], Response]:
    def handler(request: Request) -> Response:
        counter.append(request)
        if request.form.get("client_secret") != CLIENT_SECRET:
            return answer(json.dumps({"error": "invalid_client"}), 401)
        return answer(json.dumps({"access_token": ACCESS_TOKEN, "token_type": "Bearer", "expires_in": 3599}))

    return handler


def authorised(handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
    def check(request: Request) -> Response:
        if request.headers.get("Authorization") != f"Bearer {ACCESS_TOKEN}":
            return answer(json.dumps({"error": {"code": "AuthenticationFailed"}}), 401)
        return handler(request)

    return check


def queries(server: HTTPServer) -> list[Request]:
    return [request for request, _ in server.log if "/providers/Microsoft.CostManagement/" in request.path]


# --- over the wire -----------------------------------------------------------------------------------


def test_pages_follow_next_link_with_the_same_body(
    httpserver: HTTPServer, make_azure: Callable[..., AzureCostManagement]
) -> None:
    tokens: list[Request] = []
    second = httpserver.url_for(QUERY_PATH) + "?api-version=2023-03-01&$skiptoken=PAGE2"
    third = httpserver.url_for(QUERY_PATH) + "?api-version=2023-03-01&$skiptoken=PAGE3"
    pages = {
        None: page(
            [
                ["12.3456789012345678901", "app-id", "PAYMENTS", "Storage", "EUR"],
                ["0.1", "app-id", "", "Bandwidth", "EUR"],
            ],
            second,
        ),
        "PAGE2": page([["100", "app-id", "CRM", "Virtual Machines", "EUR"]], third),
        "PAGE3": page([["0.000000000000000001", "app-id", "CRM", "Azure Monitor", "EUR"]]),
    }

    def query(request: Request) -> Response:
        return answer(pages[request.args.get("$skiptoken")])

    httpserver.expect_request(TOKEN_PATH, method="POST").respond_with_handler(token_endpoint(tokens))
    httpserver.expect_request(QUERY_PATH, method="POST").respond_with_handler(authorised(query))

    month = make_azure().read_month(OCTOBER, LATER)

    assert month.problems == []
    assert [group.cost for group in month.groups] == [
        Decimal("12.3456789012345678901"),
        Decimal("0.1"),
        Decimal("100"),
        Decimal("0.000000000000000001"),
    ]
    assert sum((group.cost for group in month.groups), Decimal(0)) == Decimal("112.4456789012345678911")
    assert month.groups[0] == ChargeGroup(
        source="azure_cost_management",
        provider="Microsoft",
        service_name="Storage",
        service_category=None,
        charge_category=None,
        billing_currency="EUR",
        cost=Decimal("12.3456789012345678901"),
        line_items=1,
        sub_account_id="00000000-0000-0000-0000-000000000001",
        tags={"app-id": "PAYMENTS"},
    )
    assert month.groups[1].tags == {}
    calls = queries(httpserver)
    assert [request.args.get("$skiptoken") for request in calls] == [None, "PAGE2", "PAGE3"]
    assert calls[0].args["api-version"] == "2023-03-01"
    bodies = [json.loads(request.get_data()) for request in calls]
    assert bodies[0] == bodies[1] == bodies[2]
    assert bodies[0] == {
        "type": "AmortizedCost",
        "timeframe": "Custom",
        "timePeriod": {"from": "2026-10-01T00:00:00Z", "to": "2026-10-31T23:59:59Z"},
        "dataset": {
            "granularity": "None",
            "aggregation": {"totalCost": {"name": "Cost", "function": "Sum"}},
            "grouping": [
                {"type": "TagKey", "name": "app-id"},
                {"type": "Dimension", "name": "ServiceName"},
            ],
        },
    }
    assert len(tokens) == 1
    assert tokens[0].form["scope"] == "https://management.azure.com/.default"
    assert tokens[0].form["grant_type"] == "client_credentials"


def test_the_current_month_is_asked_up_to_now_and_a_future_month_not_at_all(
    httpserver: HTTPServer, make_azure: Callable[..., AzureCostManagement]
) -> None:
    httpserver.expect_request(TOKEN_PATH, method="POST").respond_with_handler(token_endpoint([]))
    httpserver.expect_request(QUERY_PATH, method="POST").respond_with_handler(
        authorised(lambda request: answer(page([])))
    )
    source = make_azure(cost_type="ActualCost")
    now = dt.datetime(2026, 10, 17, 8, 30, 12, 999, tzinfo=dt.UTC)

    assert source.read_month(OCTOBER, now).groups == []
    assert source.read_month(dt.date(2026, 11, 1), now).groups == []

    (call,) = queries(httpserver)
    body = json.loads(call.get_data())
    assert body["type"] == "ActualCost"
    assert body["timePeriod"] == {"from": "2026-10-01T00:00:00Z", "to": "2026-10-17T08:30:12Z"}


def test_rate_limit_waits_for_the_cost_management_retry_header(
    httpserver: HTTPServer, make_azure: Callable[..., AzureCostManagement], fake: FakeTime
) -> None:
    answers = [
        answer(
            json.dumps({"error": {"code": "429"}}),
            429,
            {"x-ms-ratelimit-microsoft.costmanagement-qpu-retry-after": "17"},
        ),
        answer(
            json.dumps({"error": {"code": "429"}}),
            429,
            {"x-ms-ratelimit-microsoft.costmanagement-entity-retry-after": "4"},
        ),
        answer(page([["5.5", "app-id", "PAY", "Storage", "USD"]])),
    ]
    httpserver.expect_request(TOKEN_PATH, method="POST").respond_with_handler(token_endpoint([]))
    httpserver.expect_request(QUERY_PATH, method="POST").respond_with_handler(
        authorised(lambda request: answers.pop(0))
    )

    month = make_azure().read_month(OCTOBER, LATER)

    assert [group.cost for group in month.groups] == [Decimal("5.5")]
    assert fake.sleeps == [17.0, 4.0]
    assert len(queries(httpserver)) == 3


def test_401_fetches_a_new_token_once(
    httpserver: HTTPServer, make_azure: Callable[..., AzureCostManagement]
) -> None:
    tokens: list[Request] = []
    answers = [
        answer(json.dumps({"error": {"code": "ExpiredAuthenticationToken"}}), 401),
        answer(page([["1", "app-id", "PAY", "Storage", "USD"]])),
    ]
    httpserver.expect_request(TOKEN_PATH, method="POST").respond_with_handler(token_endpoint(tokens))
    httpserver.expect_request(QUERY_PATH, method="POST").respond_with_handler(lambda request: answers.pop(0))

    month = make_azure().read_month(OCTOBER, LATER)

    assert [group.cost for group in month.groups] == [Decimal("1")]
    assert len(tokens) == 2


def test_403_names_the_scope_and_the_role_and_no_secret(
    httpserver: HTTPServer,
    make_azure: Callable[..., AzureCostManagement],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    httpserver.expect_request(TOKEN_PATH, method="POST").respond_with_handler(token_endpoint([]))
    httpserver.expect_request(QUERY_PATH, method="POST").respond_with_handler(
        authorised(lambda request: answer(json.dumps({"error": {"code": "RBACAccessDenied"}}), 403))
    )

    with pytest.raises(SourceError) as raised:
        make_azure().read_month(OCTOBER, LATER)

    message = str(raised.value)
    assert "access forbidden on scope /subscriptions/00000000-0000-0000-0000-000000000001" in message
    assert "Cost Management Reader" in message
    assert "HTTP 403" in message
    assert len(queries(httpserver)) == 1  # no retry
    logged = "\n".join(caplog.handler.format(r) for r in caplog.records if not r.name.startswith("werkzeug"))
    for secret in (CLIENT_SECRET, ACCESS_TOKEN):
        assert secret not in message
        assert secret not in logged


def test_a_refused_client_secret_names_the_settings_and_hides_the_secret(
    httpserver: HTTPServer, fake: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-secret-7Yq~never-shown"
    httpserver.expect_request(TOKEN_PATH, method="POST").respond_with_handler(token_endpoint([]))
    settings = HttpSettings(SOURCE, httpserver.url_for("/").rstrip("/"), 5.0, 3, 300.0, None, 5, 60.0)
    auth = EntraClientCredentials(httpserver.url_for(TOKEN_PATH), "reader-app", wrong, None)
    client = HttpSource(
        settings, auth, sleep=fake.sleep, clock=fake.clock, exact_numbers=True, no_content=NO_CONTENT
    )
    source = AzureCostManagement(client, [SCOPE], "app")

    with pytest.raises(SourceError) as raised:
        source.read_month(OCTOBER, LATER)
    source.close()

    message = str(raised.value)
    assert message.startswith("azure_cost_management: Entra ID token endpoint: token request refused")
    assert "FINOPS_AZURE_COST_CLIENT_SECRET" in message
    assert "HTTP 401" in message
    logged = "\n".join(caplog.handler.format(r) for r in caplog.records if not r.name.startswith("werkzeug"))
    assert wrong not in message
    assert wrong not in logged
    assert queries(httpserver) == []


def test_a_next_link_to_another_host_is_not_followed(
    httpserver: HTTPServer, make_azure: Callable[..., AzureCostManagement]
) -> None:
    elsewhere = "https://management.example.net/providers/Microsoft.CostManagement/query?$skiptoken=X"
    httpserver.expect_request(TOKEN_PATH, method="POST").respond_with_handler(token_endpoint([]))
    httpserver.expect_request(QUERY_PATH, method="POST").respond_with_handler(
        authorised(lambda request: answer(page([["1", "app-id", "A", "Storage", "USD"]], elsewhere)))
    )

    with pytest.raises(SourceError, match="refusing to call another host"):
        make_azure().read_month(OCTOBER, LATER)


def test_no_content_is_an_empty_month_and_a_malformed_answer_fails(
    httpserver: HTTPServer, make_azure: Callable[..., AzureCostManagement]
) -> None:
    answers = [Response(status=204), answer(json.dumps({"value": []}))]
    httpserver.expect_request(TOKEN_PATH, method="POST").respond_with_handler(token_endpoint([]))
    httpserver.expect_request(QUERY_PATH, method="POST").respond_with_handler(
        authorised(lambda request: answers.pop(0))
    )
    source = make_azure()

    assert source.read_month(OCTOBER, LATER).groups == []
    with pytest.raises(SourceError, match="unexpected answer: no 'properties' object"):
        source.read_month(OCTOBER, LATER)


def test_several_scopes_are_read_in_turn(
    httpserver: HTTPServer, make_azure: Callable[..., AzureCostManagement]
) -> None:
    group = "/providers/Microsoft.Management/managementGroups/finops-mg"
    httpserver.expect_request(TOKEN_PATH, method="POST").respond_with_handler(token_endpoint([]))
    httpserver.expect_request(QUERY_PATH, method="POST").respond_with_handler(
        authorised(lambda request: answer(page([["1", "app-id", "A", "Storage", "USD"]])))
    )
    group_query = f"{group}/providers/Microsoft.CostManagement/query"
    httpserver.expect_request(group_query, method="POST").respond_with_handler(
        authorised(lambda request: answer(page([["2", "app-id", "B", "Storage", "USD"]])))
    )

    month = make_azure(scopes=(SCOPE, group.lstrip("/") + "/")).read_month(OCTOBER, LATER)

    assert [(group.cost, group.sub_account_id) for group in month.groups] == [
        (Decimal("1"), "00000000-0000-0000-0000-000000000001"),
        (Decimal("2"), None),
    ]
    assert month.line_items == 2


# --- settings ----------------------------------------------------------------------------------------


AZURE_ENV = {
    "FINOPS_AZURE_COST_TENANT_ID": TENANT,
    "FINOPS_AZURE_COST_CLIENT_ID": "reader-app",
    "FINOPS_AZURE_COST_CLIENT_SECRET": CLIENT_SECRET,
    "FINOPS_AZURE_COST_SCOPES": f"{SCOPE}, /providers/Microsoft.Management/managementGroups/mg1",
}


@pytest.fixture
def azure_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("FINOPS_AZURE_COST_URL", "FINOPS_PUBLIC_CLOUD_TAG_KEYS", "FINOPS_AZURE_COST_TYPE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in AZURE_ENV.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_from_env_defaults(azure_env: pytest.MonkeyPatch) -> None:
    source = AzureCostManagement.from_env()
    try:
        assert source.client.settings.base_url == "https://management.azure.com"
        assert source.scopes == [SCOPE, "/providers/Microsoft.Management/managementGroups/mg1"]
        assert source.tag_key == "app-id"
        assert source.cost_type == "AmortizedCost"
        auth = source.client.auth
        assert isinstance(auth, EntraClientCredentials)
        assert auth.token_url == f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"
    finally:
        source.close()


def test_from_env_overrides(azure_env: pytest.MonkeyPatch) -> None:
    azure_env.setenv("FINOPS_AZURE_COST_URL", "http://127.0.0.1:9/")
    azure_env.setenv("FINOPS_PUBLIC_CLOUD_TAG_KEYS", " application , app-id")
    azure_env.setenv("FINOPS_AZURE_COST_TYPE", "ActualCost")
    source = AzureCostManagement.from_env()
    try:
        assert source.client.settings.base_url == "http://127.0.0.1:9"
        assert source.tag_key == "application"
        assert source.cost_type == "ActualCost"
    finally:
        source.close()


@pytest.mark.parametrize(
    ("name", "value", "named"),
    [
        ("FINOPS_AZURE_COST_TENANT_ID", None, "FINOPS_AZURE_COST_TENANT_ID"),
        ("FINOPS_AZURE_COST_CLIENT_ID", None, "FINOPS_AZURE_COST_CLIENT_ID"),
        ("FINOPS_AZURE_COST_CLIENT_SECRET", None, "FINOPS_AZURE_COST_CLIENT_SECRET"),
        ("FINOPS_AZURE_COST_SCOPES", None, "FINOPS_AZURE_COST_SCOPES"),
        ("FINOPS_AZURE_COST_SCOPES", "https://evil.example/subscriptions/x", "FINOPS_AZURE_COST_SCOPES"),
        ("FINOPS_AZURE_COST_SCOPES", f"{SCOPE},{SCOPE}/", "FINOPS_AZURE_COST_SCOPES"),
        ("FINOPS_AZURE_COST_TYPE", "Usage", "FINOPS_AZURE_COST_TYPE"),
        ("FINOPS_AZURE_COST_URL", "management.azure.com", "FINOPS_AZURE_COST_URL"),
        ("FINOPS_PUBLIC_CLOUD_TAG_KEYS", " , ", "FINOPS_PUBLIC_CLOUD_TAG_KEYS"),
        ("HTTP_TIMEOUT_MS", "soon", "HTTP_TIMEOUT_MS"),
    ],
)
def test_from_env_errors_name_the_variable(
    azure_env: pytest.MonkeyPatch, name: str, value: str | None, named: str
) -> None:
    if value is None:
        azure_env.delenv(name)
    else:
        azure_env.setenv(name, value)
    with pytest.raises(SettingError, match=named) as raised:
        AzureCostManagement.from_env()
    assert CLIENT_SECRET not in str(raised.value)
