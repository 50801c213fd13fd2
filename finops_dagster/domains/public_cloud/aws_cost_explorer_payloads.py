"""AWS Cost Explorer `GetCostAndUsage` answers turned into charge groups.

Group keys are read through the answer's `GroupDefinitions`, not by position: a tag key comes back
as `"<tag>$<value>"` and `"<tag>$"` means untagged (no tags: the unallocated application later).
Amounts are decimal strings read as `Decimal`; the metric's `Unit` is the currency.

Pure parsing: no AWS call, no settings. A page that cannot be read raises `ValueError` (the client
reports a broken source); one unreadable group becomes a `ChargeProblem` and the rest is kept.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from finops_dagster.domains.public_cloud.charges import ChargeGroup, ChargeProblem

SOURCE = "aws_cost_explorer"
PROVIDER = "AWS"


def parse_cost_and_usage(
    answer: Mapping[str, Any], *, metric: str, month: dt.date, page: int = 1
) -> tuple[list[ChargeGroup], list[ChargeProblem]]:
    """The charge groups of one GetCostAndUsage page; an unreadable group is a problem with its reason.

    Raises ValueError when the page itself cannot be read (no group definitions, another period).
    """
    service_at, tag_at, tag_key = _key_positions(answer.get("GroupDefinitions"))
    results = answer.get("ResultsByTime")
    if not isinstance(results, list):
        raise ValueError("no 'ResultsByTime' list")
    groups: list[ChargeGroup] = []
    problems: list[ChargeProblem] = []
    for result in results:
        if not isinstance(result, Mapping):
            raise ValueError("a ResultsByTime entry is not an object")
        period = result.get("TimePeriod")
        start = period.get("Start") if isinstance(period, Mapping) else None
        if start != month.isoformat():
            raise ValueError(f"results for a period starting {start!r} when {month:%Y-%m} was asked")
        entries = result.get("Groups") or []
        if not isinstance(entries, list):
            raise ValueError("'Groups' is not a list")
        for number, entry in enumerate(entries, start=1):
            outcome = _group(entry, metric, service_at, tag_at, tag_key, f"page {page} group {number}")
            if isinstance(outcome, ChargeGroup):
                groups.append(outcome)
            else:
                problems.append(outcome)
    return groups, problems


def _key_positions(definitions: Any) -> tuple[int | None, int | None, str | None]:
    """Where the SERVICE dimension and the tag are in each group's Keys, and the tag's key."""
    if not isinstance(definitions, list) or not definitions:
        raise ValueError("no 'GroupDefinitions'")
    service_at = tag_at = None
    tag_key = None
    for position, definition in enumerate(definitions):
        if not isinstance(definition, Mapping):
            raise ValueError("a group definition is not an object")
        if definition.get("Type") == "DIMENSION" and definition.get("Key") == "SERVICE":
            service_at = position
        elif definition.get("Type") == "TAG":
            tag_at, tag_key = position, str(definition.get("Key"))
    return service_at, tag_at, tag_key


def _group(
    entry: Any, metric: str, service_at: int | None, tag_at: int | None, tag_key: str | None, where: str
) -> ChargeGroup | ChargeProblem:
    raw = dict(entry) if isinstance(entry, Mapping) else {"value": entry}
    keys = raw.get("Keys")
    needed = max(position for position in (service_at, tag_at, -1) if position is not None) + 1
    if not isinstance(keys, list) or len(keys) < needed or not all(isinstance(key, str) for key in keys):
        return ChargeProblem(SOURCE, where, "group keys missing or unreadable", raw)
    ref = f"{where} ({' / '.join(keys)})"
    metrics = raw.get("Metrics")
    value = metrics.get(metric) if isinstance(metrics, Mapping) else None
    if not isinstance(value, Mapping):
        return ChargeProblem(SOURCE, ref, f"metric {metric} missing", raw)
    currency = value.get("Unit") if isinstance(value.get("Unit"), str) and value.get("Unit") else None
    cost = _amount(value.get("Amount"))
    if isinstance(cost, str):
        return ChargeProblem(SOURCE, ref, f"{metric} amount {cost}", raw, currency=currency)
    if currency is None:
        return ChargeProblem(SOURCE, ref, f"{metric} unit (the currency) missing", raw, cost=cost)
    tags: dict[str, str] = {}
    if tag_at is not None and tag_key is not None:
        tagged = keys[tag_at]
        if not tagged.startswith(f"{tag_key}$"):
            reason = f"tag group key {tagged!r} is not '{tag_key}$<value>'"
            return ChargeProblem(SOURCE, ref, reason, raw, cost=cost, currency=currency)
        tag_value = tagged[len(tag_key) + 1 :]
        tags = {tag_key: tag_value} if tag_value else {}
    return ChargeGroup(
        source=SOURCE,
        provider=PROVIDER,
        service_name=(keys[service_at] or None) if service_at is not None else None,
        service_category=None,
        charge_category=None,
        billing_currency=currency,
        cost=cost,
        line_items=1,
        tags=tags,
    )


def _amount(raw: Any) -> Decimal | str:
    """An exact amount from CE's decimal string (negative allowed: credits, refunds)."""
    if raw is None:
        return "missing"
    if isinstance(raw, bool) or not isinstance(raw, str | int | Decimal):
        return f"is not a decimal string ({type(raw).__name__})"
    try:
        amount = Decimal(str(raw).strip())
    except InvalidOperation:
        return f"is not a number ({str(raw)[:40]!r})"
    if not amount.is_finite():
        return f"is not finite ({raw})"
    return amount
