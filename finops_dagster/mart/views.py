"""Refreshing the materialized views, in the fixed order of sql/003_views.sql.

Order: base views (domain, family, application, group), drill-downs (application × domain,
family, product; quarter), rankings and anomalies (which read the application view), history.
All selected views refresh in one transaction, so readers switch from the old set to the new
set at once; CONCURRENTLY keeps them readable meanwhile. A view never populated yet gets a
plain refresh (CONCURRENTLY refuses it).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import psycopg
from psycopg import sql

REFRESH_ORDER: tuple[str, ...] = (
    "mv_cost_domain_month",
    "mv_cost_family_month",
    "mv_cost_application_month",
    "mv_cost_group_month",
    "mv_cost_app_domain_month",
    "mv_cost_app_family_month",
    "mv_cost_app_product_month",
    "mv_cost_app_quarter",
    "mv_rank_app_month",
    "mv_anomalies_month",
    "mv_history_domain",
)


def refresh_views(conn: psycopg.Connection, selected: Iterable[str]) -> dict[str, float]:
    """Refresh the selected views in REFRESH_ORDER; return seconds per view."""
    wanted = set(selected)
    unknown = wanted - set(REFRESH_ORDER)
    if unknown:
        raise ValueError(f"unknown materialized view(s): {', '.join(sorted(unknown))}")
    timings: dict[str, float] = {}
    with conn.transaction():
        populated: dict[str, bool] = dict(
            conn.execute(
                "SELECT matviewname, ispopulated FROM pg_matviews WHERE schemaname = 'finops'"
            ).fetchall()
        )
        for name in (view for view in REFRESH_ORDER if view in wanted):
            mode = sql.SQL("CONCURRENTLY ") if populated.get(name) else sql.SQL("")
            started = time.perf_counter()
            conn.execute(sql.SQL("REFRESH MATERIALIZED VIEW {}finops.{}").format(mode, sql.Identifier(name)))
            timings[name] = round(time.perf_counter() - started, 3)
    return timings
