"""The OpenStack Nova usage parser against the real sample bodies and against each malformed shape.

Expected totals are computed here from the raw JSON by a separate plain loop (`Decimal(str(x))`),
so a parser bug cannot hide behind its own arithmetic.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from finops_dagster.domains.private_cloud.openstack_payloads import (
    TenantUsage,
    UsageProblem,
    merge_tenant_usages,
    next_marker_link,
    parse_tenant_usages,
)
from finops_dagster.domains.private_cloud.problems import UsageProblem as SharedUsageProblem
from finops_dagster_tests.support.samples import SAMPLES

OPENSTACK = SAMPLES / "openstack"
GET_ALL = OPENSTACK / "simple-tenant-usage-get-all.v2.40.json"
GET_DETAIL = OPENSTACK / "simple-tenant-usage-get-detail.v2.40.json"
UTC = dt.UTC
TENANT_A = "0000000e737461636b20342065000000"
TENANT_B = "6f70656e737461636b20342065766572"
DETAIL_NEXT = (
    "http://openstack.example.com/v2.1/6f70656e737461636b20342065766572/os-simple-tenant-usage"
    "?detailed=1&end=2016-10-12+18%3A22%3A04.868106&limit=1"
    "&marker=1f1deceb-17b5-4c04-84c7-e0d4499c8fe0&start=2016-10-12+18%3A22%3A04.868106"
)
NOVA_TOTALS = {
    "vcpu_hours": "total_vcpus_usage",
    "memory_mib_hours": "total_memory_mb_usage",
    "local_gib_hours": "total_local_gb_usage",
    "server_hours": "total_hours",
}


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def raw_sum(entries: list[dict[str, Any]], name: str) -> Decimal:
    """The independent reference: the raw JSON numbers summed exactly, one by one."""
    total = Decimal(0)
    for entry in entries:
        total += Decimal(str(entry[name]))
    return total


def tenant_entry(tenant_id: Any = TENANT_B, **overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "start": "2026-10-01T00:00:00",
        "stop": "2026-11-01T00:00:00",
        "total_hours": 744.0,
        "total_local_gb_usage": 14880.0,
        "total_memory_mb_usage": 1523712.0,
        "total_vcpus_usage": 1488.0,
    }
    if tenant_id is not None:
        entry["tenant_id"] = tenant_id
    entry.update(overrides)
    return entry


# --- OpenStack: samples --------------------------------------------------------------------------


def test_the_openstack_samples_are_the_two_expected_files() -> None:
    assert sorted(path.name for path in OPENSTACK.glob("*.json")) == [GET_ALL.name, GET_DETAIL.name]


@pytest.mark.parametrize("path", sorted(OPENSTACK.glob("*.json")), ids=lambda path: path.name)
def test_every_openstack_sample_parses_to_its_exact_raw_totals(path: Path) -> None:
    body = load(path)
    raw_entries = body["tenant_usages"]

    usages, problems = parse_tenant_usages(body)

    assert problems == []
    assert [usage.tenant_id for usage in usages] == [entry["tenant_id"] for entry in raw_entries]
    for attribute, name in NOVA_TOTALS.items():
        assert sum((getattr(usage, attribute) for usage in usages), Decimal(0)) == raw_sum(raw_entries, name)
    assert [usage.servers for usage in usages] == [len(entry["server_usages"]) for entry in raw_entries]
    for usage, entry in zip(usages, raw_entries, strict=True):
        assert usage.start == dt.datetime.fromisoformat(entry["start"]).replace(tzinfo=UTC)
        assert usage.stop == dt.datetime.fromisoformat(entry["stop"]).replace(tzinfo=UTC)


def test_get_all_sample_gives_two_tenants_with_their_units_and_windows() -> None:
    usages, problems = parse_tenant_usages(load(GET_ALL))

    window = (
        dt.datetime(2018, 10, 9, 11, 29, 4, 166194, tzinfo=UTC),
        dt.datetime(2018, 10, 9, 12, 29, 4, 166194, tzinfo=UTC),
    )
    assert problems == []
    assert usages == [
        TenantUsage(TENANT_A, *window, Decimal("1.0"), Decimal("512.0"), Decimal("1.0"), Decimal("1.0"), 1),
        TenantUsage(TENANT_B, *window, Decimal("2.0"), Decimal("1024.0"), Decimal("2.0"), Decimal("2.0"), 2),
    ]
    assert next_marker_link(load(GET_ALL)) is None


def test_detail_sample_gives_one_tenant_and_the_next_marker_link() -> None:
    body = load(GET_DETAIL)

    usages, problems = parse_tenant_usages(body)

    assert problems == []
    assert usages == [
        TenantUsage(
            tenant_id=TENANT_B,
            start=dt.datetime(2012, 10, 8, 20, 10, 44, 587336, tzinfo=UTC),
            stop=dt.datetime(2012, 10, 8, 21, 10, 44, 587336, tzinfo=UTC),
            vcpu_hours=Decimal("1"),
            memory_mib_hours=Decimal("512"),
            local_gib_hours=Decimal("1"),
            server_hours=Decimal("1"),
            servers=1,
        )
    ]
    assert next_marker_link(body) == DETAIL_NEXT


def test_float_totals_become_the_decimal_the_json_wrote_not_the_binary_expansion() -> None:
    body = json.loads(
        '{"tenant_usages": [{"tenant_id": "t", "start": "2026-10-01T00:00:00", "stop": "2026-10-02T00:00:00",'
        ' "total_hours": 0.1, "total_local_gb_usage": 7042690751.326794, "total_memory_mb_usage": 1e-07,'
        ' "total_vcpus_usage": 3}]}'
    )

    [usage], problems = parse_tenant_usages(body)

    assert problems == []
    assert str(usage.server_hours) == "0.1"
    assert usage.server_hours != Decimal.from_float(0.1)
    assert str(usage.local_gib_hours) == "7042690751.326794"
    assert usage.memory_mib_hours == Decimal("0.0000001")
    assert usage.vcpu_hours == Decimal(3)
    assert usage.servers == 0  # summary body: no server_usages


def test_offset_and_z_timestamps_are_normalised_to_utc() -> None:
    body = {"tenant_usages": [tenant_entry(start="2026-10-01T02:00:00+02:00", stop="2026-11-01T00:00:00Z")]}

    [usage], _ = parse_tenant_usages(body)

    assert usage.start == dt.datetime(2026, 10, 1, 0, 0, tzinfo=UTC)
    assert usage.stop == dt.datetime(2026, 11, 1, 0, 0, tzinfo=UTC)


# --- OpenStack: pagination and merge -------------------------------------------------------------


def test_a_tenant_split_over_two_pages_is_summed_once_merged() -> None:
    page_1 = load(GET_DETAIL)  # TENANT_B, instance-2, and a next link
    page_2 = {
        "tenant_usages": [
            {
                "start": "2012-10-08T20:10:44.587336",
                "stop": "2012-10-08T21:10:44.587336",
                "tenant_id": TENANT_B,
                "total_hours": 0.5,
                "total_local_gb_usage": 10.0,
                "total_memory_mb_usage": 1024.0,
                "total_vcpus_usage": 1.0,
                "server_usages": [{"instance_id": "i-3", "hours": 0.5, "vcpus": 2, "memory_mb": 2048}],
            },
            tenant_entry(TENANT_A, start="2012-10-08T20:10:44.587336", stop="2012-10-08T21:10:44.587336"),
        ]
    }
    usages_1, problems_1 = parse_tenant_usages(page_1)
    usages_2, problems_2 = parse_tenant_usages(page_2)
    assert (problems_1, problems_2) == ([], [])
    assert next_marker_link(page_1) == DETAIL_NEXT
    assert next_marker_link(page_2) is None

    merged = merge_tenant_usages(usages_1 + usages_2)

    window = (
        dt.datetime(2012, 10, 8, 20, 10, 44, 587336, tzinfo=UTC),
        dt.datetime(2012, 10, 8, 21, 10, 44, 587336, tzinfo=UTC),
    )
    assert merged == [
        TenantUsage(
            TENANT_A,
            *window,
            Decimal("1488.0"),
            Decimal("1523712.0"),
            Decimal("14880.0"),
            Decimal("744.0"),
            0,
        ),
        TenantUsage(
            TENANT_B,
            *window,
            Decimal("2.0"),
            Decimal("1536.0"),
            Decimal("11.0"),
            Decimal("1.5"),
            2,
            entries=2,
        ),
    ]
    entries = page_1["tenant_usages"] + page_2["tenant_usages"]
    assert sum(usage.entries for usage in merged) == len(entries)  # every page entry, once
    for attribute, name in NOVA_TOTALS.items():
        assert sum((getattr(usage, attribute) for usage in merged), Decimal(0)) == raw_sum(entries, name)


def test_merge_spans_the_union_of_periods_and_sorts_by_tenant() -> None:
    usages = parse_tenant_usages(load(GET_ALL))[0] + parse_tenant_usages(load(GET_DETAIL))[0]

    merged = merge_tenant_usages(reversed(usages))

    assert [usage.tenant_id for usage in merged] == [TENANT_A, TENANT_B]
    tenant_b = merged[1]
    assert tenant_b.start == dt.datetime(2012, 10, 8, 20, 10, 44, 587336, tzinfo=UTC)
    assert tenant_b.stop == dt.datetime(2018, 10, 9, 12, 29, 4, 166194, tzinfo=UTC)
    assert tenant_b.vcpu_hours == Decimal("3.0")
    assert tenant_b.memory_mib_hours == Decimal("1536.0")
    assert tenant_b.servers == 3
    assert merged[0] == usages[0]
    assert merge_tenant_usages([]) == []


def test_next_marker_link_ignores_other_rels_and_refuses_unreadable_links() -> None:
    previous_only = {"tenant_usages": [], "tenant_usages_links": [{"rel": "prev", "href": "p"}]}
    padded_next = {"tenant_usages": [], "tenant_usages_links": [{"rel": "next", "href": " n "}]}
    assert next_marker_link(previous_only) is None
    assert next_marker_link(padded_next) == "n"
    with pytest.raises(ValueError, match="'tenant_usages_links' is not a list"):
        next_marker_link({"tenant_usages": [], "tenant_usages_links": {"rel": "next"}})
    with pytest.raises(ValueError, match="the 'next' link has no href"):
        next_marker_link({"tenant_usages": [], "tenant_usages_links": [{"rel": "next"}]})
    with pytest.raises(ValueError, match="entry is not an object"):
        next_marker_link({"tenant_usages": [], "tenant_usages_links": ["next"]})


# --- OpenStack: malformed input ------------------------------------------------------------------


def test_malformed_tenant_entries_become_problems_and_the_good_ones_survive() -> None:
    nan_body = json.loads('{"tenant_id": "nan-tenant", "total_local_gb_usage": NaN}')
    entries: list[Any] = [
        tenant_entry("good-1"),
        tenant_entry(None),
        tenant_entry("negative", total_vcpus_usage=-1.0),
        tenant_entry("text", total_memory_mb_usage="abc"),
        tenant_entry(**nan_body),
        tenant_entry("infinite", total_hours=float("inf")),
        tenant_entry("boolean", total_hours=True),
        tenant_entry("absent", total_hours=None),
        tenant_entry("  "),
        tenant_entry(42),
        tenant_entry("bad-start", start="yesterday"),
        tenant_entry("reversed", start="2026-11-01T00:00:00", stop="2026-10-01T00:00:00"),
        tenant_entry("bad-servers", server_usages={"a": 1}),
        tenant_entry("many", total_vcpus_usage=-2, total_memory_mb_usage="abc", stop=None),
        "not an object",
        tenant_entry("good-2", total_vcpus_usage="2.5"),
    ]

    usages, problems = parse_tenant_usages({"tenant_usages": entries})

    assert [usage.tenant_id for usage in usages] == ["good-1", "good-2"]
    assert usages[1].vcpu_hours == Decimal("2.5")
    assert [(problem.ref, problem.reason) for problem in problems] == [
        ("tenant_usages[1]", "tenant_id: missing"),
        ("negative", "total_vcpus_usage: negative (-1.0)"),
        ("text", "total_memory_mb_usage: not a number ('abc')"),
        ("nan-tenant", "total_local_gb_usage: NaN"),
        ("infinite", "total_hours: infinite (inf)"),
        ("boolean", "total_hours: not a number (bool)"),
        ("absent", "total_hours: missing"),
        ("tenant_usages[8]", "tenant_id: missing"),
        ("tenant_usages[9]", "tenant_id: not a string (int)"),
        ("bad-start", "start: not an ISO 8601 timestamp ('yesterday')"),
        ("reversed", "stop (2026-10-01T00:00:00) is before start (2026-11-01T00:00:00)"),
        ("bad-servers", "server_usages: not a list (dict)"),
        (
            "many",
            "total_vcpus_usage: negative (-2); total_memory_mb_usage: not a number ('abc'); stop: missing",
        ),
        ("tenant_usages[14]", "tenant usage entry is not an object (str)"),
    ]
    assert problems[0].raw == entries[1]
    assert problems[2].raw is entries[3]
    assert problems[-1].raw == {"value": "not an object"}
    assert all(isinstance(problem, SharedUsageProblem) for problem in problems)
    assert UsageProblem is SharedUsageProblem


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([{"tenant_id": TENANT_A}], "expected a JSON object with a 'tenant_usages' list, got list"),
        (None, "got NoneType"),
        ("<html>502 Bad Gateway</html>", "got str"),
        ({}, "got no 'tenant_usages' key"),
        ({"tenant_usage": {"tenant_id": TENANT_A}}, r"got no 'tenant_usages' key \(keys: tenant_usage\)"),
        ({"tenant_usages": {"tenant_id": TENANT_A}}, "got dict"),
        ({"tenant_usages": None}, "got NoneType"),
    ],
)
def test_a_body_that_is_not_a_tenant_usage_listing_raises(body: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        parse_tenant_usages(body)
    assert str(raised.value).startswith("os-simple-tenant-usage: ")


def test_an_empty_listing_is_empty_not_an_error() -> None:
    assert parse_tenant_usages({"tenant_usages": []}) == ([], [])
