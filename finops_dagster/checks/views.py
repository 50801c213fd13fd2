"""Aggregates consistent with fact_releve: every cost aggregate adds up to the published relevés.

Compared per month (or quarter) and currency, straight from fact_releve with a query of its own
(not the aggregates' SQL), so a mistake in how the aggregates are maintained shows here. Both views
are checked: the allocated aggregates (finops_allocated.mv_*) add up to fact_releve too, since
allocation moves cost between applications and creates none.
mv_anomalies_month lists exceptions, not totals, so it has no such check.
"""

from collections.abc import Iterator

import psycopg
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSpec,
    MetadataValue,
    multi_asset_check,
)
from psycopg import sql

from finops_dagster.mart.aggregates import AGGREGATES, VIEWS
from finops_dagster.resources.postgres import PostgresResource

QUARTER_VIEW = "mv_cost_app_quarter"
NOT_A_TOTAL = "mv_anomalies_month"
MONTHLY_VIEWS: tuple[str, ...] = tuple(
    view for view in AGGREGATES if view not in (QUARTER_VIEW, NOT_A_TOTAL)
)
CHECK_NAME = "matches_fact_releve"


def view_mismatches(
    conn: psycopg.Connection, view: str, schema: str = "finops"
) -> list[tuple[object, str, object, object]]:
    """(period, currency, view total, fact total) wherever they differ; `schema` is the cost view's."""
    period = "period_quarter" if view == QUARTER_VIEW else "period_month"
    fact_period = "date_trunc('quarter', period_month)::date" if view == QUARTER_VIEW else "period_month"
    query = sql.SQL("""
        WITH v AS (SELECT {period} AS period, currency, sum(total_cost) AS total
                   FROM {schema}.{view} GROUP BY 1, 2),
             f AS (SELECT {fact_period} AS period, currency, sum(total_cost) AS total
                   FROM finops.fact_releve GROUP BY 1, 2)
        SELECT period, currency, v.total, f.total
        FROM v FULL JOIN f USING (period, currency)
        WHERE coalesce(v.total, 0) <> coalesce(f.total, 0)
        ORDER BY 1, 2
    """).format(
        period=sql.Identifier(period),
        schema=sql.Identifier(schema),
        view=sql.Identifier(view),
        fact_period=sql.SQL(fact_period),
    )
    return [tuple(row) for row in conn.execute(query).fetchall()]


@multi_asset_check(
    specs=[AssetCheckSpec(CHECK_NAME, asset=view) for view in (*MONTHLY_VIEWS, QUARTER_VIEW)],
    can_subset=True,
)
def views_match_fact_releve(
    context: AssetCheckExecutionContext, postgres: PostgresResource
) -> Iterator[AssetCheckResult]:
    """Each cost aggregate's totals per period and currency equal fact_releve's."""
    with postgres.connect() as conn:
        for check_key in sorted(context.selected_asset_check_keys, key=lambda key: key.asset_key.path[-1]):
            view = check_key.asset_key.path[-1]
            mismatches = [
                (cost_view.name, *mismatch)
                for cost_view in VIEWS
                for mismatch in view_mismatches(conn, view, cost_view.schema)
            ]
            yield AssetCheckResult(
                asset_key=check_key.asset_key,
                check_name=CHECK_NAME,
                passed=not mismatches,
                description=(
                    f"{len(mismatches)} period/currency total(s) differ from fact_releve"
                    if mismatches
                    else "totals match fact_releve"
                ),
                metadata={
                    "mismatches": MetadataValue.text(
                        "; ".join(f"{n} {p} {c}: view {v} vs fact {f}" for n, p, c, v, f in mismatches[:10])
                        or "none"
                    )
                },
            )
