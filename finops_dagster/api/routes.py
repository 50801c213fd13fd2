"""The cost routes: costs per domain, family, group, application and product, history, rankings,
anomalies, an application's breakdown, and the freshness of the data. All read the views only.

Every listing takes the same parameters — `from`/`to` (YYYY-MM, inclusive), the dimension filters it
supports, `currency`, `sort` (a column, `-column` for descending), `page`, `page_size` and `view`
(`direct`, the default, or `allocated`: the same listing after the allocation rules) — and pages
in a stable order: the requested sort, then the period, then the view's unique key.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from finops_dagster.api import listings as L
from finops_dagster.api.db import Version, fetch
from finops_dagster.api.dimensions import UnknownValue
from finops_dagster.api.models import Freshness, item_model, page_model
from finops_dagster.api.periods import month_label, parse_range
from finops_dagster.api.serving import (
    BadInput,
    ViewParam,
    authenticate,
    reject_unknown_parameters,
    respond,
    state_of,
)
from finops_dagster.releve import month_start, utc_now

router = APIRouter(prefix="/api/v1", dependencies=[Depends(authenticate)])


From = Annotated[str | None, Query(alias="from", description="first month, YYYY-MM (inclusive)")]
To = Annotated[str | None, Query(alias="to", description="last month, YYYY-MM (inclusive)")]
GrainParam = Annotated[Literal["month", "quarter"], Query(description="month, or quarter (months added up)")]
Currency = Annotated[str | None, Query(description="ISO 4217 code, e.g. EUR")]
Sort = Annotated[str | None, Query(description="a column of the items; prefix with - for descending")]
Page = Annotated[int, Query(description="1-based page number")]
PageSize = Annotated[int | None, Query(description="rows per page (default and maximum: see settings)")]
Dimension = Annotated[str | None, Query(description="a value the views know (400 otherwise)")]



def _page_models() -> dict[str, type]:
    pairs = {
        "DomainCost": L.DOMAIN_MONTH,
        "DomainQuarterCost": L.DOMAIN_QUARTER,
        "FamilyCost": L.FAMILY_MONTH,
        "FamilyQuarterCost": L.FAMILY_QUARTER,
        "GroupCost": L.GROUP_MONTH,
        "GroupQuarterCost": L.GROUP_QUARTER,
        "ApplicationCost": L.APPLICATION_MONTH,
        "ApplicationQuarterCost": L.APPLICATION_QUARTER,
        "ProductCost": L.PRODUCT_MONTH,
        "ProductQuarterCost": L.PRODUCT_QUARTER,
        "DomainHistory": L.HISTORY_DOMAIN,
        "ApplicationRank": L.RANKING,
        "Anomaly": L.ANOMALIES,
        "ApplicationDomainCost": L.APP_BY_DOMAIN,
        "ApplicationFamilyCost": L.APP_BY_FAMILY,
        "ApplicationProductCost": L.APP_BY_PRODUCT,
    }
    return {name: page_model(item_model(listing, name), f"{name}Page") for name, listing in pairs.items()}


PAGES = _page_models()
"""Page models by item name; the tests validate responses against them."""


def _responses(*names: str) -> dict[int | str, dict[str, Any]]:
    """The 200 response's model: one page model, or the union of the grains' page models."""
    model: Any = PAGES[names[0]]
    for name in names[1:]:
        model = model | PAGES[name]
    return {200: {"model": model}}


def _sort(listing: L.Listing, raw: str | None) -> L.Sort | None:
    if not raw:
        return None
    column = raw.removeprefix("-")
    if column not in listing.sorts:
        raise BadInput(
            f"sort: expected one of {', '.join(listing.sorts)} (prefix - for descending), got {raw!r}"
        )
    return L.Sort(column, raw.startswith("-"))


MAX_OFFSET = 2**63 - 1
"""PostgreSQL's OFFSET is a bigint: a page past it is a 400, not a database error."""


def page_bounds(request: Request, page: int, page_size: int | None) -> tuple[int, int]:
    """The page and its size, within the settings' bounds and PostgreSQL's OFFSET (400 otherwise)."""
    settings = state_of(request).settings
    size = settings.default_page_size if page_size is None else page_size
    if not 1 <= size <= settings.max_page_size:
        raise BadInput(f"page_size: expected 1 to {settings.max_page_size}, got {size}")
    last_page = MAX_OFFSET // size + 1
    if not 1 <= page <= last_page:
        raise BadInput(f"page: expected 1 to {last_page} with page_size {size}, got {_shown_int(page)}")
    return page, size


def _shown_int(value: int) -> str:
    text = str(value)
    return text if len(text) <= 24 else text[:24] + "…"


async def _listing(
    request: Request,
    listing: L.Listing,
    *,
    from_: str | None,
    to: str | None,
    filters: dict[str, str | None],
    sort: str | None,
    page: int,
    page_size: int | None,
    path_filters: dict[str, str] | None = None,
    view: str = "direct",
) -> Response:
    reject_unknown_parameters(request)
    periods = parse_range(from_, to)
    ordering = _sort(listing, sort)
    page, size = page_bounds(request, page, page_size)
    state = state_of(request)

    async def read(conn: psycopg.AsyncConnection[Any], version: Version) -> dict[str, Any]:
        given: dict[str, str] = {}
        for name, path_value in (path_filters or {}).items():
            given[name] = await state.known.check(conn, version, name, path_value, status=404, view=view)
        for name, value in filters.items():
            if value is not None:
                given[name] = await state.known.check(conn, version, name, value, view=view)
        query = L.build_query(listing, L.Request(periods, given, ordering, page, size, view))
        rows = await fetch(conn, query.page, query.page_params)
        key = (listing.name, listing.grain, view, periods, tuple(sorted(given.items())))
        if 0 < len(rows) < size:  # the last page: the total needs no count
            total = (page - 1) * size + len(rows)
        else:
            cached = state.totals.get(version, key)
            if cached is None:
                cached = int((await fetch(conn, query.count, query.count_params))[0]["total"])
                state.totals.put(version, key, cached)
            total = cached
        return {
            "grain": listing.grain,
            "items": [L.render(listing, row) for row in rows],
            "page": page,
            "page_size": size,
            "total": total,
        }

    return await respond(request, read)


@router.get(
    "/costs/domains",
    summary="Cost per technology domain",
    responses=_responses("DomainCost", "DomainQuarterCost"),
)
async def domain_costs(
    request: Request,
    from_: From = None,
    to: To = None,
    grain: GrainParam = "month",
    domain: Dimension = None,
    currency: Currency = None,
    sort: Sort = None,
    page: Page = 1,
    page_size: PageSize = None,
    view: ViewParam = "direct",
) -> Response:
    """mv_cost_domain_month: each domain's cost per month (or quarter), per currency."""
    listing = L.DOMAIN_QUARTER if grain == "quarter" else L.DOMAIN_MONTH
    return await _listing(
        request,
        listing,
        from_=from_,
        to=to,
        filters={"domain": domain, "currency": currency},
        sort=sort,
        page=page,
        page_size=page_size,
        view=view,
    )


@router.get(
    "/costs/families",
    summary="Cost per product family",
    responses=_responses("FamilyCost", "FamilyQuarterCost"),
)
async def family_costs(
    request: Request,
    from_: From = None,
    to: To = None,
    grain: GrainParam = "month",
    domain: Dimension = None,
    family: Dimension = None,
    currency: Currency = None,
    sort: Sort = None,
    page: Page = 1,
    page_size: PageSize = None,
    view: ViewParam = "direct",
) -> Response:
    """mv_cost_family_month: each family's cost (within its domain) per month or quarter."""
    listing = L.FAMILY_QUARTER if grain == "quarter" else L.FAMILY_MONTH
    return await _listing(
        request,
        listing,
        from_=from_,
        to=to,
        filters={"domain": domain, "family": family, "currency": currency},
        sort=sort,
        page=page,
        page_size=page_size,
        view=view,
    )


@router.get(
    "/costs/groups",
    summary="Cost per application group",
    responses=_responses("GroupCost", "GroupQuarterCost"),
)
async def group_costs(
    request: Request,
    from_: From = None,
    to: To = None,
    grain: GrainParam = "month",
    group: Dimension = None,
    currency: Currency = None,
    sort: Sort = None,
    page: Page = 1,
    page_size: PageSize = None,
    view: ViewParam = "direct",
) -> Response:
    """mv_cost_group_month: each application group's cost per month or quarter."""
    listing = L.GROUP_QUARTER if grain == "quarter" else L.GROUP_MONTH
    return await _listing(
        request,
        listing,
        from_=from_,
        to=to,
        filters={"group": group, "currency": currency},
        sort=sort,
        page=page,
        page_size=page_size,
        view=view,
    )


@router.get(
    "/costs/applications",
    summary="Cost per application",
    responses=_responses("ApplicationCost", "ApplicationQuarterCost"),
)
async def application_costs(
    request: Request,
    from_: From = None,
    to: To = None,
    grain: GrainParam = "month",
    application: Dimension = None,
    group: Dimension = None,
    currency: Currency = None,
    sort: Sort = None,
    page: Page = 1,
    page_size: PageSize = None,
    view: ViewParam = "direct",
) -> Response:
    """mv_cost_application_month (months) or mv_cost_app_quarter (quarters)."""
    listing = L.APPLICATION_QUARTER if grain == "quarter" else L.APPLICATION_MONTH
    return await _listing(
        request,
        listing,
        from_=from_,
        to=to,
        filters={"application": application, "group": group, "currency": currency},
        sort=sort,
        page=page,
        page_size=page_size,
        view=view,
    )


@router.get(
    "/costs/products",
    summary="Cost per product, over all applications",
    responses=_responses("ProductCost", "ProductQuarterCost"),
)
async def product_costs(
    request: Request,
    from_: From = None,
    to: To = None,
    grain: GrainParam = "month",
    domain: Dimension = None,
    family: Dimension = None,
    product: Dimension = None,
    currency: Currency = None,
    sort: Sort = None,
    page: Page = 1,
    page_size: PageSize = None,
    view: ViewParam = "direct",
) -> Response:
    """mv_cost_app_product_month added up over applications: quantity (in the product's unit) and cost.
    The view's grain is per application, so give a period range on a large mart."""
    listing = L.PRODUCT_QUARTER if grain == "quarter" else L.PRODUCT_MONTH
    return await _listing(
        request,
        listing,
        from_=from_,
        to=to,
        filters={"domain": domain, "family": family, "product": product, "currency": currency},
        sort=sort,
        page=page,
        page_size=page_size,
        view=view,
    )


@router.get("/history/domains", summary="Each domain's cost history", responses=_responses("DomainHistory"))
async def domain_history(
    request: Request,
    from_: From = None,
    to: To = None,
    domain: Dimension = None,
    currency: Currency = None,
    sort: Sort = None,
    page: Page = 1,
    page_size: PageSize = None,
    view: ViewParam = "direct",
) -> Response:
    """mv_history_domain: a dense monthly series (months without cost are 0), year to date, rolling 12
    months, and the same month a year earlier."""
    return await _listing(
        request,
        L.HISTORY_DOMAIN,
        from_=from_,
        to=to,
        filters={"domain": domain, "currency": currency},
        sort=sort,
        page=page,
        page_size=page_size,
        view=view,
    )


@router.get(
    "/rankings/applications",
    summary="Top applications and month-over-month change",
    responses=_responses("ApplicationRank"),
)
async def application_ranking(
    request: Request,
    from_: From = None,
    to: To = None,
    application: Dimension = None,
    currency: Currency = None,
    sort: Sort = None,
    page: Page = 1,
    page_size: PageSize = None,
    view: ViewParam = "direct",
) -> Response:
    """mv_rank_app_month: rank 1 is the most expensive application of the month (per currency).
    Top ten of a month: `from=to=<month>&page_size=10`; biggest increases: `sort=-month_over_month_change`."""
    return await _listing(
        request,
        L.RANKING,
        from_=from_,
        to=to,
        filters={"application": application, "currency": currency},
        sort=sort,
        page=page,
        page_size=page_size,
        view=view,
    )


@router.get("/anomalies", summary="Spikes, drops and new costs", responses=_responses("Anomaly"))
async def anomalies(
    request: Request,
    from_: From = None,
    to: To = None,
    application: Dimension = None,
    domain: Dimension = None,
    kind: Annotated[str | None, Query(description="SPIKE, DROP or NEW")] = None,
    currency: Currency = None,
    sort: Sort = None,
    page: Page = 1,
    page_size: PageSize = None,
    view: ViewParam = "direct",
) -> Response:
    """mv_anomalies_month: per application, domain and month, against the 3 previous months' average."""
    return await _listing(
        request,
        L.ANOMALIES,
        from_=from_,
        to=to,
        filters={"application": application, "domain": domain, "kind": kind, "currency": currency},
        sort=sort,
        page=page,
        page_size=page_size,
        view=view,
    )


BREAKDOWNS = {"domain": L.APP_BY_DOMAIN, "family": L.APP_BY_FAMILY, "product": L.APP_BY_PRODUCT}


@router.get(
    "/applications/{application_id}/breakdown",
    summary="An application's cost by domain, family or product",
    responses=_responses("ApplicationDomainCost", "ApplicationFamilyCost", "ApplicationProductCost"),
)
async def application_breakdown(
    request: Request,
    application_id: Annotated[str, Path(description="the application's code")],
    by: Annotated[
        Literal["domain", "family", "product"], Query(description="domain, family or product")
    ] = "domain",
    from_: From = None,
    to: To = None,
    domain: Dimension = None,
    currency: Currency = None,
    sort: Sort = None,
    page: Page = 1,
    page_size: PageSize = None,
    view: ViewParam = "direct",
) -> Response:
    """mv_cost_app_domain_month, mv_cost_app_family_month or mv_cost_app_product_month for one application."""
    return await _listing(
        request,
        BREAKDOWNS[by],
        from_=from_,
        to=to,
        filters={"domain": domain, "currency": currency},
        sort=sort,
        page=page,
        page_size=page_size,
        view=view,
        path_filters={"application": application_id},
    )


FRESHNESS = """
SELECT m.period_month, p.last_published_at, p.last_run_id, coalesce(p.publish_count, 0) AS publish_count
FROM (SELECT DISTINCT period_month FROM finops.mv_cost_domain_month
      UNION SELECT period_month FROM finops.api_month_publish) AS m
LEFT JOIN finops.api_month_publish AS p USING (period_month)
ORDER BY m.period_month
"""


@router.get(
    "/freshness",
    summary="When each month was last published, and whether it is complete",
    response_model=Freshness,
)
async def freshness(request: Request) -> Response:
    """The last successful publish per month (from the run ledger, through finops.api_month_publish),
    and which month is the current, incomplete one. ETag and Last-Modified follow the latest publish."""
    reject_unknown_parameters(request)

    async def read(conn: psycopg.AsyncConnection[Any], version: Version) -> dict[str, Any]:
        return freshness_body(await fetch(conn, FRESHNESS), version, month_start(utc_now()))

    return await respond(request, read)


def freshness_body(rows: list[dict[str, Any]], version: Version, current: dt.date) -> dict[str, Any]:
    months = []
    for row in rows:
        month: dt.date = row["period_month"]
        published = row["last_published_at"]
        months.append(
            {
                "period": month_label(month),
                "last_published_at": published.isoformat() if published else None,
                "last_run_id": row["last_run_id"],
                "publish_count": int(row["publish_count"]),
                "current_month": month >= current,
                "complete": published is not None and month < current,
            }
        )
    complete = [item["period"] for item in months if item["complete"]]
    return {
        "last_published_at": version.published_at.isoformat() if version.published_at else None,
        "last_run_id": version.run_id,
        "current_month": month_label(current),
        "last_complete_month": complete[-1] if complete else None,
        "months": months,
    }


__all__ = ["BadInput", "UnknownValue", "router"]
