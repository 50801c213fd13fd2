"""Azure Cost Management Query API pages turned into charge groups.

Columns are found by name, never by position; costs arrive as `Decimal` (the client reads the JSON
text exactly) and a row outside the asked month is a problem, not a charge. A subscription or
resource group missing from a row is taken from the scope the page was asked for.

Pure parsing: no HTTP, no settings. A page that is not a query result raises `ValueError` (the
client reports a broken source); one unreadable row becomes a `ChargeProblem` and the rest is kept.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from finops_dagster.domains.public_cloud.charges import ChargeGroup, ChargeProblem
from finops_dagster.releve import next_month

SOURCE = "azure_cost_management"
PROVIDER = "Microsoft"

# The aggregation is named "Cost" in the query; older query types name their column PreTaxCost,
# and some answers name it after the aggregation's alias.
COST_COLUMNS = ("cost", "pretaxcost", "totalcost")
SUBSCRIPTION_SCOPE = re.compile(r"^/subscriptions/([^/]+)(?:/resourceGroups/([^/]+))?$", re.IGNORECASE)


def parse_query_result(
    body: Any, *, month: dt.date, tag_key: str, scope: str | None = None, page: int = 1
) -> tuple[list[ChargeGroup], list[ChargeProblem]]:
    """The charge groups of one Query API page; a row that cannot be read is a problem with its reason.

    Raises ValueError when the page itself is not a query result (no columns, no rows, no cost column).
    """
    if not isinstance(body, Mapping) or not isinstance(body.get("properties"), Mapping):
        raise ValueError("no 'properties' object")
    properties = body["properties"]
    columns = properties.get("columns")
    rows = properties.get("rows")
    if not isinstance(columns, list) or not isinstance(rows, list):
        raise ValueError("'properties' has no 'columns' and 'rows' lists")
    names = [str(column.get("name")) if isinstance(column, Mapping) else "" for column in columns]
    index = {name.lower(): position for position, name in reversed(list(enumerate(names)))}
    cost_at = next((index[name] for name in COST_COLUMNS if name in index), None)
    if cost_at is None and rows:
        raise ValueError(f"no cost column among {names}")
    subscription, resource_group = _scope_parts(scope)
    groups: list[ChargeGroup] = []
    problems: list[ChargeProblem] = []
    for number, row in enumerate(rows, start=1):
        ref = f"{scope or 'query'} page {page} row {number}"
        if not isinstance(row, list) or len(row) != len(names):
            raw = {"row": _plain(row)}
            problems.append(ChargeProblem(SOURCE, ref, f"row does not have the {len(names)} columns", raw))
            continue
        raw = {name: _plain(value) for name, value in zip(names, row, strict=True)}

        def cell(*candidates: str, row: list[Any] = row) -> Any:
            for name in candidates:
                if name in index:
                    return row[index[name]]
            return None

        cost = _cost(row[cost_at]) if cost_at is not None else "missing"
        currency = _text(cell("currency"))
        service = _text(cell("servicename"))
        tag_value = _text(cell("tagvalue"))
        ref = f"{ref} ({service or 'no service'} / {tag_key}={tag_value or ''})"
        if isinstance(cost, str):
            problems.append(ChargeProblem(SOURCE, ref, f"cost {cost}", raw, currency=currency))
            continue
        if not currency:
            problems.append(ChargeProblem(SOURCE, ref, "currency missing", raw, cost=cost))
            continue
        outside = _outside_month(cell("usagedate", "billingmonth"), month)
        if outside:
            problems.append(ChargeProblem(SOURCE, ref, outside, raw, cost=cost, currency=currency))
            continue
        groups.append(
            ChargeGroup(
                source=SOURCE,
                provider=PROVIDER,
                service_name=service,
                service_category=None,
                charge_category=None,
                billing_currency=currency,
                cost=cost,
                line_items=1,
                sub_account_id=_text(cell("subscriptionid")) or subscription,
                sub_account_name=_text(cell("subscriptionname")),
                resource_group=_text(cell("resourcegroupname", "resourcegroup")) or resource_group,
                tags={tag_key: tag_value} if tag_value else {},
            )
        )
    return groups, problems


def next_link(body: Any) -> str | None:
    properties = body.get("properties") if isinstance(body, Mapping) else None
    link = properties.get("nextLink") if isinstance(properties, Mapping) else None
    return str(link) if isinstance(link, str) and link else None


def _scope_parts(scope: str | None) -> tuple[str | None, str | None]:
    match = SUBSCRIPTION_SCOPE.match(scope or "")
    return (match.group(1), match.group(2)) if match else (None, None)


def _cost(raw: Any) -> Decimal | str:
    """An exact amount (negative allowed: credits, refunds), or why it cannot be read."""
    if raw is None:
        return "missing"
    if isinstance(raw, bool) or not isinstance(raw, int | float | str | Decimal):
        return f"is not a number ({type(raw).__name__})"
    try:
        value = raw if isinstance(raw, Decimal) else Decimal(str(raw).strip())
    except InvalidOperation:
        return f"is not a number ({str(raw)[:40]!r})"
    if not value.is_finite():
        return f"is not finite ({raw})"
    return value


def _text(raw: Any) -> str | None:
    if raw is None or isinstance(raw, bool):
        return None
    text = str(raw).strip()
    return text or None


def _outside_month(raw: Any, month: dt.date) -> str | None:
    """Why a row's UsageDate (yyyymmdd number) or BillingMonth (ISO) is not in the month, if it is not."""
    if raw is None:
        return None
    text = str(raw).strip()
    try:
        day = (
            dt.datetime.strptime(text, "%Y%m%d").date()
            if re.fullmatch(r"\d{8}", text)
            else dt.date.fromisoformat(text[:10])
        )
    except ValueError:
        return f"usage date unreadable ({text[:40]!r})"
    if not month <= day < next_month(month):
        return f"usage date {day} is outside {month:%Y-%m}"
    return None


def _plain(value: Any) -> Any:
    """A value fit for a reject's JSON payload: Decimals as their exact text."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return value
