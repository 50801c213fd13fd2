"""OpenStack Nova usage (`GET /os-simple-tenant-usage`, microversion 2.40) with Keystone auth.

Per tenant over the month's window: vCPU-hours, RAM MiB-hours (→ GiB-hours), local disk GiB-hours.
Nova computes usage from instance records, so a past month can be asked again later. Tenant names
(which the mapping rules read) come from Keystone's project list.
Settings: FINOPS_OPENSTACK_URL (compute endpoint, …/v2.1), FINOPS_OPENSTACK_AUTH_URL (Keystone v3),
FINOPS_OPENSTACK_APPLICATION_CREDENTIAL_ID / _SECRET, or FINOPS_OPENSTACK_AUTH=token with
FINOPS_OPENSTACK_TOKEN; FINOPS_OPENSTACK_PAGE_SIZE (default 500).
"""

from __future__ import annotations

import datetime as dt
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

import httpx

from finops_dagster.domains.private_cloud.openstack_payloads import (
    TenantUsage,
    merge_tenant_usages,
    next_marker_link,
    parse_tenant_usages,
)
from finops_dagster.domains.private_cloud.problems import UsageProblem
from finops_dagster.http.auth import Auth, CachedToken, StaticToken
from finops_dagster.http.client import HttpSource, JsonResponse
from finops_dagster.http.errors import SourceError
from finops_dagster.http.pagination import by_next_url
from finops_dagster.http.settings import http_settings, required
from finops_dagster.priced_usage import MeteredUsage
from finops_dagster.releve import next_month
from finops_dagster.settings import SettingError, env_int

SOURCE = "openstack"
PREFIX = "FINOPS_OPENSTACK"
NOVA_MICROVERSION = "2.40"
MIB_PER_GIB = Decimal(1024)
NOVA_PRODUCTS = ("PC_VCPU_HOUR", "PC_RAM_GIB_HOUR", "PC_LOCAL_DISK_GIB_HOUR")
"""What each tenant entry measures: vCPU-hours, RAM GiB-hours, local disk GiB-hours."""


class KeystoneToken(CachedToken):
    """A Keystone v3 token from an application credential, sent as X-Auth-Token."""

    header = "X-Auth-Token"

    def __init__(self, auth_url: str, credential_id: str, credential_secret: str) -> None:
        super().__init__()
        self.auth_url = auth_url.rstrip("/")
        self._credential_id = credential_id
        self._credential_secret = credential_secret

    def fetch(self, http: httpx.Client) -> tuple[str, float]:
        body = {
            "auth": {
                "identity": {
                    "methods": ["application_credential"],
                    "application_credential": {"id": self._credential_id, "secret": self._credential_secret},
                }
            }
        }
        url = f"{self.auth_url}/auth/tokens"
        try:
            response = http.post(url, json=body)
        except httpx.HTTPError as error:
            raise SourceError(
                "Keystone", f"unreachable ({type(error).__name__})", method="POST", path=httpx.URL(url).path
            ) from None
        token = response.headers.get("X-Subject-Token")
        if response.status_code not in (200, 201) or not token:
            raise SourceError(
                "Keystone",
                "token request refused; check the application credential",
                method="POST",
                path=httpx.URL(url).path,
                status=response.status_code,
            )
        return token, _lifetime(response)


def _lifetime(response: httpx.Response) -> float:
    try:
        expires = dt.datetime.fromisoformat(response.json()["token"]["expires_at"].replace("Z", "+00:00"))
    except (ValueError, KeyError, TypeError):
        return 3600.0
    return max((expires - dt.datetime.now(dt.UTC)).total_seconds(), 0.0)


def openstack_auth_from_env() -> tuple[Auth, str | None]:
    """The compute API's auth, and Keystone's URL when there is one (for project names)."""
    kind = (os.environ.get(f"{PREFIX}_AUTH") or "keystone").strip().lower()
    if kind == "token":
        token = required(f"{PREFIX}_TOKEN", "FINOPS_OPENSTACK_AUTH=token needs the token")
        return StaticToken(token, "X-Auth-Token"), os.environ.get(f"{PREFIX}_AUTH_URL") or None
    if kind != "keystone":
        raise SettingError(f"{PREFIX}_AUTH must be keystone or token, got {kind!r}")
    auth_url = required(f"{PREFIX}_AUTH_URL", "the Keystone v3 URL of OpenStack")
    return KeystoneToken(
        auth_url,
        required(f"{PREFIX}_APPLICATION_CREDENTIAL_ID", "the Keystone application credential of OpenStack"),
        required(
            f"{PREFIX}_APPLICATION_CREDENTIAL_SECRET", "the Keystone application credential of OpenStack"
        ),
    ), auth_url


class OpenStackUsage:
    """The month's tenant usage from Nova, as metered usage of the private-cloud products."""

    def __init__(self, compute: HttpSource, identity: HttpSource | None, page_size: int) -> None:
        self.compute = compute
        self.identity = identity
        self.page_size = page_size
        self._received: Counter[dt.date] = Counter()

    def records_received(self, month: dt.date) -> int:
        """Records the month's pages held: one per product each tenant entry measures (three), counted
        as each page arrived, before any entry was read."""
        return self._received[month] * len(NOVA_PRODUCTS)

    @classmethod
    def from_env(cls) -> OpenStackUsage:
        auth, auth_url = openstack_auth_from_env()
        settings = http_settings(SOURCE, PREFIX)
        compute = HttpSource(settings, auth)
        identity = None
        if auth_url:
            identity = HttpSource(replace(settings, source="Keystone", base_url=auth_url.rstrip("/")), auth)
        return cls(compute, identity, env_int(f"{PREFIX}_PAGE_SIZE", 500, minimum=1))

    def tenant_usages(self, month: dt.date, now: dt.datetime) -> tuple[list[TenantUsage], list[UsageProblem]]:
        start = dt.datetime(month.year, month.month, 1, tzinfo=dt.UTC)
        end = min(dt.datetime.combine(next_month(month), dt.time(), tzinfo=dt.UTC), now)
        params = {"start": _nova_time(start), "end": _nova_time(end), "detailed": 1, "limit": self.page_size}
        usages: list[TenantUsage] = []
        problems: list[UsageProblem] = []
        self._received[month] = 0

        def items_of(body: Any) -> list[Any]:
            entries = body.get("tenant_usages") if isinstance(body, dict) else None
            self._received[month] += len(entries) if isinstance(entries, list) else 0
            try:
                parsed, page_problems = parse_tenant_usages(body)
            except ValueError as error:
                raise SourceError(
                    SOURCE, f"unexpected answer: {error}", path="/os-simple-tenant-usage"
                ) from None
            return [*parsed, *page_problems]

        def next_of(response: JsonResponse) -> str | None:
            try:
                return next_marker_link(response.body)
            except ValueError as error:
                raise SourceError(
                    SOURCE, f"unreadable next link: {error}", path="/os-simple-tenant-usage"
                ) from None

        headers = {"X-OpenStack-Nova-API-Version": NOVA_MICROVERSION}
        for item in by_next_url(
            self.compute, "/os-simple-tenant-usage", params, items_of, next_of, headers=headers
        ):
            (usages if isinstance(item, TenantUsage) else problems).append(item)
        return merge_tenant_usages(usages), problems

    def project_names(self) -> dict[str, str]:
        """Tenant id → name from Keystone; empty when there is no Keystone to ask."""
        if self.identity is None:
            return {}
        body = self.identity.get("/projects").body
        projects = body.get("projects", []) if isinstance(body, dict) else []
        return {p["id"]: p["name"] for p in projects if isinstance(p, dict) and p.get("id") and p.get("name")}

    def metered(self, month: dt.date, now: dt.datetime) -> Iterator[MeteredUsage | UsageProblem]:
        usages, problems = self.tenant_usages(month, now)
        names = self.project_names()
        yield from (replace(problem, records=len(NOVA_PRODUCTS)) for problem in problems)
        for usage in usages:
            tenant = names.get(usage.tenant_id, usage.tenant_id)
            fields = {"tenant": tenant, "tenant_id": usage.tenant_id}
            quantities = (usage.vcpu_hours, usage.memory_mib_hours / MIB_PER_GIB, usage.local_gib_hours)
            for product_id, quantity in zip(NOVA_PRODUCTS, quantities, strict=True):
                yield MeteredUsage(SOURCE, tenant, product_id, quantity, fields=fields, records=usage.entries)

    def close(self) -> None:
        self.compute.close()
        if self.identity is not None:
            self.identity.close()


def _nova_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).replace(tzinfo=None).isoformat(timespec="microseconds")
