"""The usage API's items turned into metered usage of products (contract: usage_api.openapi.yaml).

Quantities are decimal strings. Metrics become products through usage_api_metrics.csv (metric +
unit → product and factor): a new metric is a line of data. An item with an unknown metric or unit
is an unmapped quantity, one with an unreadable quantity a problem, each with its reason; an item
with neither tenant nor application belongs to the unallocated application, never dropped.

Pure parsing: no HTTP, no settings.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from finops_dagster.domains.private_cloud.problems import UsageProblem
from finops_dagster.priced_usage import MeteredUsage

METRICS_FILE = Path(__file__).resolve().parent / "usage_api_metrics.csv"
NO_TENANT = "(no tenant)"


@dataclass(frozen=True)
class MetricMapping:
    product_id: str
    factor: Decimal


def load_metric_mappings(path: Path = METRICS_FILE) -> dict[tuple[str, str], MetricMapping]:
    with path.open(encoding="utf-8", newline="") as handle:
        return {
            (row["metric"], row["unit"]): MetricMapping(row["product_id"], Decimal(row["factor"]))
            for row in csv.DictReader(handle)
        }


@dataclass(frozen=True)
class UnmappedQuantity:
    """An item whose quantity is readable but whose metric/unit maps to no product."""

    ref: str
    reason: str
    unit: str
    quantity: Decimal
    raw: dict[str, Any]


def meter_item(
    source: str, metrics: Mapping[tuple[str, str], MetricMapping], index: int, item: Any
) -> MeteredUsage | UsageProblem | UnmappedQuantity:
    """One item of a usage page as metered usage of a product, an unmapped quantity or a problem."""
    raw = item if isinstance(item, dict) else {"value": item}
    tenant = str(raw.get("tenant") or "").strip()
    ref = f"{tenant or 'no tenant'} / {raw.get('metric')} (item {index})"
    quantity = _quantity(raw.get("quantity"))
    if isinstance(quantity, str):
        return UsageProblem(ref, f"quantity {quantity}", raw)
    if not tenant and not raw.get("application"):
        tenant = NO_TENANT  # nobody owns it: the unallocated application, never dropped
    mapping = metrics.get((str(raw.get("metric")), str(raw.get("unit"))))
    if mapping is None:
        return UnmappedQuantity(
            ref,
            f"unknown metric {raw.get('metric')!r} in unit {raw.get('unit')!r} "
            "(add it to usage_api_metrics.csv)",
            str(raw.get("unit")),
            quantity,
            raw,
        )
    application = raw.get("application")
    return MeteredUsage(
        source,
        tenant or str(application),
        mapping.product_id,
        quantity * mapping.factor,
        application=str(application) if application else None,
        fields={"tenant": tenant},
    )


def _quantity(raw: Any) -> Decimal | str:
    """An exact quantity from a decimal string (a JSON number is accepted through its text)."""
    if raw is None or isinstance(raw, bool):
        return "missing"
    try:
        value = Decimal(str(raw).strip())
    except InvalidOperation:
        return f"is not a number ({str(raw)[:40]!r})"
    if not value.is_finite():
        return f"is not finite ({raw})"
    if value < 0:
        return f"is negative ({raw})"
    return value
