"""OpenCost's `GET /allocation/compute` body turned into typed allocations.

The body is `{"code": 200, "status": "success", "data": [...]}` where `data` is a list of
allocation sets, one per `step` of the queried window, each a map from the aggregate's value
(a namespace, a `label:app` value, ...) to an allocation. Numbers are JSON floats; `pvs` and
`rawAllocationOnly` can be null and are not read.

Pure parsing: no HTTP, no Dagster. A body that is an OpenCost error or not an allocation listing
raises `ValueError` with OpenCost's own message (the client reports a broken source); a malformed
allocation becomes a `UsageProblem`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from finops_dagster.domains.private_cloud.problems import (
    UsageProblem,
    ValueProblem,
    as_raw,
    usage_number,
    utc_instant,
)

__all__ = ["IDLE_KEY", "UNALLOCATED_KEY", "Allocation", "UsageProblem", "parse_allocation_sets"]

# OpenCost's reserved aggregate values: the cluster's unused capacity, and workloads lacking the
# aggregated property (e.g. no `app` label). Returned like any other key; the mapping decides.
IDLE_KEY = "__idle__"
UNALLOCATED_KEY = "__unallocated__"

# OpenCost field → Allocation attribute.
NUMERIC_FIELDS: tuple[tuple[str, str], ...] = (
    ("cpuCoreHours", "cpu_core_hours"),
    ("ramByteHours", "ram_byte_hours"),
    ("pvByteHours", "pv_byte_hours"),
    ("gpuHours", "gpu_hours"),
    ("totalCost", "total_cost"),
)

# Map-valued properties, flattened with OpenCost's own aggregate prefixes (`label:app`), so a
# mapping rule can name a property exactly the way the `aggregate` parameter does.
MAP_PROPERTIES: dict[str, str] = {
    "labels": "label:",
    "annotations": "annotation:",
    "namespaceLabels": "namespaceLabel:",
    "namespaceAnnotations": "namespaceAnnotation:",
}

_MESSAGE_LIMIT = 300


@dataclass(frozen=True)
class Allocation:
    """One aggregate value's consumption and cost over one step window of OpenCost.

    `key` is the allocation set's map key, which may be `__idle__` or `__unallocated__`.
    The window is the step's `window` (aware UTC), not the allocation's own `start`/`end`, which
    only cover the minutes that had data. `total_cost` is in OpenCost's configured currency.
    `properties` are flat strings: scalar properties as they are, `labels`/`annotations` (and the
    namespace ones) as `label:<name>`/`annotation:<name>`, `services` comma-joined.
    """

    key: str
    window_start: dt.datetime
    window_end: dt.datetime
    cpu_core_hours: Decimal
    ram_byte_hours: Decimal
    pv_byte_hours: Decimal
    gpu_hours: Decimal
    total_cost: Decimal
    properties: dict[str, str] = field(hash=False)


def parse_allocation_sets(body: Any) -> tuple[list[Allocation], list[UsageProblem]]:
    """Every allocation of every set, as an `Allocation` or, when unusable, a `UsageProblem`.

    `__idle__` and `__unallocated__` are returned as ordinary allocations with those keys: whether
    idle cost is spread, charged to the platform or set aside is a policy applied by the mapping,
    not a parsing decision, and dropping them here would lose cost (docs/architecture.md, invariant 4).
    Allocations are returned set by set, in each set's key order. A null set (a step with no
    data) contributes nothing. A problem's `ref` is `data[<set index>]/<key>`.
    """
    if not isinstance(body, dict):
        raise ValueError(f"OpenCost allocation: expected a JSON object, got {type(body).__name__}")
    code = body.get("code")
    message = body.get("message")
    detail = f": {str(message)[:_MESSAGE_LIMIT]}" if message else " (no message)"
    if isinstance(code, bool) or code != 200:
        raise ValueError(f"OpenCost allocation: answered code {code!r}{detail}")
    status = body.get("status")
    if status is not None and status != "success":
        raise ValueError(f"OpenCost allocation: answered status {status!r}{detail}")
    data = body.get("data")
    if not isinstance(data, list):
        found = "no 'data' key" if "data" not in body else type(data).__name__
        raise ValueError(f"OpenCost allocation: expected 'data' to be a list of allocation sets, got {found}")
    allocations: list[Allocation] = []
    problems: list[UsageProblem] = []
    for set_index, allocation_set in enumerate(data):
        if allocation_set is None:
            continue
        if not isinstance(allocation_set, dict):
            raise ValueError(
                f"OpenCost allocation: data[{set_index}] is not an allocation set (a map), "
                f"got {type(allocation_set).__name__}"
            )
        for key, entry in allocation_set.items():
            parsed = _parse_allocation(str(key), entry)
            if isinstance(parsed, Allocation):
                allocations.append(parsed)
            else:
                problems.append(
                    UsageProblem(ref=f"data[{set_index}]/{key}", reason="; ".join(parsed), raw=as_raw(entry))
                )
    return allocations, problems


def _parse_allocation(key: str, entry: Any) -> Allocation | list[str]:
    """The entry as an `Allocation`, or the list of reasons it cannot be one."""
    if not isinstance(entry, dict):
        return [f"allocation is not an object ({type(entry).__name__})"]
    reasons: list[str] = []
    if not key.strip():
        reasons.append("key: empty")
    numbers: dict[str, Decimal] = {}
    for source_name, attribute in NUMERIC_FIELDS:
        try:
            numbers[attribute] = usage_number(entry, source_name)
        except ValueProblem as problem:
            reasons.append(str(problem))
    window = entry.get("window")
    instants: dict[str, dt.datetime] = {}
    if isinstance(window, dict):
        for name in ("start", "end"):
            try:
                instants[name] = utc_instant(window.get(name), f"window.{name}")
            except ValueProblem as problem:
                reasons.append(str(problem))
        if len(instants) == 2 and instants["end"] < instants["start"]:
            reasons.append(f"window.end ({window['end']}) is before window.start ({window['start']})")
    elif window is None:
        reasons.append("window: missing")
    else:
        reasons.append(f"window: not an object ({type(window).__name__})")
    properties: dict[str, str] = {}
    try:
        properties = _flat_properties(entry.get("properties"))
    except ValueProblem as problem:
        reasons.append(str(problem))
    if reasons:
        return reasons
    return Allocation(
        key=key,
        window_start=instants["start"],
        window_end=instants["end"],
        cpu_core_hours=numbers["cpu_core_hours"],
        ram_byte_hours=numbers["ram_byte_hours"],
        pv_byte_hours=numbers["pv_byte_hours"],
        gpu_hours=numbers["gpu_hours"],
        total_cost=numbers["total_cost"],
        properties=properties,
    )


def _flat_properties(raw: Any) -> dict[str, str]:
    """OpenCost's properties as one flat string map (see `Allocation`); null means none."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValueProblem(f"properties: not an object ({type(raw).__name__})")
    flat: dict[str, str] = {}
    for name, value in raw.items():
        if value is None:
            continue
        if name in MAP_PROPERTIES and isinstance(value, dict):
            prefix = MAP_PROPERTIES[name]
            flat.update({f"{prefix}{label}": str(text) for label, text in value.items() if text is not None})
        elif isinstance(value, list):
            flat[str(name)] = ",".join(str(item) for item in value)
        elif isinstance(value, dict):
            raise ValueProblem(f"properties.{name}: unexpected object")
        else:
            flat[str(name)] = str(value)
    return flat
