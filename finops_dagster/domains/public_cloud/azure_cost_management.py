"""Azure Cost Management Query API: a month's cost per application tag and service, for each scope.

`POST {scope}/providers/Microsoft.CostManagement/query?api-version=2023-03-01` with a `Custom`
timeframe over the month (up to `now` for the current month), granularity `None`, the sum of `Cost`,
grouped by the application tag (`TagKey`) and the `ServiceName` dimension. The Query API accepts at
most two groupings, so the subscription is not a grouping: when a scope is a subscription (or a
resource group) the groups carry it from the scope itself; for a management group or billing
scope they carry none. Configured scopes must not overlap (a management group and one of its
subscriptions would count the subscription twice).

Pages follow `properties.nextLink`, POSTing the same body again (never to another host). Rate
limits (429 with `x-ms-ratelimit-microsoft.costmanagement-*-retry-after` or `Retry-After`) are
waited out by the HTTP machinery within its retry budget. Costs are read from the JSON text as
`Decimal`, never through a binary float; `azure_cost_management_payloads` reads the pages (columns
by name, never by position).

Authentication: Entra ID client credentials (FINOPS_AZURE_COST_TENANT_ID, _CLIENT_ID,
_CLIENT_SECRET); these settings deliberately do not fall back to the organisation's OIDC_*
settings, so the internal identity provider's secret is never sent to Microsoft.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import httpx

from finops_dagster.domains.public_cloud.azure_cost_management_payloads import (
    SOURCE,
    next_link,
    parse_query_result,
)
from finops_dagster.domains.public_cloud.charges import ChargeGroup, ChargeProblem, ChargeTable, SourceMonth
from finops_dagster.domains.public_cloud.settings import application_tag_key
from finops_dagster.http.auth import OidcClientCredentials
from finops_dagster.http.client import HttpSource
from finops_dagster.http.errors import SourceError
from finops_dagster.http.pagination import follow
from finops_dagster.http.settings import HttpSettings, http_settings, required
from finops_dagster.releve import next_month
from finops_dagster.settings import SettingError, env_int, env_str

TOKEN_SOURCE = f"{SOURCE}: Entra ID token endpoint"
PREFIX = "FINOPS_AZURE_COST"
API_VERSION = "2023-03-01"
DEFAULT_URL = "https://management.azure.com"
DEFAULT_LOGIN_URL = "https://login.microsoftonline.com"
DEFAULT_TOKEN_SCOPE = "https://management.azure.com/.default"
COST_TYPES = ("AmortizedCost", "ActualCost")
SCOPE_FORMS = re.compile(
    r"^/(subscriptions/[^/?#]+(/resourceGroups/[^/?#]+)?"
    r"|providers/Microsoft\.Management/managementGroups/[^/?#]+"
    r"|providers/Microsoft\.Billing/billingAccounts/[^/?#]+(/[A-Za-z]+/[^/?#]+)*)$",
    re.IGNORECASE,
)
NO_CONTENT: dict[str, Any] = {"properties": {"columns": [], "rows": []}}


class EntraClientCredentials(OidcClientCredentials):
    """Client credentials against Entra ID; a refusal names this source's settings, not OIDC_*."""

    def fetch(self, http: httpx.Client) -> tuple[str, float]:
        try:
            return super().fetch(http)
        except SourceError as error:
            problem = (
                f"token request refused; check {PREFIX}_TENANT_ID, {PREFIX}_CLIENT_ID and "
                f"{PREFIX}_CLIENT_SECRET (an expired client secret is the usual cause)"
                if error.status is not None
                else error.problem
            )
            raise SourceError(
                TOKEN_SOURCE, problem, method="POST", path=error.path, status=error.status
            ) from None


class AzureCostManagement:
    """A month's Azure costs per application tag and service, over one or more scopes."""

    def __init__(
        self,
        client: HttpSource,
        scopes: Sequence[str],
        tag_key: str,
        cost_type: str = "AmortizedCost",
    ) -> None:
        if cost_type not in COST_TYPES:
            raise ValueError(f"cost type must be one of {', '.join(COST_TYPES)}, got {cost_type!r}")
        if not scopes:
            raise ValueError("at least one scope is needed")
        self.client = client
        self.scopes = [normalise_scope(scope) for scope in scopes]
        self.tag_key = tag_key
        self.cost_type = cost_type

    @classmethod
    def from_env(cls) -> Self:
        settings = azure_http_settings()
        tenant = required(f"{PREFIX}_TENANT_ID", "the Entra ID tenant of the Cost Management reader")
        if not re.fullmatch(r"[A-Za-z0-9.-]+", tenant):
            raise SettingError(f"{PREFIX}_TENANT_ID must be a tenant id or domain, got {tenant!r}")
        login_url = env_str(f"{PREFIX}_LOGIN_URL", DEFAULT_LOGIN_URL).rstrip("/")
        if not login_url.startswith(("https://", "http://")):
            raise SettingError(f"{PREFIX}_LOGIN_URL must be an http(s) URL")
        auth = EntraClientCredentials(
            f"{login_url}/{tenant}/oauth2/v2.0/token",
            required(f"{PREFIX}_CLIENT_ID", "the application (client) id of the Cost Management reader"),
            required(f"{PREFIX}_CLIENT_SECRET", "the client secret of the Cost Management reader"),
            env_str(f"{PREFIX}_TOKEN_SCOPE", DEFAULT_TOKEN_SCOPE),
        )
        cost_type = env_str(f"{PREFIX}_TYPE", "AmortizedCost")
        if cost_type not in COST_TYPES:
            raise SettingError(f"{PREFIX}_TYPE must be one of {', '.join(COST_TYPES)}, got {cost_type!r}")
        client = HttpSource(settings, auth, exact_numbers=True, no_content=NO_CONTENT)
        return cls(client, scopes_from_env(), application_tag_key(), cost_type)

    def query_body(self, month: dt.date, now: dt.datetime) -> dict[str, Any]:
        """The Query API request for `month`: from its first instant to its last, or to `now`."""
        start = dt.datetime.combine(month, dt.time(), tzinfo=dt.UTC)
        end = dt.datetime.combine(next_month(month), dt.time(), tzinfo=dt.UTC) - dt.timedelta(seconds=1)
        end = min(end, _utc(now).replace(microsecond=0))
        return {
            "type": self.cost_type,
            "timeframe": "Custom",
            "timePeriod": {"from": f"{start:%Y-%m-%dT%H:%M:%SZ}", "to": f"{end:%Y-%m-%dT%H:%M:%SZ}"},
            "dataset": {
                "granularity": "None",
                "aggregation": {"totalCost": {"name": "Cost", "function": "Sum"}},
                "grouping": [
                    {"type": "TagKey", "name": self.tag_key},
                    {"type": "Dimension", "name": "ServiceName"},
                ],
            },
        }

    def read_month(self, month: dt.date, now: dt.datetime, into: ChargeTable | None = None) -> SourceMonth:
        """The month's costs of every scope: a past month in full, the current month up to `now`.

        The provider groups by the application tag itself: its groups carry that one tag, and the
        domain allocates its few groups itself (`into` is not needed here).
        """
        _check_month(month)
        result = SourceMonth()
        if _utc(now) < dt.datetime.combine(month, dt.time(), tzinfo=dt.UTC):
            return result  # a month that has not started has no cost yet
        body = self.query_body(month, now)
        for scope in self.scopes:
            self._read_scope(scope, month, body, result)
        result.line_items = len(result.groups) + len(result.problems)
        return result

    def _read_scope(self, scope: str, month: dt.date, body: dict[str, Any], result: SourceMonth) -> None:
        path = f"{scope}/providers/Microsoft.CostManagement/query"
        pages = 0

        def fetch(cursor: str | None) -> tuple[list[ChargeGroup | ChargeProblem], str | None]:
            nonlocal pages
            pages += 1
            if cursor:
                response = self.client.request("POST", cursor, json_body=body)
            else:
                response = self.client.request(
                    "POST", path, params={"api-version": API_VERSION}, json_body=body
                )
            try:
                groups, problems = parse_query_result(
                    response.body, month=month, tag_key=self.tag_key, scope=scope, page=pages
                )
            except ValueError as error:
                raise SourceError(SOURCE, f"unexpected answer: {error}", method="POST", path=path) from None
            return [*groups, *problems], next_link(response.body)

        try:
            for item in follow(self.client.name, fetch):
                if isinstance(item, ChargeGroup):
                    result.groups.append(item)
                else:
                    result.problems.append(item)
        except SourceError as error:
            if error.status == 403 and error.source == self.client.name:
                raise SourceError(
                    SOURCE,
                    f"access forbidden on scope {scope}; the service principal needs the "
                    "Cost Management Reader role (or Reader) on it",
                    method="POST",
                    path=error.path,
                    status=403,
                    attempts=error.attempts,
                ) from None
            raise

    def close(self) -> None:
        self.client.close()


def normalise_scope(scope: str) -> str:
    """`/subscriptions/{id}`, a resource group, a management group or a billing scope; no host, no query."""
    text = "/" + scope.strip().strip("/")
    if not SCOPE_FORMS.match(text):
        raise ValueError(
            f"{scope!r} is not a Cost Management scope (/subscriptions/{{id}}, "
            "/providers/Microsoft.Management/managementGroups/{id}, "
            "/providers/Microsoft.Billing/billingAccounts/{id}…)"
        )
    return text


def scopes_from_env() -> list[str]:
    raw = required(f"{PREFIX}_SCOPES", "the Cost Management scopes to read, comma-separated")
    scopes: list[str] = []
    for part in (part for part in raw.split(",") if part.strip()):
        try:
            scope = normalise_scope(part)
        except ValueError as error:
            raise SettingError(f"{PREFIX}_SCOPES: {error}") from None
        if scope.lower() in (known.lower() for known in scopes):
            raise SettingError(f"{PREFIX}_SCOPES names {scope} twice")
        scopes.append(scope)
    if not scopes:
        raise SettingError(f"{PREFIX}_SCOPES names no scope")
    return scopes


def azure_http_settings() -> HttpSettings:
    """The machinery's settings under FINOPS_AZURE_COST_*, with the public endpoint as the default URL."""
    if os.environ.get(f"{PREFIX}_URL", "").strip():
        return http_settings(SOURCE, PREFIX)
    ca_bundle = os.environ.get(f"{PREFIX}_CA_BUNDLE") or os.environ.get("FINOPS_CA_BUNDLE") or None
    if ca_bundle and not Path(ca_bundle).is_file():
        raise SettingError(f"{PREFIX}_CA_BUNDLE / FINOPS_CA_BUNDLE: no such file {ca_bundle}")
    timeout_ms = env_int(f"{PREFIX}_TIMEOUT_MS", env_int("HTTP_TIMEOUT_MS", 30_000, minimum=1), minimum=1)
    return HttpSettings(
        source=SOURCE,
        base_url=DEFAULT_URL,
        timeout_s=timeout_ms / 1000,
        retries=env_int(f"{PREFIX}_RETRIES", env_int("HTTP_RETRIES", 3)),
        retry_budget_s=env_int(f"{PREFIX}_RETRY_BUDGET_S", 300, minimum=1),
        ca_bundle=ca_bundle,
        breaker_failures=env_int(f"{PREFIX}_BREAKER_FAILURES", 5, minimum=1),
        breaker_reset_s=env_int(f"{PREFIX}_BREAKER_RESET_S", 60, minimum=1),
    )


def _check_month(month: dt.date) -> None:
    if month.day != 1:
        raise ValueError(f"a month is given by its first day, got {month}")


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)
