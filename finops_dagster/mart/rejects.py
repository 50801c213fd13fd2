"""Reading a month's published rejects: the listing and the summary by reason code.

What the CLI (`finops-dagster rejects`) prints. It reads `finops.published_reject` (the rejects of
the loads that were published, without their raw payloads), the same view the read API serves to
the reader role, so both tell the same story.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal

import psycopg
from psycopg import sql

from finops_dagster.reject_reasons import DESCRIPTIONS, RejectReason

MONTH = re.compile(r"(\d{4})-(\d{2})")


class RejectQueryError(ValueError):
    """A month, domain or reason code the listing cannot take; the message says what is accepted."""


@dataclass(frozen=True)
class RejectFilter:
    month: dt.date
    domain: str | None = None
    reason: RejectReason | None = None


@dataclass(frozen=True)
class RejectLine:
    domain_id: str
    reason_code: str
    details: str
    source: str
    source_ref: str
    records: int | None
    usage_quantity: Decimal | None
    usage_unit: str | None
    cost: Decimal | None
    currency: str | None


@dataclass(frozen=True)
class ReasonTotal:
    """The month's rejects of one code (one row per currency where they carry cost)."""

    reason_code: str
    description: str
    rejects: int
    records: int | None
    cost: Decimal | None
    currency: str | None


def parse_month(text: str) -> dt.date:
    """`YYYY-MM` → the month's first day."""
    match = MONTH.fullmatch(text.strip())
    if match is None or not 1 <= int(match.group(2)) <= 12:
        raise RejectQueryError(f"month {text!r} is not YYYY-MM (for example 2026-10)")
    return dt.date(int(match.group(1)), int(match.group(2)), 1)


def parse_reason(text: str) -> RejectReason:
    code = text.strip().upper()
    if code not in RejectReason.__members__:
        raise RejectQueryError(f"unknown reason code {text!r}; the codes are {', '.join(RejectReason)}")
    return RejectReason(code)


def check_domain(conn: psycopg.Connection, domain: str) -> str:
    """The domain, if the mart knows it."""
    known = [row[0] for row in conn.execute("SELECT domain_id FROM finops.dim_domain ORDER BY 1").fetchall()]
    if domain not in known:
        raise RejectQueryError(f"unknown domain {domain!r}; the domains are {', '.join(known)}")
    return domain


def _where(selection: RejectFilter) -> tuple[sql.Composed, list[object]]:
    conditions = [sql.SQL("period_month = %s")]
    params: list[object] = [selection.month]
    if selection.domain is not None:
        conditions.append(sql.SQL("domain_id = %s"))
        params.append(selection.domain)
    if selection.reason is not None:
        conditions.append(sql.SQL("reason_code = %s"))
        params.append(selection.reason.value)
    return sql.SQL(" AND ").join(conditions), params


def reject_lines(conn: psycopg.Connection, selection: RejectFilter, limit: int) -> list[RejectLine]:
    """The month's published rejects, by domain, code, source and reference."""
    where, params = _where(selection)
    rows = conn.execute(
        sql.SQL(
            "SELECT domain_id, reason_code, details, source, source_ref, source_record_count, "
            "usage_quantity, usage_unit, cost, currency FROM finops.published_reject WHERE {} "
            "ORDER BY domain_id, reason_code, source, source_ref, reject_id LIMIT %s"
        ).format(where),
        [*params, limit],
    ).fetchall()
    return [
        RejectLine(
            domain_id,
            code,
            details,
            source,
            ref,
            records,
            quantity,
            unit,
            cost,
            None if currency is None else currency.strip(),  # char(3)
        )
        for domain_id, code, details, source, ref, records, quantity, unit, cost, currency in rows
    ]


def reason_totals(conn: psycopg.Connection, selection: RejectFilter) -> list[ReasonTotal]:
    """The month's published rejects counted by code (and currency), with the records and cost they hold."""
    where, params = _where(selection)
    rows = conn.execute(
        sql.SQL(
            "SELECT reason_code, count(*), sum(source_record_count), sum(cost), currency "
            "FROM finops.published_reject WHERE {} GROUP BY reason_code, currency "
            "ORDER BY count(*) DESC, reason_code, currency NULLS FIRST"
        ).format(where),
        params,
    ).fetchall()
    return [
        ReasonTotal(
            code,
            DESCRIPTIONS.get(RejectReason(code), "") if code in RejectReason.__members__ else "",
            count,
            records,
            cost,
            None if currency is None else currency.strip(),
        )
        for code, count, records, cost, currency in rows
    ]


def render(selection: RejectFilter, totals: list[ReasonTotal], lines: list[RejectLine], limit: int) -> str:
    """The report the CLI prints: the summary by reason, then the rejects (up to `limit`)."""
    scope = ", ".join(
        part
        for part in (
            f"domain {selection.domain}" if selection.domain else "every domain",
            f"reason {selection.reason}" if selection.reason else "",
        )
        if part
    )
    count = sum(total.rejects for total in totals)
    out = [f"Published rejects of {selection.month:%Y-%m} ({scope}): {count}"]
    if not count:
        return out[0]
    out += ["", "By reason:"]
    out += _table(
        ("reason", "rejects", "records", "cost", "description"),
        [
            (t.reason_code, str(t.rejects), _number(t.records), _money(t.cost, t.currency), t.description)
            for t in totals
        ],
        right={1, 2, 3},
    )
    shown = f"the first {len(lines)}" if len(lines) < count else f"all {count}"
    out += ["", f"Rejects ({shown}; --limit to see more):" if len(lines) < count else f"Rejects ({shown}):"]
    out += _table(
        ("reason", "domain", "source", "file/row or record", "records", "quantity", "cost", "details"),
        [
            (
                line.reason_code,
                line.domain_id,
                line.source,
                line.source_ref,
                _number(line.records),
                _quantity(line.usage_quantity, line.usage_unit),
                _money(line.cost, line.currency),
                line.details,
            )
            for line in lines
        ],
        right={4, 5, 6},
    )
    return "\n".join(out)


def _number(value: int | None) -> str:
    return "-" if value is None else str(value)


def _quantity(quantity: Decimal | None, unit: str | None) -> str:
    return "-" if quantity is None else f"{quantity} {unit or ''}".strip()


def _money(cost: Decimal | None, currency: str | None) -> str:
    """A cost with its currency; a reject's cost whose currency could not be read says so."""
    if cost is None:
        return "-"
    return f"{cost} {currency}" if currency else f"{cost} (currency unreadable)"


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]], right: set[int]) -> list[str]:
    """Columns padded to their widest cell (the last one left free), numbers aligned right."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        padded = [
            cell if i == len(cells) - 1 else (cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]))
            for i, cell in enumerate(cells)
        ]
        return "  " + "  ".join(padded).rstrip()

    return [line(header), *(line(row) for row in rows)]
