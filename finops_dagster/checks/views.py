"""Aggregates consistent with fact_releve: every cost aggregate adds up to the published relevés.

Compared per month (or quarter) and currency, straight from fact_releve with a query of its own
(not the aggregates' SQL), so a mistake in how the aggregates are maintained shows here. Both views
are checked: the allocated aggregates (finops_allocated.mv_*) add up to fact_releve too, since
allocation moves cost between applications and creates none. A run checks the months it published
(and the quarters holding them), every month when it published none (checks/checked_months.py); the
full rebuild of the aggregates checks every month.
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

from finops_dagster.checks.checked_months import (
    EVERY_MONTH,
    CheckedMonths,
    in_checked_months,
    published_by_run,
)
from finops_dagster.mart.aggregates import AGGREGATES, VIEWS
from finops_dagster.resources.postgres import PostgresResource

QUARTER_VIEW = "mv_cost_app_quarter"
NOT_A_TOTAL = "mv_anomalies_month"
MONTHLY_VIEWS: tuple[str, ...] = tuple(view for view in AGGREGATES if view not in (QUARTER_VIEW, NOT_A_TOTAL))
CHECK_NAME = "matches_fact_releve"


def view_mismatches(
    conn: psycopg.Connection, view: str, schema: str = "finops", months: CheckedMonths = EVERY_MONTH
) -> list[tuple[object, str, object, object]]:
    """(period, currency, view total, fact total) wherever they differ within `months`; `schema` is
    the cost view's."""
    quarterly = view == QUARTER_VIEW
    period = "period_quarter" if quarterly else "period_month"
    fact_period = "date_trunc('quarter', period_month)::date" if quarterly else "period_month"
    query = sql.SQL("""
        WITH v AS (SELECT {period} AS period, currency, sum(total_cost) AS total
                   FROM {schema}.{view} WHERE {view_in_months} GROUP BY 1, 2),
             f AS (SELECT {fact_period} AS period, currency, sum(total_cost) AS total
                   FROM finops.fact_releve WHERE {fact_in_months} GROUP BY 1, 2)
        SELECT period, currency, v.total, f.total
        FROM v FULL JOIN f USING (period, currency)
        WHERE coalesce(v.total, 0) <> coalesce(f.total, 0)
        ORDER BY 1, 2
    """).format(
        period=sql.Identifier(period),
        schema=sql.Identifier(schema),
        view=sql.Identifier(view),
        fact_period=sql.SQL(fact_period),
        view_in_months=in_checked_months(period),
        fact_in_months=in_checked_months(),
    )
    checked = months.with_their_quarters() if quarterly else months
    return [tuple(row) for row in conn.execute(query, checked.params).fetchall()]


def every_mismatch(conn: psycopg.Connection, months: CheckedMonths = EVERY_MONTH) -> list[str]:
    """Every aggregate of both views against fact_releve over `months`, each difference as a line
    a person can read (empty: they all match); what the full rebuild checks when it is done."""
    return [
        f"{cost_view.prefix}{view} {period} {currency}: view {view_total} vs fact {fact_total}"
        for view in (*MONTHLY_VIEWS, QUARTER_VIEW)
        for cost_view in VIEWS
        for period, currency, view_total, fact_total in view_mismatches(conn, view, cost_view.schema, months)
    ]


@multi_asset_check(
    specs=[AssetCheckSpec(CHECK_NAME, asset=view) for view in (*MONTHLY_VIEWS, QUARTER_VIEW)],
    can_subset=True,
)
def views_match_fact_releve(
    context: AssetCheckExecutionContext, postgres: PostgresResource
) -> Iterator[AssetCheckResult]:
    """Each cost aggregate's totals per period and currency equal fact_releve's."""
    with postgres.connect() as conn:
        months = published_by_run(conn, context.run.run_id)
        for check_key in sorted(context.selected_asset_check_keys, key=lambda key: key.asset_key.path[-1]):
            view = check_key.asset_key.path[-1]
            mismatches = [
                (cost_view.name, *mismatch)
                for cost_view in VIEWS
                for mismatch in view_mismatches(conn, view, cost_view.schema, months)
            ]
            yield AssetCheckResult(
                asset_key=check_key.asset_key,
                check_name=CHECK_NAME,
                passed=not mismatches,
                description=(
                    f"{len(mismatches)} period/currency total(s) differ from fact_releve"
                    if mismatches
                    else f"totals match fact_releve ({months.describe()})"
                ),
                metadata={
                    "checked_months": MetadataValue.text(months.describe()),
                    "mismatches": MetadataValue.text(
                        "; ".join(f"{n} {p} {c}: view {v} vs fact {f}" for n, p, c, v, f in mismatches[:10])
                        or "none"
                    ),
                },
            )
