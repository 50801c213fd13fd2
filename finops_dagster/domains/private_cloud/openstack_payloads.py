"""Nova's `GET /os-simple-tenant-usage` (microversion 2.40) body turned into typed usage per tenant.

Nova sums, per tenant, the usage of the servers it listed on the page: `total_vcpus_usage` in
vCPU-hours, `total_memory_mb_usage` in MiB-hours, `total_local_gb_usage` in GiB-hours and
`total_hours` in server-hours, over the `start`/`stop` period of the query. Since 2.40 the
listing is paginated over *servers* (`limit`/`marker`, next page in `tenant_usages_links`), so one
tenant can appear on two consecutive pages with part of its servers on each: parse every page,
then `merge_tenant_usages` the lot.

Pure parsing: no HTTP, no Dagster. A body that is not a tenant-usage listing raises `ValueError`
(the client reports a broken source); a malformed tenant entry becomes a `UsageProblem`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from finops_dagster.domains.private_cloud.problems import (
    UsageProblem,
    ValueProblem,
    as_raw,
    usage_number,
    utc_instant,
)

__all__ = [
    "TenantUsage",
    "UsageProblem",
    "merge_tenant_usages",
    "next_marker_link",
    "parse_tenant_usages",
]

# Nova's total field → TenantUsage attribute; the README of the samples gives the units.
TOTAL_FIELDS: tuple[tuple[str, str], ...] = (
    ("total_vcpus_usage", "vcpu_hours"),
    ("total_memory_mb_usage", "memory_mib_hours"),
    ("total_local_gb_usage", "local_gib_hours"),
    ("total_hours", "server_hours"),
)


@dataclass(frozen=True)
class TenantUsage:
    """One tenant's usage over the queried period (one page's share of it, until merged).

    `servers` counts the `server_usages` entries: Nova lists them only with `detailed=1`, so it is
    0 for a summary body even when the tenant had servers — the totals are what count.
    Timestamps are aware UTC (Nova writes them without an offset, in UTC).
    """

    tenant_id: str
    start: dt.datetime
    stop: dt.datetime
    vcpu_hours: Decimal
    memory_mib_hours: Decimal
    local_gib_hours: Decimal
    server_hours: Decimal
    servers: int
    entries: int = 1
    """How many page entries were merged into this one."""


def parse_tenant_usages(body: Any) -> tuple[list[TenantUsage], list[UsageProblem]]:
    """Every tenant entry of one page, as a `TenantUsage` or, when unusable, a `UsageProblem`.

    All the reasons of an entry are reported together, so one look at the reject explains it.
    Entries are returned in the body's order and are not merged (see `merge_tenant_usages`).
    """
    if not isinstance(body, dict):
        raise ValueError(
            f"os-simple-tenant-usage: expected a JSON object with a 'tenant_usages' list, "
            f"got {type(body).__name__}"
        )
    entries = body.get("tenant_usages")
    if not isinstance(entries, list):
        found = "no 'tenant_usages' key" if "tenant_usages" not in body else type(entries).__name__
        raise ValueError(
            f"os-simple-tenant-usage: expected a JSON object with a 'tenant_usages' list, got {found} "
            f"(keys: {', '.join(sorted(map(str, body))[:10]) or 'none'})"
        )
    usages: list[TenantUsage] = []
    problems: list[UsageProblem] = []
    for index, entry in enumerate(entries):
        parsed = _parse_entry(entry)
        if isinstance(parsed, TenantUsage):
            usages.append(parsed)
            continue
        tenant_id = entry.get("tenant_id") if isinstance(entry, dict) else None
        tenant_text = tenant_id.strip() if isinstance(tenant_id, str) else ""
        ref = tenant_text or f"tenant_usages[{index}]"
        problems.append(UsageProblem(ref=ref, reason="; ".join(parsed), raw=as_raw(entry)))
    return usages, problems


def _parse_entry(entry: Any) -> TenantUsage | list[str]:
    """The entry as a `TenantUsage`, or the list of reasons it cannot be one."""
    if not isinstance(entry, dict):
        return [f"tenant usage entry is not an object ({type(entry).__name__})"]
    reasons: list[str] = []
    tenant_id = entry.get("tenant_id")
    if tenant_id is None or (isinstance(tenant_id, str) and not tenant_id.strip()):
        reasons.append("tenant_id: missing")
    elif not isinstance(tenant_id, str):
        reasons.append(f"tenant_id: not a string ({type(tenant_id).__name__})")
    totals: dict[str, Decimal] = {}
    for source_name, attribute in TOTAL_FIELDS:
        try:
            totals[attribute] = usage_number(entry, source_name)
        except ValueProblem as problem:
            reasons.append(str(problem))
    instants: dict[str, dt.datetime] = {}
    for name in ("start", "stop"):
        try:
            instants[name] = utc_instant(entry.get(name), name)
        except ValueProblem as problem:
            reasons.append(str(problem))
    if len(instants) == 2 and instants["stop"] < instants["start"]:
        reasons.append(f"stop ({entry['stop']}) is before start ({entry['start']})")
    server_usages = entry.get("server_usages")
    if server_usages is not None and not isinstance(server_usages, list):
        reasons.append(f"server_usages: not a list ({type(server_usages).__name__})")
    if reasons or not isinstance(tenant_id, str):
        return reasons
    return TenantUsage(
        tenant_id=tenant_id.strip(),
        start=instants["start"],
        stop=instants["stop"],
        vcpu_hours=totals["vcpu_hours"],
        memory_mib_hours=totals["memory_mib_hours"],
        local_gib_hours=totals["local_gib_hours"],
        server_hours=totals["server_hours"],
        servers=len(server_usages) if isinstance(server_usages, list) else 0,
    )


def next_marker_link(body: Any) -> str | None:
    """The `href` of the `rel: "next"` link: the next page of a paginated listing, None on the last.

    A links member that is present but unreadable raises `ValueError` rather than answering None:
    ending the pagination early would silently drop the tenants of the remaining pages.
    """
    if not isinstance(body, dict):
        raise ValueError(f"os-simple-tenant-usage: expected a JSON object, got {type(body).__name__}")
    links = body.get("tenant_usages_links")
    if links is None:
        return None
    if not isinstance(links, list):
        raise ValueError(
            f"os-simple-tenant-usage: 'tenant_usages_links' is not a list ({type(links).__name__})"
        )
    for link in links:
        if not isinstance(link, dict):
            raise ValueError(
                f"os-simple-tenant-usage: a 'tenant_usages_links' entry is not an object: {link!r:.80}"
            )
        if link.get("rel") == "next":
            href = link.get("href")
            if not isinstance(href, str) or not href.strip():
                raise ValueError("os-simple-tenant-usage: the 'next' link has no href")
            return href.strip()
    return None


def merge_tenant_usages(items: Iterable[TenantUsage]) -> list[TenantUsage]:
    """One `TenantUsage` per tenant, summing the pages a tenant was split over, sorted by tenant_id.

    Pages partition the servers, so totals and server counts add up; the period is the union of
    the pages' periods (they are normally all the queried period).
    """
    merged: dict[str, TenantUsage] = {}
    for item in items:
        seen = merged.get(item.tenant_id)
        if seen is None:
            merged[item.tenant_id] = item
            continue
        merged[item.tenant_id] = TenantUsage(
            tenant_id=item.tenant_id,
            start=min(seen.start, item.start),
            stop=max(seen.stop, item.stop),
            vcpu_hours=seen.vcpu_hours + item.vcpu_hours,
            memory_mib_hours=seen.memory_mib_hours + item.memory_mib_hours,
            local_gib_hours=seen.local_gib_hours + item.local_gib_hours,
            server_hours=seen.server_hours + item.server_hours,
            servers=seen.servers + item.servers,
            entries=seen.entries + item.entries,
        )
    return [merged[tenant_id] for tenant_id in sorted(merged)]
