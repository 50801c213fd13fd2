"""The rejects route: a month's published rejects, summed by reason code, then listed page by page.

It reads `finops.published_reject` only (sql/016_reject_reason_codes.sql): the rejects of the loads
that were published, without their raw payloads, which the reader role may read. Like every route,
its answers are tied to the publish (ETag, the response cache), since only a publish changes them.
"""

from __future__ import annotations

from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from psycopg import sql
from pydantic import BaseModel, ConfigDict, Field

from finops_dagster.api.db import Version, fetch
from finops_dagster.api.listings import exact
from finops_dagster.api.periods import month_label, parse_month
from finops_dagster.api.routes import Page, PageSize, page_bounds
from finops_dagster.api.serving import BadInput, authenticate, reject_unknown_parameters, respond
from finops_dagster.reject_reasons import DESCRIPTIONS, RejectReason
from finops_dagster.settings import AVAILABLE_DOMAINS

router = APIRouter(prefix="/api/v1", dependencies=[Depends(authenticate)])


class ReasonSummary(BaseModel):
    """The month's rejects of one reason code (one row per currency where they carry a cost)."""

    model_config = ConfigDict(extra="forbid")
    reason_code: str
    description: str
    rejects: int
    records: int | None = Field(description="source records they stand for, where the domain counts them")
    cost: str | None = Field(description="exact decimal string, in `currency`; null when they carry none")
    currency: str | None = Field(description="ISO 4217; null for a cost whose currency was unreadable")


class RejectItem(BaseModel):
    """One published reject: why (its code), what (its details), where (source, file/row or record)."""

    model_config = ConfigDict(extra="forbid")
    reject_id: int
    domain_id: str
    reason_code: str
    details: str
    source: str
    source_ref: str = Field(description="the record: a CI `sys_id (name)`, a file `path#row N`, an entry")
    records: int | None
    usage_quantity: str | None = Field(description="exact decimal string, in `usage_unit`")
    usage_unit: str | None
    cost: str | None = Field(description="exact decimal string, in `currency`")
    currency: str | None


class RejectPage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    period: str = Field(description="YYYY-MM")
    domain: str | None
    reason: str | None
    summary: list[ReasonSummary] = Field(description="every matching reject by reason code, over all pages")
    items: list[RejectItem]
    page: int
    page_size: int
    total: int = Field(description="rejects matching the filters, over all pages")


Month = Annotated[str, Query(description="the month, YYYY-MM (required)")]
Domain = Annotated[str | None, Query(description=f"one of {', '.join(AVAILABLE_DOMAINS)}")]
Reason = Annotated[str | None, Query(description=f"a reason code: {', '.join(RejectReason)}")]

SUMMARY = sql.SQL(
    "SELECT reason_code, count(*) AS rejects, sum(source_record_count) AS records, sum(cost) AS cost, "
    "currency FROM finops.published_reject WHERE {where} GROUP BY reason_code, currency "
    "ORDER BY count(*) DESC, reason_code, currency NULLS FIRST"
)
ITEMS = sql.SQL(
    "SELECT reject_id, domain_id, reason_code, details, source, source_ref, source_record_count AS records, "
    "usage_quantity, usage_unit, cost, currency FROM finops.published_reject WHERE {where} "
    "ORDER BY domain_id, reason_code, source, source_ref, reject_id LIMIT %s OFFSET %s"
)


@router.get(
    "/rejects",
    summary="A month's published rejects, by reason code",
    responses={200: {"model": RejectPage}},
)
async def rejects(
    request: Request,
    month: Month,
    domain: Domain = None,
    reason: Reason = None,
    page: Page = 1,
    page_size: PageSize = None,
) -> Response:
    """finops.published_reject: what could not become a relevé in the month's published loads, with its
    stable reason code and details, the summary by code (count, records, cost per currency) over every
    page, and the rejects in a stable order (domain, code, source, reference)."""
    reject_unknown_parameters(request)
    period = parse_month("month", month)
    if domain is not None and domain not in AVAILABLE_DOMAINS:
        raise BadInput(f"domain: expected one of {', '.join(AVAILABLE_DOMAINS)}, got {domain[:40]!r}")
    code = None
    if reason is not None:
        if reason not in RejectReason.__members__:
            raise BadInput(f"reason: expected one of {', '.join(RejectReason)}, got {reason[:40]!r}")
        code = RejectReason(reason)
    page, size = page_bounds(request, page, page_size)
    conditions: list[sql.Composable] = [sql.SQL("period_month = %s")]
    params: list[Any] = [period]
    for column, value in (("domain_id", domain), ("reason_code", code)):
        if value is not None:
            conditions.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
            params.append(str(value))
    where = sql.SQL(" AND ").join(conditions)

    async def read(conn: psycopg.AsyncConnection[Any], version: Version) -> dict[str, Any]:
        summary = await fetch(conn, SUMMARY.format(where=where), params)
        rows = await fetch(conn, ITEMS.format(where=where), [*params, size, (page - 1) * size])
        return {
            "period": month_label(period),
            "domain": domain,
            "reason": code,
            "summary": [_summary(row) for row in summary],
            "items": [_item(row) for row in rows],
            "page": page,
            "page_size": size,
            "total": sum(int(row["rejects"]) for row in summary),
        }

    return await respond(request, read)


def _currency(value: str | None) -> str | None:
    return None if value is None else value.strip()  # char(3)


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    code = row["reason_code"]
    return {
        "reason_code": code,
        "description": DESCRIPTIONS[RejectReason(code)] if code in RejectReason.__members__ else "",
        "rejects": int(row["rejects"]),
        "records": None if row["records"] is None else int(row["records"]),
        "cost": exact(row["cost"]),
        "currency": _currency(row["currency"]),
    }


def _item(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row,
        "records": None if row["records"] is None else int(row["records"]),
        "usage_quantity": exact(row["usage_quantity"]),
        "cost": exact(row["cost"]),
        "currency": _currency(row["currency"]),
    }
