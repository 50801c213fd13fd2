"""The access log never keeps a token sent in the query string (text or JSON logs)."""

from __future__ import annotations

import logging

import pytest

from finops_dagster.api.access_log import redact_path
from finops_dagster_tests.support.api_mart import Published
from finops_dagster_tests.support.live_api import live_api, settings_for
from finops_dagster_tests.support.oidc_issuer import Issuer


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_a_query_string_token_is_redacted_from_the_access_log(
    published: Published, issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = issuer.token()
    collect = Collect()
    access = logging.getLogger("uvicorn.access")
    with live_api(settings_for(monkeypatch, published.url, issuer), access_log=True) as api:
        access.addHandler(collect)
        level = access.level
        access.setLevel(logging.INFO)  # the test server logs at warning level
        try:
            api.get("/api/v1/costs/domains", params={"access_token": token, "page_size": "5"})
            api.get("/api/v1/costs/domains", params={"domain": token})
        finally:
            access.removeHandler(collect)
            access.setLevel(level)
    assert len(collect.lines) == 2
    assert all(token not in line and token.split(".")[1] not in line for line in collect.lines)
    assert "access_token=REDACTED" in collect.lines[0] and "page_size=5" in collect.lines[0]
    assert "domain=REDACTED" in collect.lines[1]  # shaped as a JWT, whatever its name


def test_redaction_keeps_what_is_not_a_credential() -> None:
    assert redact_path("/api/v1/costs/domains") == "/api/v1/costs/domains"
    assert redact_path("/a?from=2025-01&to=2025-03") == "/a?from=2025-01&to=2025-03"
    assert redact_path("/a?api_key=s3cr3t&client_secret=x&id_token=y") == (
        "/a?api_key=REDACTED&client_secret=REDACTED&id_token=REDACTED"
    )
