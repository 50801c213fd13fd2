"""The OpenCost allocation parser against the real sample bodies and against each malformed shape.

Expected totals are computed here from the raw JSON by a separate plain loop (`Decimal(str(x))`),
so a parser bug cannot hide behind its own arithmetic.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from finops_dagster.domains.private_cloud.opencost_payloads import (
    IDLE_KEY,
    UNALLOCATED_KEY,
    Allocation,
    parse_allocation_sets,
)
from finops_dagster_tests.support.samples import SAMPLES

OPENCOST = SAMPLES / "opencost"
ALLOCATION = OPENCOST / "allocation_compute_window2d_aggregate_namespace.json"
SWAGGER = OPENCOST / "swagger.json"

UTC = dt.UTC
OPENCOST_NUMBERS = {
    "cpu_core_hours": "cpuCoreHours",
    "ram_byte_hours": "ramByteHours",
    "pv_byte_hours": "pvByteHours",
    "gpu_hours": "gpuHours",
    "total_cost": "totalCost",
}


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def raw_sum(entries: list[dict[str, Any]], name: str) -> Decimal:
    """The independent reference: the raw JSON numbers summed exactly, one by one."""
    total = Decimal(0)
    for entry in entries:
        total += Decimal(str(entry[name]))
    return total


def swagger_example() -> str:
    """The 200 example of /allocation/compute, which the spec carries as a JSON *string*."""
    spec = load(SWAGGER)
    response = spec["paths"]["/allocation/compute"]["get"]["responses"]["200"]
    value = response["content"]["application/json"]["examples"]["0"]["value"]
    assert isinstance(value, str)
    return value


def allocation_entry(**overrides: Any) -> dict[str, Any]:
    """The sample's kube-system allocation, altered."""
    entry = copy.deepcopy(load(ALLOCATION)["data"][0]["kube-system"])
    entry.update(overrides)
    return entry


def opencost_body(*sets: dict[str, Any] | None) -> dict[str, Any]:
    return {"code": 200, "status": "success", "data": list(sets)}


# --- OpenCost: samples ---------------------------------------------------------------------------


def test_allocation_sample_parses_to_its_exact_raw_totals() -> None:
    body = load(ALLOCATION)
    raw_entries = [entry for allocation_set in body["data"] for entry in allocation_set.values()]

    allocations, problems = parse_allocation_sets(body)

    assert problems == []
    assert [allocation.key for allocation in allocations] == ["kube-system", "opencost", "prometheus"]
    for attribute, name in OPENCOST_NUMBERS.items():
        parsed_total = sum((getattr(allocation, attribute) for allocation in allocations), Decimal(0))
        assert parsed_total == raw_sum(raw_entries, name)
    assert sum((a.total_cost for a in allocations), Decimal(0)) == Decimal("0.456113")
    assert sum((a.cpu_core_hours for a in allocations), Decimal(0)) == Decimal("22.548026")
    assert sum((a.ram_byte_hours for a in allocations), Decimal(0)) == Decimal("12319888334.702093")
    assert {(a.window_start, a.window_end) for a in allocations} == {
        (dt.datetime(2023, 1, 18, 11, 38, 45, tzinfo=UTC), dt.datetime(2023, 1, 20, 11, 38, 45, tzinfo=UTC))
    }
    assert allocations[0] == Allocation(
        key="kube-system",
        window_start=dt.datetime(2023, 1, 18, 11, 38, 45, tzinfo=UTC),
        window_end=dt.datetime(2023, 1, 20, 11, 38, 45, tzinfo=UTC),
        cpu_core_hours=Decimal("21.588536"),
        ram_byte_hours=Decimal("7042690751.326794"),
        pv_byte_hours=Decimal(0),
        gpu_hours=Decimal(0),
        total_cost=Decimal("0.425469"),
        properties={"cluster": "cluster-one", "namespace": "kube-system"},
    )
    assert allocations[1].properties == {
        "cluster": "cluster-one",
        "node": "ip-192-168-20-42.ap-southeast-2.compute.internal",
        "controller": "opencost",
        "controllerKind": "deployment",
        "namespace": "opencost",
        "pod": "opencost-75dc7dcc49-xdx5t",
        "providerID": "i-064548f89b9d35c11",
    }


def test_the_example_embedded_in_the_swagger_parses_like_the_sample() -> None:
    text = swagger_example()
    body = json.loads(text)
    assert body == load(ALLOCATION)

    allocations, problems = parse_allocation_sets(body)

    assert problems == []
    assert allocations == parse_allocation_sets(load(ALLOCATION))[0]
    raw_entries = list(body["data"][0].values())
    assert sum((a.total_cost for a in allocations), Decimal(0)) == raw_sum(raw_entries, "totalCost")
    assert sum((a.total_cost for a in allocations), Decimal(0)) == Decimal("0.456113")


def test_a_client_decoding_floats_as_decimal_keeps_the_written_digits() -> None:
    body = json.loads(swagger_example(), parse_float=Decimal)

    allocations, problems = parse_allocation_sets(body)

    assert problems == []
    opencost = allocations[1]
    assert str(opencost.cpu_core_hours) == "0.959490"  # the swagger writes 0.959490, the sample 0.95949
    assert str(opencost.total_cost) == "0.030644"
    assert sum((a.total_cost for a in allocations), Decimal(0)) == Decimal("0.456113")


# --- OpenCost: idle, unallocated, several steps, properties ---------------------------------------


def test_idle_and_unallocated_are_returned_as_ordinary_allocations_over_every_step() -> None:
    day_1 = {"start": "2026-10-01T00:00:00Z", "end": "2026-10-02T00:00:00Z"}
    day_2 = {"start": "2026-10-02T00:00:00Z", "end": "2026-10-03T00:00:00Z"}
    body = opencost_body(
        {
            "team-a": allocation_entry(window=day_1, totalCost=1.25, pvs={"c1/pv-1": {"byteHours": 3.0}}),
            IDLE_KEY: allocation_entry(window=day_1, totalCost=0.75, cpuCoreHours=12.5, properties=None),
        },
        None,  # a step without data
        {
            UNALLOCATED_KEY: allocation_entry(window=day_2, totalCost=0.1, rawAllocationOnly={"cpuMax": 1}),
            "team-a": allocation_entry(window=day_2, totalCost=2.5, pvByteHours=1073741824.0, gpuHours=0.25),
        },
    )

    allocations, problems = parse_allocation_sets(body)

    assert problems == []
    assert [(a.key, a.window_start.day, a.total_cost) for a in allocations] == [
        ("team-a", 1, Decimal("1.25")),
        (IDLE_KEY, 1, Decimal("0.75")),
        (UNALLOCATED_KEY, 2, Decimal("0.1")),
        ("team-a", 2, Decimal("2.5")),
    ]
    assert (IDLE_KEY, UNALLOCATED_KEY) == ("__idle__", "__unallocated__")
    assert allocations[1].cpu_core_hours == Decimal("12.5")
    assert allocations[1].properties == {}
    assert allocations[3].pv_byte_hours == Decimal("1073741824.0")
    assert allocations[3].gpu_hours == Decimal("0.25")
    assert allocations[3].window_end == dt.datetime(2026, 10, 3, tzinfo=UTC)
    assert sum((a.total_cost for a in allocations), Decimal(0)) == Decimal("4.60")


def test_label_annotation_and_service_properties_are_flattened_with_opencost_prefixes() -> None:
    properties = {
        "cluster": "cluster-one",
        "namespace": "shop",
        "services": ["web", "api"],
        "labels": {"app": "checkout", "team": "payments"},
        "annotations": {"owner": "finops@example.org"},
        "namespaceLabels": {"cost-center": "CC-42"},
        "namespaceAnnotations": None,
    }
    body = opencost_body({"checkout": allocation_entry(properties=properties)})

    [allocation], problems = parse_allocation_sets(body)

    assert problems == []
    assert allocation.properties == {
        "cluster": "cluster-one",
        "namespace": "shop",
        "services": "web,api",
        "label:app": "checkout",
        "label:team": "payments",
        "annotation:owner": "finops@example.org",
        "namespaceLabel:cost-center": "CC-42",
    }


# --- OpenCost: malformed input -------------------------------------------------------------------


def test_malformed_allocations_become_problems_and_the_good_ones_survive() -> None:
    nan_entry = json.loads('{"ramByteHours": NaN}')
    no_gpu = allocation_entry()
    del no_gpu["gpuHours"]
    allocation_set = {
        "good": allocation_entry(),
        "negative": allocation_entry(totalCost=-0.5),
        "text": allocation_entry(cpuCoreHours="abc"),
        "nan": allocation_entry(**nan_entry),
        "no-gpu": no_gpu,
        "no-window": allocation_entry(window=None),
        "bad-window": allocation_entry(window={"start": "2023-01-18T11:38:45Z", "end": "soon"}),
        "reversed": allocation_entry(window={"start": "2023-01-20T00:00:00Z", "end": "2023-01-18T00:00:00Z"}),
        "bad-properties": allocation_entry(properties=["cluster-one"]),
        "nested-property": allocation_entry(properties={"cluster": {"name": "x"}}),
        "scalar": 0.5,
        "": allocation_entry(),
    }

    allocations, problems = parse_allocation_sets(opencost_body(allocation_set))

    assert [allocation.key for allocation in allocations] == ["good"]
    assert [(problem.ref, problem.reason) for problem in problems] == [
        ("data[0]/negative", "totalCost: negative (-0.5)"),
        ("data[0]/text", "cpuCoreHours: not a number ('abc')"),
        ("data[0]/nan", "ramByteHours: NaN"),
        ("data[0]/no-gpu", "gpuHours: missing"),
        ("data[0]/no-window", "window: missing"),
        ("data[0]/bad-window", "window.end: not an ISO 8601 timestamp ('soon')"),
        (
            "data[0]/reversed",
            "window.end (2023-01-18T00:00:00Z) is before window.start (2023-01-20T00:00:00Z)",
        ),
        ("data[0]/bad-properties", "properties: not an object (list)"),
        ("data[0]/nested-property", "properties.cluster: unexpected object"),
        ("data[0]/scalar", "allocation is not an object (float)"),
        ("data[0]/", "key: empty"),
    ]
    assert problems[0].raw is allocation_set["negative"]
    assert problems[9].raw == {"value": 0.5}
    # Nothing lost: cost parsed + cost carried by the problems' raw entries = the source's cost.
    parsed_cost = sum((a.total_cost for a in allocations), Decimal(0))
    rejected_cost = sum(
        (Decimal(str(p.raw["totalCost"])) for p in problems if "totalCost" in p.raw), Decimal(0)
    )
    assert parsed_cost + rejected_cost == raw_sum(
        [entry for entry in allocation_set.values() if isinstance(entry, dict)], "totalCost"
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"code": 400, "data": None, "message": "error parsing window (lastcentury): illegal window"},
            r"answered code 400: error parsing window \(lastcentury\): illegal window",
        ),
        (
            {"code": 500, "status": "error", "message": "Prometheus query failed: context deadline exceeded"},
            "answered code 500: Prometheus query failed: context deadline exceeded",
        ),
        ({"code": 200, "status": "error", "message": "partial"}, "answered status 'error': partial"),
        ({"code": "200", "data": []}, r"answered code '200' \(no message\)"),
        ({"status": "success", "data": []}, r"answered code None \(no message\)"),
        ({"code": 200, "status": "success"}, "got no 'data' key"),
        ({"code": 200, "data": {"kube-system": {}}}, "'data' to be a list of allocation sets, got dict"),
        ({"code": 200, "data": [["kube-system"]]}, r"data\[0\] is not an allocation set \(a map\), got list"),
        ([{"code": 200}], "expected a JSON object, got list"),
        ("upstream connect error", "expected a JSON object, got str"),
    ],
)
def test_an_opencost_error_or_foreign_body_raises_with_its_message(body: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        parse_allocation_sets(body)
    assert str(raised.value).startswith("OpenCost allocation: ")


def test_a_very_long_opencost_message_is_cut_to_stay_readable() -> None:
    with pytest.raises(ValueError) as raised:
        parse_allocation_sets({"code": 500, "message": "x" * 5000})
    assert str(raised.value) == "OpenCost allocation: answered code 500: " + "x" * 300


def test_an_empty_allocation_response_is_empty_not_an_error() -> None:
    assert parse_allocation_sets(opencost_body()) == ([], [])
    assert parse_allocation_sets(opencost_body({}, None)) == ([], [])
