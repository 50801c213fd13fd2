"""The months' close status and restatements: what finance signed, and what a restatement would change.

`GET /api/v1/months/{month}` says whether a month is open or closed, at which version, who closed it
(when, with which note) and who approved its last restatement; `…/restatements` lists the runs that
recomputed the closed month and their fate (pending, approved, superseded); `…/restatements/{run}`
adds the difference per application × product × currency, in the direct and the allocated view, with
the inputs that changed. Same conventions as every route: a token with the reader role, 400 on a
malformed month, 404 on a month never published or an unknown run, answers kept per publish.
"""

from __future__ import annotations

from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from finops_dagster.api.db import Version, fetch
from finops_dagster.api.dimensions import UnknownValue
from finops_dagster.api.listings import exact
from finops_dagster.api.periods import month_label, parse_month
from finops_dagster.api.serving import authenticate, reject_unknown_parameters, respond

router = APIRouter(prefix="/api/v1/months", tags=["months"], dependencies=[Depends(authenticate)])

MonthPath = Annotated[str, Path(description="YYYY-MM")]

STATUS = """
SELECT period_month, status, version, published_run_id, published_at, closed_by, closed_at, note,
       approved_by, approved_at, inputs
FROM finops.month_status WHERE period_month = %s
"""
RESTATEMENTS = """
SELECT run_id, status, base_version, new_version, computed_at, changed_inputs, lines_changed,
       direct_before, direct_after, approved_by, approved_at
FROM finops.month_restatement WHERE period_month = %s
"""
LINES = """
SELECT application_id, product_id, currency, direct_before, direct_after, allocated_before, allocated_after,
       changed_inputs
FROM finops.month_restatement_line WHERE period_month = %s AND run_id = %s
ORDER BY application_id, product_id, currency
"""


class MonthStatusBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    period: str
    status: str = Field(description="OPEN or CLOSED")
    version: int = Field(description="1, plus one per approved restatement")
    published_run_id: str | None = Field(description="the run whose publish the current version is")
    published_at: str | None
    closed_by: str | None
    closed_at: str | None
    note: str | None
    approved_by: str | None = Field(description="who approved the last restatement")
    approved_at: str | None
    inputs: dict[str, str] = Field(
        description="fingerprints of what the current version was computed from (source_data, rate_card, "
        "mapping, allocation_rule) and the rate card and allocation rule versions"
    )


class RestatementBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    run_id: str
    status: str = Field(description="PENDING, APPROVED or SUPERSEDED")
    base_version: int = Field(description="the version it was computed against")
    new_version: int | None = Field(description="the version its approval published")
    computed_at: str
    changed_inputs: list[str] = Field(description="source_data, rate_card, mapping, allocation_rule")
    lines_changed: int
    direct_before: str = Field(description="the month's direct total before (exact decimal string)")
    direct_after: str
    approved_by: str | None
    approved_at: str | None


class RestatementList(BaseModel):
    model_config = ConfigDict(extra="forbid")
    period: str
    items: list[RestatementBody]


class RestatementLine(BaseModel):
    model_config = ConfigDict(extra="forbid")
    application_id: str
    product_id: str
    currency: str
    direct_before: str
    direct_after: str
    direct_change: str
    allocated_before: str
    allocated_after: str
    allocated_change: str
    changed_inputs: list[str] = Field(description="which inputs changed this line (or `unidentified`)")


class RestatementDetail(RestatementBody):
    period: str
    lines: list[RestatementLine]


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


async def _status_row(conn: psycopg.AsyncConnection[Any], month_text: str) -> dict[str, Any]:
    month = parse_month("month", month_text)
    rows = await fetch(conn, STATUS, (month,))
    if not rows:
        raise UnknownValue(f"month {month_label(month)} was never published", 404)
    return rows[0]


def _restatement(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "run_id": row["run_id"],
        "status": row["status"],
        "base_version": row["base_version"],
        "new_version": row["new_version"],
        "computed_at": row["computed_at"].isoformat(),
        "changed_inputs": list(row["changed_inputs"]),
        "lines_changed": row["lines_changed"],
        "direct_before": exact(row["direct_before"]),
        "direct_after": exact(row["direct_after"]),
        "approved_by": row["approved_by"],
        "approved_at": _iso(row["approved_at"]),
    }


def _line(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "application_id": row["application_id"],
        "product_id": row["product_id"],
        "currency": row["currency"],
        "direct_before": exact(row["direct_before"]),
        "direct_after": exact(row["direct_after"]),
        "direct_change": exact(row["direct_after"] - row["direct_before"]),
        "allocated_before": exact(row["allocated_before"]),
        "allocated_after": exact(row["allocated_after"]),
        "allocated_change": exact(row["allocated_after"] - row["allocated_before"]),
        "changed_inputs": list(row["changed_inputs"]),
    }


@router.get("/{month}", response_model=MonthStatusBody, summary="A month's status: open or closed, version")
async def month_status(request: Request, month: MonthPath) -> Response:
    reject_unknown_parameters(request)

    async def read(conn: psycopg.AsyncConnection[Any], version: Version) -> dict[str, Any]:
        row = await _status_row(conn, month)
        return {
            "period": month_label(row["period_month"]),
            "status": row["status"],
            "version": row["version"],
            "published_run_id": row["published_run_id"],
            "published_at": _iso(row["published_at"]),
            "closed_by": row["closed_by"],
            "closed_at": _iso(row["closed_at"]),
            "note": row["note"],
            "approved_by": row["approved_by"],
            "approved_at": _iso(row["approved_at"]),
            "inputs": {key: str(value) for key, value in sorted(row["inputs"].items())},
        }

    return await respond(request, read)


@router.get(
    "/{month}/restatements",
    response_model=RestatementList,
    summary="The restatements computed for a closed month, oldest first",
)
async def restatements(request: Request, month: MonthPath) -> Response:
    reject_unknown_parameters(request)

    async def read(conn: psycopg.AsyncConnection[Any], version: Version) -> dict[str, Any]:
        row = await _status_row(conn, month)
        found = await fetch(conn, RESTATEMENTS + " ORDER BY computed_at, run_id", (row["period_month"],))
        return {"period": month_label(row["period_month"]), "items": [_restatement(r) for r in found]}

    return await respond(request, read)


@router.get(
    "/{month}/restatements/{run}",
    response_model=RestatementDetail,
    summary="A restatement and what it changes per application × product (direct and allocated)",
)
async def restatement(
    request: Request, month: MonthPath, run: Annotated[str, Path(description="the run that computed it")]
) -> Response:
    reject_unknown_parameters(request)

    async def read(conn: psycopg.AsyncConnection[Any], version: Version) -> dict[str, Any]:
        row = await _status_row(conn, month)
        period = row["period_month"]
        found = await fetch(conn, RESTATEMENTS + " AND run_id = %s", (period, run))
        if not found:
            raise UnknownValue(f"no restatement of {month_label(period)} by run {run!r}", 404)
        lines = await fetch(conn, LINES, (period, run))
        return {"period": month_label(period), **_restatement(found[0]), "lines": [_line(r) for r in lines]}

    return await respond(request, read)
