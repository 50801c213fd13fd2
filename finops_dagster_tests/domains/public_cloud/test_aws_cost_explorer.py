"""AWS Cost Explorer source: boto3 against a local server speaking CE's JSON 1.1 protocol.

The server is a pytest-httpserver answering `POST /` by `X-Amz-Target`; boto3 signs real SigV4
requests with fake credentials and applies its own retry policy (standard mode).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from finops_dagster.domains.public_cloud.aws_cost_explorer import AwsCostExplorer
from finops_dagster.http.errors import SourceError
from finops_dagster.settings import SettingError

TARGET = "AWSInsightsIndexService.GetCostAndUsage"
CONTENT_TYPE = "application/x-amz-json-1.1"
KEY_ID = "AKIAFINOPSTEST00001"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"
SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLEsessionTOKEN//never-logged"
OCTOBER = dt.date(2026, 10, 1)
LATER = dt.datetime(2026, 12, 2, 3, 0, tzinfo=dt.UTC)
DEFINITIONS = [{"Type": "TAG", "Key": "app-id"}, {"Type": "DIMENSION", "Key": "SERVICE"}]


def ce_answer(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type=CONTENT_TYPE)


def ce_error(code: str, status: int = 400, message: str = "refused") -> Response:
    return ce_answer({"__type": code, "message": message}, status)


def results(
    groups: list[tuple[str, str, str, str]], start: str = "2026-10-01", **extra: Any
) -> dict[str, Any]:
    """A GetCostAndUsage page: groups of (tag key, service, amount, unit) for the metric NetAmortizedCost."""
    return {
        "GroupDefinitions": DEFINITIONS,
        "ResultsByTime": [
            {
                "TimePeriod": {"Start": start, "End": "2026-11-01"},
                "Total": {},
                "Groups": [
                    {
                        "Keys": [tag, service],
                        "Metrics": {"NetAmortizedCost": {"Amount": amount, "Unit": unit}},
                    }
                    for tag, service, amount, unit in groups
                ],
                "Estimated": False,
            }
        ],
        "DimensionValueAttributes": [],
        **extra,
    }


def ce_calls(server: HTTPServer) -> list[Request]:
    return [request for request, _ in server.log if request.headers.get("X-Amz-Target") == TARGET]


def serve(server: HTTPServer, *answers: Response) -> None:
    """Answers GetCostAndUsage calls in turn (the last one for ever); anything else is a 400."""
    queue = list(answers)

    def handler(request: Request) -> Response:
        if request.headers.get("X-Amz-Target") != TARGET or CONTENT_TYPE not in request.headers.get(
            "Content-Type", ""
        ):
            return ce_error("UnknownOperationException")
        return queue.pop(0) if len(queue) > 1 else queue[0]

    server.expect_request("/", method="POST").respond_with_handler(handler)


@pytest.fixture
def ce_env(monkeypatch: pytest.MonkeyPatch, httpserver: HTTPServer) -> pytest.MonkeyPatch:
    for name in (
        "FINOPS_AWS_CE_METRIC",
        "FINOPS_PUBLIC_CLOUD_TAG_KEYS",
        "FINOPS_AWS_CE_REGION",
        "FINOPS_AWS_SESSION_TOKEN",
        "FINOPS_AWS_CE_RETRIES",
        "AWS_PROFILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    monkeypatch.setenv("FINOPS_AWS_CE_ENDPOINT_URL", httpserver.url_for("/"))
    monkeypatch.setenv("FINOPS_AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("FINOPS_AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("HTTP_TIMEOUT_MS", "5000")
    return monkeypatch


@pytest.fixture
def make_ce(ce_env: pytest.MonkeyPatch) -> Iterator[Callable[[], AwsCostExplorer]]:
    made: list[AwsCostExplorer] = []

    def make() -> AwsCostExplorer:
        made.append(AwsCostExplorer.from_env())
        return made[-1]

    yield make
    for source in made:
        source.close()


# --- over the wire -----------------------------------------------------------------------------------


def test_pages_follow_next_page_token_with_signed_requests(
    httpserver: HTTPServer, make_ce: Callable[[], AwsCostExplorer]
) -> None:
    serve(
        httpserver,
        ce_answer(
            results(
                [("app-id$PAYMENTS", "Amazon Elastic Compute Cloud - Compute", "1234.5678901234", "USD")],
                NextPageToken="page-2",
            )
        ),
        ce_answer(results([("app-id$", "AWS Support (Business)", "0.0000000001", "USD")])),
    )

    month = make_ce().read_month(OCTOBER, LATER)

    assert month.problems == []
    assert [(group.service_name, group.cost, dict(group.tags)) for group in month.groups] == [
        ("Amazon Elastic Compute Cloud - Compute", Decimal("1234.5678901234"), {"app-id": "PAYMENTS"}),
        ("AWS Support (Business)", Decimal("0.0000000001"), {}),
    ]
    assert month.line_items == 2
    calls = ce_calls(httpserver)
    assert len(calls) == 2
    bodies = [json.loads(request.get_data()) for request in calls]
    assert bodies[0] == {
        "TimePeriod": {"Start": "2026-10-01", "End": "2026-11-01"},
        "Granularity": "MONTHLY",
        "Metrics": ["NetAmortizedCost"],
        "GroupBy": [{"Type": "TAG", "Key": "app-id"}, {"Type": "DIMENSION", "Key": "SERVICE"}],
    }
    assert bodies[1] == {**bodies[0], "NextPageToken": "page-2"}
    for request in calls:
        authorization = request.headers["Authorization"]
        assert authorization.startswith(f"AWS4-HMAC-SHA256 Credential={KEY_ID}/")
        assert "/us-east-1/ce/aws4_request" in authorization
        assert "Signature=" in authorization
        assert SECRET_KEY not in authorization
        assert request.headers["X-Amz-Date"]


def test_the_current_month_ends_tomorrow_and_a_future_month_is_not_asked(
    httpserver: HTTPServer, make_ce: Callable[[], AwsCostExplorer], ce_env: pytest.MonkeyPatch
) -> None:
    ce_env.setenv("FINOPS_AWS_CE_METRIC", "UnblendedCost")
    ce_env.setenv("FINOPS_PUBLIC_CLOUD_TAG_KEYS", "application,app-id")
    serve(httpserver, ce_answer({**results([]), "GroupDefinitions": [{"Type": "TAG", "Key": "application"}]}))
    source = make_ce()
    now = dt.datetime(2026, 10, 17, 23, 30, tzinfo=dt.UTC)

    assert source.read_month(OCTOBER, now).groups == []
    assert source.read_month(dt.date(2026, 11, 1), now).groups == []

    (call,) = ce_calls(httpserver)
    body = json.loads(call.get_data())
    assert body["TimePeriod"] == {"Start": "2026-10-01", "End": "2026-10-18"}
    assert body["Metrics"] == ["UnblendedCost"]
    assert body["GroupBy"][0] == {"Type": "TAG", "Key": "application"}


def test_throttling_is_retried_by_botocore(
    httpserver: HTTPServer, make_ce: Callable[[], AwsCostExplorer]
) -> None:
    serve(
        httpserver,
        ce_error("ThrottlingException", message="Rate exceeded"),
        ce_answer(results([("app-id$CRM", "Amazon S3", "9.99", "USD")])),
    )

    month = make_ce().read_month(OCTOBER, LATER)

    assert [group.cost for group in month.groups] == [Decimal("9.99")]
    assert len(ce_calls(httpserver)) == 2


def test_throttling_past_the_retries_is_a_clear_failure(
    httpserver: HTTPServer, make_ce: Callable[[], AwsCostExplorer], ce_env: pytest.MonkeyPatch
) -> None:
    ce_env.setenv("FINOPS_AWS_CE_RETRIES", "1")
    serve(httpserver, ce_error("LimitExceededException", message="Rate exceeded"))

    with pytest.raises(SourceError) as raised:
        make_ce().read_month(OCTOBER, LATER)

    assert str(raised.value) == (
        "aws_cost_explorer: GetCostAndUsage: still throttled (LimitExceededException) after retries; "
        "raise FINOPS_AWS_CE_RETRIES or run later (HTTP 400, after 2 attempts)"
    )
    assert len(ce_calls(httpserver)) == 2


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("UnrecognizedClientException", 400, "authentication refused (UnrecognizedClientException)"),
        ("InvalidSignatureException", 403, "authentication refused (InvalidSignatureException)"),
        ("AccessDeniedException", 403, "access denied (AccessDeniedException); the identity needs ce:"),
    ],
)
def test_auth_errors_are_clear_and_never_show_a_credential(
    httpserver: HTTPServer,
    make_ce: Callable[[], AwsCostExplorer],
    ce_env: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    code: str,
    status: int,
    expected: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    ce_env.setenv("FINOPS_AWS_SESSION_TOKEN", SESSION_TOKEN)
    serve(httpserver, ce_error(code, status, message=f"The security token {KEY_ID} is invalid."))

    with pytest.raises(SourceError) as raised:
        make_ce().read_month(OCTOBER, LATER)

    message = str(raised.value)
    assert message.startswith(f"aws_cost_explorer: GetCostAndUsage: {expected}")
    assert f"HTTP {status}, after 1 attempt)" in message
    assert len(ce_calls(httpserver)) == 1  # an auth failure is not retried
    (call,) = ce_calls(httpserver)
    assert call.headers["X-Amz-Security-Token"] == SESSION_TOKEN  # the token was sent, and…
    logged = "\n".join(caplog.handler.format(r) for r in caplog.records if not r.name.startswith("werkzeug"))
    assert "botocore" in logged  # botocore did log at DEBUG…
    for secret in (SECRET_KEY, SESSION_TOKEN):
        assert secret not in message
        assert secret not in logged  # …but never a credential
    assert KEY_ID not in message


def test_an_unreachable_endpoint_is_a_clear_failure(ce_env: pytest.MonkeyPatch) -> None:
    ce_env.setenv("FINOPS_AWS_CE_ENDPOINT_URL", "http://127.0.0.1:1")
    ce_env.setenv("FINOPS_AWS_CE_RETRIES", "0")
    source = AwsCostExplorer.from_env()

    with pytest.raises(SourceError) as raised:
        source.read_month(OCTOBER, LATER)
    source.close()

    assert "Cost Explorer unreachable after retries (EndpointConnectionError)" in str(raised.value)
    assert "FINOPS_AWS_CE_ENDPOINT_URL" in str(raised.value)


def test_a_page_for_another_period_fails_the_read(
    httpserver: HTTPServer, make_ce: Callable[[], AwsCostExplorer]
) -> None:
    serve(httpserver, ce_answer(results([], start="2026-09-01")))

    with pytest.raises(SourceError, match="unexpected answer: results for a period starting '2026-09-01'"):
        make_ce().read_month(OCTOBER, LATER)


# --- settings ----------------------------------------------------------------------------------------


def test_from_env_defaults(make_ce: Callable[[], AwsCostExplorer]) -> None:
    source = make_ce()
    assert source.metric == "NetAmortizedCost"
    assert source.tag_key == "app-id"
    assert source.client.meta.region_name == "us-east-1"
    config = source.client.meta.config
    assert config.retries == {"total_max_attempts": 4, "mode": "standard"}
    assert config.connect_timeout == config.read_timeout == 5.0


@pytest.mark.parametrize(
    ("name", "value", "named"),
    [
        ("FINOPS_AWS_CE_METRIC", "UsageQuantity", "FINOPS_AWS_CE_METRIC"),
        ("FINOPS_AWS_SECRET_ACCESS_KEY", None, "FINOPS_AWS_SECRET_ACCESS_KEY"),
        ("FINOPS_AWS_ACCESS_KEY_ID", None, "FINOPS_AWS_ACCESS_KEY_ID"),
        ("FINOPS_AWS_CE_ENDPOINT_URL", "ce.local", "FINOPS_AWS_CE_ENDPOINT_URL"),
        ("FINOPS_AWS_CE_RETRIES", "many", "FINOPS_AWS_CE_RETRIES"),
        ("HTTP_TIMEOUT_MS", "0", "HTTP_TIMEOUT_MS"),
        ("FINOPS_PUBLIC_CLOUD_TAG_KEYS", ",", "FINOPS_PUBLIC_CLOUD_TAG_KEYS"),
        ("FINOPS_AWS_CE_CA_BUNDLE", "/nonexistent/ca.pem", "FINOPS_AWS_CE_CA_BUNDLE"),
    ],
)
def test_from_env_errors_name_the_variable(
    ce_env: pytest.MonkeyPatch, name: str, value: str | None, named: str
) -> None:
    if value is None:
        ce_env.delenv(name)
    else:
        ce_env.setenv(name, value)
    with pytest.raises(SettingError, match=named) as raised:
        AwsCostExplorer.from_env()
    assert SECRET_KEY not in str(raised.value)
