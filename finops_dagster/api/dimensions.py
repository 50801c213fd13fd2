"""The values a filter may take, as the views know them, cached per publish.

A filter naming a domain, family, group, application or product the views have never seen gets a
400 saying so, instead of an empty page that looks like "no cost". The known values are read from the
views themselves (the reader sees nothing else) once per publish: the cache is keyed by the version
of the views, so the first request after a publish reloads what it needs.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from finops_dagster.api.db import Version, fetch
from finops_dagster.api.listings import ANOMALY_KINDS
from finops_dagster.mart.aggregates import VIEWS

MAX_VALUE_LENGTH = 200
SHOWN_KNOWN_VALUES = 20


def _loose_scan(view: str, column: str, schema: str) -> sql.Composed:
    """DISTINCT over an indexed leading column, one index probe per value (no full scan)."""
    return sql.SQL(
        "WITH RECURSIVE v AS ("
        " SELECT min({c}) AS value FROM {v}"
        " UNION ALL"
        " SELECT (SELECT min({c}) FROM {v} WHERE {c} > v.value) FROM v WHERE v.value IS NOT NULL"
        ") SELECT value FROM v WHERE value IS NOT NULL"
    ).format(c=sql.Identifier(column), v=sql.Identifier(schema, view))


def _distinct(view: str, column: str, schema: str) -> sql.Composed:
    return sql.SQL("SELECT DISTINCT {c} AS value FROM {v} WHERE {c} IS NOT NULL").format(
        c=sql.Identifier(column), v=sql.Identifier(schema, view)
    )


def _sources(schema: str) -> dict[str, sql.Composed]:
    return {
        "domain": _distinct("mv_cost_domain_month", "domain_id", schema),
        "family": _distinct("mv_cost_family_month", "family_id", schema),
        "group": _distinct("mv_cost_group_month", "group_id", schema),
        "currency": _distinct("mv_cost_domain_month", "currency", schema),
        "application": _loose_scan("mv_cost_application_month", "application_id", schema),
        "product": _loose_scan("mv_cost_app_product_month", "product_id", schema),
    }


SOURCES: dict[str, dict[str, sql.Composed]] = {view.name: _sources(view.schema) for view in VIEWS}
"""Per cost view (direct, allocated), the query of each dimension's known values."""


class UnknownValue(Exception):
    """A filter or path value the views do not know; `status` is 400 for a filter, 404 for a path."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def check_text(name: str, value: str) -> str:
    """Reject what cannot be a dimension value at all, before any lookup."""
    if not value or len(value) > MAX_VALUE_LENGTH or not value.isprintable():
        raise UnknownValue(f"{name}: expected a value of 1 to {MAX_VALUE_LENGTH} printable characters")
    return value


class KnownValues:
    def __init__(self) -> None:
        self._token: str | None = None
        self._values: dict[tuple[str, str], frozenset[str]] = {}

    async def values(
        self, conn: psycopg.AsyncConnection[Any], version: Version, name: str, view: str = "direct"
    ) -> frozenset[str]:
        if self._token != version.token:
            self._values, self._token = {}, version.token
        if (view, name) not in self._values:
            rows = await fetch(conn, SOURCES[view][name])
            self._values[(view, name)] = frozenset(str(row["value"]) for row in rows)
        return self._values[(view, name)]

    async def check(
        self,
        conn: psycopg.AsyncConnection[Any],
        version: Version,
        name: str,
        value: str,
        *,
        status: int = 400,
        view: str = "direct",
    ) -> str:
        """`value` when the views know it as a `name`; else UnknownValue with a message that helps."""
        check_text(name, value)
        if name == "kind":
            if value not in ANOMALY_KINDS:
                raise UnknownValue(f"kind: expected one of {', '.join(ANOMALY_KINDS)}, got {value!r}")
            return value
        known = await self.values(conn, version, name, view)
        if value in known:
            return value
        hint = ""
        if len(known) <= SHOWN_KNOWN_VALUES:
            hint = f" (known: {', '.join(sorted(known)) or 'none yet'})"
        raise UnknownValue(f"unknown {name} {value!r}: the views hold no cost for it{hint}", status)
