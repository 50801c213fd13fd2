"""Usage-report items turned into readings of products (contract: usage_report.openapi.yaml).

A service's products and units map to catalogue products through usage_report_products.csv. An
item with an unreadable or negative quantity is a problem with its reason; one of an unknown
product stays a reading of `unmapped:<product>`, so the month's reject carries its quantity and
unit; one with neither consumer nor application belongs to the unallocated application.

Pure parsing: no HTTP, no settings.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from finops_dagster.domains.native.snapshots import Problem, Reading

PRODUCTS_FILE = Path(__file__).resolve().parent / "usage_report_products.csv"
NO_CONSUMER = "(no consumer)"


def load_products(service: str, path: Path = PRODUCTS_FILE) -> dict[tuple[str, str], str]:
    with path.open(encoding="utf-8", newline="") as handle:
        return {
            (row["product"], row["unit"]): row["product_id"]
            for row in csv.DictReader(handle)
            if row["service"] == service
        }


def reading_of(products: Mapping[tuple[str, str], str], index: int, item: Any) -> Reading | Problem:
    """One report item as a reading of a product (an unknown product kept as `unmapped:`) or a problem."""
    raw = item if isinstance(item, dict) else {"value": item}
    consumer = str(raw.get("consumer") or "").strip()
    application = str(raw.get("application") or "").strip() or None
    ref = f"{consumer or application or 'unknown consumer'} / {raw.get('product')} (item {index})"
    try:
        quantity = Decimal(str(raw.get("quantity")).strip())
    except InvalidOperation:
        return Problem(ref, f"quantity is not a number ({str(raw.get('quantity'))[:40]!r})", raw)
    if not quantity.is_finite() or quantity < 0:
        return Problem(ref, f"quantity {raw.get('quantity')} is not a non-negative number", raw)
    if not consumer and not application:
        consumer = NO_CONSUMER  # nobody owns it: the unallocated application, never dropped
    unit = str(raw.get("unit"))
    product_id = products.get((str(raw.get("product")), unit))
    if product_id is None:
        # kept as a reading of an unknown product: the month's reject carries its quantity and unit
        return Reading(
            consumer or str(application),
            f"unmapped:{raw.get('product')}",
            "counter",
            quantity,
            application,
            {"consumer": consumer.lower(), "unit": unit},
        )
    return Reading(
        consumer or str(application),
        product_id,
        "counter",
        quantity,
        application,
        {"consumer": consumer.lower()},
    )
