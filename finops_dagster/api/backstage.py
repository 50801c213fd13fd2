"""Backstage Cost Insights: the shapes its `CostInsightsApi` client returns, from the same views.

A Backstage instance implements `CostInsightsApi` with a small client that calls these routes and
returns their bodies as they are (README, "Backstage"):

| CostInsightsApi                      | route                                                  |
|--------------------------------------|--------------------------------------------------------|
| getLastCompleteBillingDate()         | GET /backstage/last-complete-billing-date → .date      |
| getUserGroups(userId)                | GET /backstage/groups                                  |
| getGroupProjects(group)              | GET /backstage/groups/{group}/projects                 |
| getGroupDailyCost(group, intervals)  | GET /backstage/groups/{group}/cost?intervals=…         |
| getProjectDailyCost(project, …)      | GET /backstage/projects/{project}/cost?intervals=…     |
| getProductInsights({product, …})     | GET /backstage/products/{family}/insights?intervals=…  |
| getAlerts(group)                     | GET /backstage/groups/{group}/alerts                   |

Groups are application groups, projects are applications, products are product families. The grain
is the month, and it is said rather than disguised: every series point is a month's first day with the
month's cost, every body carries `"grain": "month"`, and a duration in days in `intervals` is read as
whole months (P30D = 1 month, P90D = 3). Cost Insights draws numbers, so `amount` is a float for the
chart and `amountExact` the exact decimal string; costs are in one currency (FINOPS_API_BACKSTAGE_CURRENCY,
or `?currency=`), never added across currencies. Every route that reads costs takes `?view=direct`
(the default) or `?view=allocated` (after the allocation rules), with the same shapes.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal
from functools import cache
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from psycopg import sql

from finops_dagster.api.db import Version, ViewsNotPopulated, fetch
from finops_dagster.api.dimensions import UnknownValue
from finops_dagster.api.listings import exact
from finops_dagster.api.models import (
    BackstageAlert,
    BackstageCost,
    BackstageEntity,
    BackstageGroup,
    BackstageProject,
    BillingDate,
)
from finops_dagster.api.periods import (
    Intervals,
    add_months,
    month_label,
    parse_intervals,
    parse_month,
    quarter_label,
)
from finops_dagster.api.serving import ViewParam, authenticate, reject_unknown_parameters, respond, state_of
from finops_dagster.mart.aggregates import cost_view
from finops_dagster.reference.catalog import load_catalog
from finops_dagster.releve import month_start, utc_now

router = APIRouter(prefix="/api/v1/backstage", tags=["backstage"], dependencies=[Depends(authenticate)])

IntervalsParam = Annotated[
    str,
    Query(
        description="ISO 8601 repeating interval, e.g. R2/P3M/2026-07-01 "
        "(end exclusive; read on the monthly grain)"
    ),
]
CurrencyParam = Annotated[
    str | None, Query(description="ISO 4217 code (default FINOPS_API_BACKSTAGE_CURRENCY)")
]

LAST_COMPLETE_MONTH = """
SELECT max(period_month) AS period_month FROM finops.api_month_publish WHERE period_month < %s
"""
GROUPS = "SELECT DISTINCT group_id FROM {mv}.mv_cost_group_month ORDER BY group_id"
GROUP_PROJECTS = """
SELECT DISTINCT application_id FROM {mv}.mv_cost_application_month
WHERE group_id = %s ORDER BY application_id
"""
GROUP_SERIES = """
SELECT period_month, total_cost FROM {mv}.mv_cost_group_month
WHERE group_id = %s AND currency = %s AND period_month BETWEEN %s AND %s
"""
PROJECT_SERIES = """
SELECT period_month, total_cost FROM {mv}.mv_cost_application_month
WHERE application_id = %s AND currency = %s AND period_month BETWEEN %s AND %s
"""
PROJECT_DOMAINS = """
SELECT period_month, domain_id, total_cost FROM {mv}.mv_cost_app_domain_month
WHERE application_id = %s AND currency = %s AND period_month BETWEEN %s AND %s
"""
FAMILY_PRODUCTS = """
SELECT p.period_month, p.product_id, sum(p.total_cost) AS total_cost
FROM {mv}.mv_cost_app_product_month AS p
WHERE p.family_id = %(family)s AND p.currency = %(currency)s AND p.period_month BETWEEN %(first)s AND %(last)s
  AND (%(project)s::text IS NULL OR p.application_id = %(project)s)
  AND (%(group)s::text IS NULL OR p.application_id IN (
      SELECT application_id FROM {mv}.mv_cost_application_month WHERE group_id = %(group)s))
GROUP BY p.period_month, p.product_id
"""
# The applications of a group are those mv_cost_application_month places in it (in any month), so an
# application whose cost fell to nothing this month (a DROP) is still found.
# `compared_months`: how many previous months the trailing average is over (sql/015_aggregate_tables.sql).
GROUP_ANOMALIES = """
SELECT a.application_id, a.domain_id, a.total_cost, a.trailing_avg_cost, a.deviation_ratio, a.anomaly_kind,
       a.compared_months
FROM {mv}.mv_anomalies_month AS a
WHERE a.period_month = %s AND a.currency = %s
  AND a.application_id IN (SELECT application_id FROM {mv}.mv_cost_application_month WHERE group_id = %s)
ORDER BY a.application_id, a.domain_id
"""


def in_view(query: str, view: str) -> sql.Composed:
    """The query on the cost view's aggregates (direct: finops.mv_*, allocated: finops_allocated.mv_*)."""
    return sql.SQL(query).format(mv=sql.Identifier(cost_view(view).schema))


class NoCompleteMonth(ViewsNotPopulated):
    """No complete, published month: the plugin needs a billing date, so a 503 until a publish."""


@cache
def catalog_families() -> frozenset[str]:
    """The product families of the reference catalog shipped with the package: Cost Insights is
    configured with them as `products`, and asks for each even when it has no cost (yet)."""
    return frozenset(family.family_id for family in load_catalog().families)


def _float(value: Decimal) -> float:
    return float(value)


def change(previous: Decimal, current: Decimal) -> dict[str, Any]:
    """Cost Insights' ChangeStatistic: the amount and the ratio of the change from previous to current.
    Without a previous cost there is no ratio: the field is left out (the plugin then shows ∞), since
    its type allows a number or nothing, not null."""
    amount = current - previous
    statistic: dict[str, Any] = {"amount": _float(amount), "amountExact": exact(amount)}
    if previous != 0:
        ratio = amount / previous
        statistic.update(ratio=_float(ratio), ratioExact=exact(ratio))
    return statistic


def trendline(points: list[tuple[dt.date, Decimal]]) -> dict[str, float] | None:
    """Least-squares line through the series (x: Unix seconds of each month's first day)."""
    if len(points) < 2:
        return None
    xs = [dt.datetime(m.year, m.month, m.day, tzinfo=dt.UTC).timestamp() for m, _ in points]
    ys = [float(amount) for _, amount in points]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread
    return {"slope": slope, "intercept": mean_y - slope * mean_x}


def cost_body(
    identifier: str,
    intervals: Intervals,
    amounts: dict[dt.date, Decimal],
    currency: str,
    grouped: dict[str, list[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    series = [(month, amounts.get(month, Decimal(0))) for month in intervals.months]
    previous = sum((amounts.get(m, Decimal(0)) for m in intervals.previous_period), Decimal(0))
    current = sum((amounts.get(m, Decimal(0)) for m in intervals.current_period), Decimal(0))
    body: dict[str, Any] = {
        "id": identifier,
        "aggregation": [
            {"date": month.isoformat(), "amount": _float(amount), "amountExact": exact(amount)}
            for month, amount in series
        ],
        "change": change(previous, current),
        "currency": currency,
        "grain": "month",
    }
    line = trendline(series)
    if line is not None:
        body["trendline"] = line
    if grouped is not None:
        body["groupedCosts"] = grouped
    return body


def _series(rows: Iterable[dict[str, Any]]) -> dict[dt.date, Decimal]:
    return {row["period_month"]: row["total_cost"] for row in rows}


async def _currency(
    conn: psycopg.AsyncConnection[Any], version: Version, request: Request, given: str | None
) -> str:
    state = state_of(request)
    if given is None:
        return state.settings.backstage_currency
    return await state.known.check(conn, version, "currency", given)


def _bounds(intervals: Intervals) -> tuple[dt.date, dt.date]:
    return intervals.months[0], intervals.months[-1]


@router.get(
    "/last-complete-billing-date",
    response_model=BillingDate,
    summary="getLastCompleteBillingDate: last day of the latest complete, published month",
)
async def last_complete_billing_date(request: Request) -> Response:
    reject_unknown_parameters(request)

    async def read(conn: psycopg.AsyncConnection[Any], version: Version) -> dict[str, Any]:
        rows = await fetch(conn, LAST_COMPLETE_MONTH, (month_start(utc_now()),))
        month = rows[0]["period_month"] if rows else None
        if month is None:
            raise NoCompleteMonth(
                "no month is both over and published yet: Cost Insights has no billing date to show"
            )
        last_day = add_months(month, 1) - dt.timedelta(days=1)
        return {"date": last_day.isoformat(), "grain": "month"}

    return await respond(request, read)


@router.get("/groups", response_model=list[BackstageGroup], summary="getUserGroups: the application groups")
async def groups(request: Request, view: ViewParam = "direct") -> Response:
    """Every application group with a cost. The API does not know users: a Backstage client narrows
    this list to the user's groups from the catalog if it wants to."""
    reject_unknown_parameters(request)

    async def read(conn: psycopg.AsyncConnection[Any], version: Version) -> list[dict[str, Any]]:
        rows = await fetch(conn, in_view(GROUPS, view))
        return [{"id": row["group_id"], "name": row["group_id"]} for row in rows]

    return await respond(request, read)


GroupPath = Annotated[str, Path(description="application group id")]


@router.get(
    "/groups/{group}/projects",
    response_model=list[BackstageProject],
    summary="getGroupProjects: the group's applications",
)
async def group_projects(request: Request, group: GroupPath, view: ViewParam = "direct") -> Response:
    reject_unknown_parameters(request)
    state = state_of(request)

    async def read(conn: psycopg.AsyncConnection[Any], version: Version) -> list[dict[str, Any]]:
        await state.known.check(conn, version, "group", group, status=404, view=view)
        rows = await fetch(conn, in_view(GROUP_PROJECTS, view), (group,))
        return [{"id": row["application_id"], "name": row["application_id"]} for row in rows]

    return await respond(request, read)


@router.get(
    "/groups/{group}/cost",
    response_model=BackstageCost,
    summary="getGroupDailyCost: the group's monthly cost series and its change",
)
async def group_cost(
    request: Request,
    group: GroupPath,
    intervals: IntervalsParam,
    currency: CurrencyParam = None,
    view: ViewParam = "direct",
) -> Response:
    reject_unknown_parameters(request)
    parsed = parse_intervals(intervals)
    state = state_of(request)

    async def read(conn: psycopg.AsyncConnection[Any], version: Version) -> dict[str, Any]:
        await state.known.check(conn, version, "group", group, status=404, view=view)
        code = await _currency(conn, version, request, currency)
        rows = await fetch(conn, in_view(GROUP_SERIES, view), (group, code, *_bounds(parsed)))
        return cost_body(group, parsed, _series(rows), code)

    return await respond(request, read)


@router.get(
    "/projects/{project}/cost",
    response_model=BackstageCost,
    summary="getProjectDailyCost: an application's monthly cost series, grouped by domain",
)
async def project_cost(
    request: Request,
    project: Annotated[str, Path(description="application id")],
    intervals: IntervalsParam,
    currency: CurrencyParam = None,
    view: ViewParam = "direct",
) -> Response:
    reject_unknown_parameters(request)
    parsed = parse_intervals(intervals)
    state = state_of(request)

    async def read(conn: psycopg.AsyncConnection[Any], version: Version) -> dict[str, Any]:
        await state.known.check(conn, version, "application", project, status=404, view=view)
        code = await _currency(conn, version, request, currency)
        params = (project, code, *_bounds(parsed))
        by_domain: dict[str, dict[dt.date, Decimal]] = defaultdict(dict)
        for row in await fetch(conn, in_view(PROJECT_DOMAINS, view), params):
            by_domain[row["domain_id"]][row["period_month"]] = row["total_cost"]
        grouped = {
            "domain": [
                cost_body(domain, parsed, amounts, code) for domain, amounts in sorted(by_domain.items())
            ]
        }
        series = _series(await fetch(conn, in_view(PROJECT_SERIES, view), params))
        return cost_body(project, parsed, series, code, grouped)

    return await respond(request, read)


def entity(
    identifier: str | None,
    intervals: Intervals,
    amounts: dict[dt.date, Decimal],
    currency: str,
    children: list[dict[str, Any]] | None = None,
    child_kind: str = "product",
) -> dict[str, Any]:
    previous = sum((amounts.get(m, Decimal(0)) for m in intervals.previous_period), Decimal(0))
    current = sum((amounts.get(m, Decimal(0)) for m in intervals.current_period), Decimal(0))
    return {
        "id": identifier,
        "aggregation": [_float(previous), _float(current)],
        "aggregationExact": [exact(previous), exact(current)],
        "change": change(previous, current),
        "entities": {child_kind: children} if children is not None else {},
        "currency": currency,
        "grain": "month",
    }


@router.get(
    "/products/{family}/insights",
    response_model=BackstageEntity,
    summary="getProductInsights: a product family's cost, previous vs current period, per product",
)
async def product_insights(
    request: Request,
    family: Annotated[str, Path(description="product family id")],
    intervals: IntervalsParam,
    group: Annotated[str | None, Query(description="application group")] = None,
    project: Annotated[str | None, Query(description="application")] = None,
    currency: CurrencyParam = None,
    view: ViewParam = "direct",
) -> Response:
    """Compares the last period of `intervals` with the one before (R2/P1M: this month against the
    previous one). Configure the families as Cost Insights `products` in app-config.yaml."""
    reject_unknown_parameters(request)
    parsed = parse_intervals(intervals)
    state = state_of(request)

    async def read(conn: psycopg.AsyncConnection[Any], version: Version) -> dict[str, Any]:
        await _known_family(conn, version, request, family, view)
        if group is not None:
            await state.known.check(conn, version, "group", group, view=view)
        if project is not None:
            await state.known.check(conn, version, "application", project, view=view)
        code = await _currency(conn, version, request, currency)
        first, last = _bounds(parsed)
        rows = await fetch(
            conn,
            in_view(FAMILY_PRODUCTS, view),
            {
                "family": family,
                "currency": code,
                "first": first,
                "last": last,
                "project": project,
                "group": group,
            },
        )
        per_product: dict[str, dict[dt.date, Decimal]] = defaultdict(dict)
        totals: dict[dt.date, Decimal] = defaultdict(Decimal)
        for row in rows:
            per_product[row["product_id"]][row["period_month"]] = row["total_cost"]
            totals[row["period_month"]] += row["total_cost"]
        children = [
            entity(product, parsed, amounts, code) for product, amounts in sorted(per_product.items())
        ]
        return entity(family, parsed, dict(totals), code, children)

    return await respond(request, read)


async def _known_family(
    conn: psycopg.AsyncConnection[Any], version: Version, request: Request, family: str, view: str
) -> None:
    """A family of the catalog, or one the views hold cost for; otherwise 404."""
    if family in catalog_families():
        return
    try:
        await state_of(request).known.check(conn, version, "family", family, status=404, view=view)
    except UnknownValue:
        raise UnknownValue(
            f"unknown family {family!r}: neither the reference catalog nor the views know it", 404
        ) from None


KIND_TITLES = {
    "SPIKE": "{app}: {domain} cost spiked",
    "DROP": "{app}: {domain} cost dropped",
    "NEW": "{app}: new {domain} cost",
}


@router.get(
    "/groups/{group}/alerts",
    response_model=list[BackstageAlert],
    summary="getAlerts: the anomalies of the group's applications in a month",
)
async def group_alerts(
    request: Request,
    group: GroupPath,
    period: Annotated[
        str | None, Query(description="YYYY-MM; default: the latest complete, published month")
    ] = None,
    currency: CurrencyParam = None,
    view: ViewParam = "direct",
) -> Response:
    """From mv_anomalies_month. Each alert is shaped as Cost Insights' ProjectGrowthData: wrap it in a
    ProjectGrowthAlert, or show title/subtitle as they are."""
    reject_unknown_parameters(request)
    month = parse_month("period", period) if period else None
    state = state_of(request)

    async def read(conn: psycopg.AsyncConnection[Any], version: Version) -> list[dict[str, Any]]:
        await state.known.check(conn, version, "group", group, status=404, view=view)
        code = await _currency(conn, version, request, currency)
        target = month
        if target is None:
            rows = await fetch(conn, LAST_COMPLETE_MONTH, (month_start(utc_now()),))
            target = rows[0]["period_month"] if rows else None
        if target is None:
            return []
        anomalies = await fetch(conn, in_view(GROUP_ANOMALIES, view), (target, code, group))
        return [alert(row, target, code) for row in anomalies]

    return await respond(request, read)


def alert(row: dict[str, Any], month: dt.date, currency: str) -> dict[str, Any]:
    """One anomaly as ProjectGrowthData. The plugin's growth chart labels its two bars with
    `periodStart` and `periodEnd` read as quarters (`2026-Q3`), so they are the quarters of the first
    month compared with and of the alert's month; the exact months are in the subtitle and `month`."""
    total, average = row["total_cost"], row["trailing_avg_cost"]
    compared = row["compared_months"]
    kind = row["anomaly_kind"]
    ratio_text = (
        f" ({format(row['deviation_ratio'], '.2f')} × that average)" if row["deviation_ratio"] else ""
    )
    first_compared = add_months(month, -compared)
    return {
        "kind": kind,
        "title": KIND_TITLES[kind].format(app=row["application_id"], domain=row["domain_id"]),
        "subtitle": f"{month_label(month)}: {exact(total)} {currency} against an average of "
        f"{format(average, '.2f')} {currency} over {_months_text(first_compared, compared)}{ratio_text}",
        "project": row["application_id"],
        "periodStart": quarter_label(first_compared),
        "periodEnd": quarter_label(month),
        "month": month_label(month),
        "comparedMonths": compared,
        "aggregation": [_float(average), _float(total)],
        "change": change(average, total),
        "products": [{"id": row["domain_id"], "aggregation": [_float(average), _float(total)]}],
        "currency": currency,
    }


def _months_text(first: dt.date, count: int) -> str:
    if count == 1:
        return month_label(first)
    return f"the {count} months from {month_label(first)}"
