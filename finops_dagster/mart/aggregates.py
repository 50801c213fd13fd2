"""The aggregates the read API serves (finops.mv_* tables), maintained month by month.

The publish replaces a month's fact_releve rows and, in the same transaction, every aggregate row
that depends on that month: readers see facts and aggregates switch together, and a night costs
the months it publishes, not the whole history. What depends on a month M:

  * its rows in the per-month tables (domain, family, application, group; app x domain, family,
    product), computed from fact_releve;
  * the rows of its quarter (mv_cost_app_quarter);
  * the rankings of M and M+1 (M+1 compares with M);
  * the anomalies of M to M+3 (each compares with up to 3 calendar months before it);
  * the history series (year to date, rolling 12 months, a year earlier): a few rows per domain and
    month, recomputed whole.

Two runs publishing neighbouring months cannot leave either neighbour stale: the whole publish
transaction holds the mart's publish lock (mart/publish.py), so the second one to publish computes
its aggregates after the first one's facts are committed and visible.

Both views of the costs are maintained alike (`VIEWS`): the direct view (finops.mv_*, from
fact_releve) and the allocated view (finops_allocated.mv_*, the same tables and SQL, from
fact_releve_allocated, which the publish recomputes in the same transaction: mart/allocation.py).

A full rebuild (`rebuild_aggregates`) recomputes every row from fact_releve: how a new mart is first
populated, and what to run after a change that rewrites history (rate cards, mappings, migrations).

Anomaly rules (mv_anomalies_month, grain application x domain x month x currency):
  * compared months: the calendar months among the 3 before M that are in the mart (have any
    relevé); trailing_avg_cost = their sum / compared_months. A month with none (the first month
    of the mart) is not evaluated: there is nothing to compare it with.
  * SPIKE when cost > 1.5 x average, DROP when cost < 0.5 x average (including to nothing), NEW when
    none of the compared months had a cost; compared exactly (on sums, not rounded averages).
  * a change smaller than the cost floor (FINOPS_ANOMALY_MIN_COST, in the row's currency) is not
    an anomaly.
  * the month in progress (the current calendar month) and months not in the mart are left out:
    their costs are partial or unknown, not a drop.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from decimal import Decimal

import psycopg
from psycopg import sql

from finops_dagster.mart.locks import MART_NAMESPACE, PUBLISH_KEY
from finops_dagster.mart.month_partitions import ensure_month_partitions

AGGREGATES: tuple[str, ...] = (
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



@dataclass(frozen=True)
class CostView:
    """Where one view of the costs lives: the facts its aggregates are computed from, and the schema
    of its mv_* tables (the same tables, columns and SQL in both)."""

    name: str
    facts: str
    schema: str
    prefix: str

    @property
    def schema_sql(self) -> sql.SQL:
        """The schema as written in the statements (a constant of this module, never request text),
        unquoted so the statements read as before: `DELETE FROM finops.mv_history_domain`."""
        return sql.SQL(self.schema)

    def statement(self, text: str) -> sql.Composed:
        facts = sql.SQL(".").join([sql.SQL("finops"), sql.SQL(self.facts)])
        return sql.SQL(text).format(facts=facts, mv=self.schema_sql)


DIRECT = CostView("direct", "fact_releve", "finops", "")
ALLOCATED = CostView("allocated", "fact_releve_allocated", "finops_allocated", "allocated.")
VIEWS: tuple[CostView, ...] = (DIRECT, ALLOCATED)
VIEW_NAMES: tuple[str, ...] = tuple(view.name for view in VIEWS)
"""The direct view (what each application consumed) and the allocated view (after the rules)."""


def cost_view(name: str) -> CostView:
    """The view called `name` (direct or allocated)."""
    for view in VIEWS:
        if view.name == name:
            return view
    raise ValueError(f"unknown cost view {name!r}: expected one of {', '.join(VIEW_NAMES)}")


PER_MONTH_FROM_FACTS: dict[str, str] = {
    "mv_cost_domain_month": """
        INSERT INTO {mv}.mv_cost_domain_month
        SELECT period_month, domain_id, currency, sum(total_cost), count(*), count(DISTINCT application_id)
        FROM {facts} WHERE period_month = ANY(%(months)s)
        GROUP BY period_month, domain_id, currency
    """,
    "mv_cost_family_month": """
        INSERT INTO {mv}.mv_cost_family_month
        SELECT period_month, domain_id, family_id, currency, sum(total_cost), count(*)
        FROM {facts} WHERE period_month = ANY(%(months)s)
        GROUP BY period_month, domain_id, family_id, currency
    """,
    "mv_cost_application_month": """
        INSERT INTO {mv}.mv_cost_application_month
        SELECT c.period_month, c.application_id, a.group_id, c.currency, c.total_cost, c.releve_count
        FROM (
            SELECT period_month, application_id, currency,
                   sum(total_cost) AS total_cost, count(*) AS releve_count
            FROM {facts} WHERE period_month = ANY(%(months)s)
            GROUP BY period_month, application_id, currency
        ) AS c
        LEFT JOIN finops.dim_application AS a ON a.application_id = c.application_id
    """,
    "mv_cost_group_month": """
        INSERT INTO {mv}.mv_cost_group_month
        SELECT period_month, group_id, currency, sum(total_cost), count(*)
        FROM {mv}.mv_cost_application_month
        WHERE period_month = ANY(%(months)s) AND group_id IS NOT NULL
        GROUP BY period_month, group_id, currency
    """,
    "mv_cost_app_domain_month": """
        INSERT INTO {mv}.mv_cost_app_domain_month
        SELECT period_month, application_id, domain_id, currency, sum(total_cost), count(*)
        FROM {facts} WHERE period_month = ANY(%(months)s)
        GROUP BY period_month, application_id, domain_id, currency
    """,
    "mv_cost_app_family_month": """
        INSERT INTO {mv}.mv_cost_app_family_month
        SELECT period_month, application_id, domain_id, family_id, currency, sum(total_cost), count(*)
        FROM {facts} WHERE period_month = ANY(%(months)s)
        GROUP BY period_month, application_id, domain_id, family_id, currency
    """,
    "mv_cost_app_product_month": """
        INSERT INTO {mv}.mv_cost_app_product_month
        SELECT period_month, application_id, domain_id, family_id, product_id, usage_unit, currency,
               sum(usage_quantity), sum(total_cost), count(*)
        FROM {facts} WHERE period_month = ANY(%(months)s)
        GROUP BY period_month, application_id, domain_id, family_id, product_id, usage_unit, currency
    """,
}

# months_count: the months of the quarter in which the application had a cost row (1 to 3).
QUARTER = """
    INSERT INTO {mv}.mv_cost_app_quarter
    SELECT date_trunc('quarter', period_month)::date, application_id, group_id, currency,
           sum(total_cost), count(*)
    FROM {mv}.mv_cost_application_month
    WHERE period_month = ANY(%(months)s)
    GROUP BY date_trunc('quarter', period_month)::date, application_id, group_id, currency
"""

# previous_month_cost is 0 when the application had no cost row in the previous calendar month.
RANKING = """
    INSERT INTO {mv}.mv_rank_app_month
    SELECT c.period_month, c.application_id, c.currency, c.total_cost,
           dense_rank() OVER (PARTITION BY c.period_month, c.currency ORDER BY c.total_cost DESC),
           COALESCE(p.total_cost, 0),
           c.total_cost - COALESCE(p.total_cost, 0),
           c.total_cost / NULLIF(p.total_cost, 0)
    FROM {mv}.mv_cost_application_month AS c
    LEFT JOIN {mv}.mv_cost_application_month AS p
           ON p.application_id = c.application_id
          AND p.currency = c.currency
          AND p.period_month = (c.period_month - interval '1 month')::date
    WHERE c.period_month = ANY(%(months)s)
"""

# The rules are in the module docstring. Candidates come from the month itself and from its 3
# previous months, so an application whose cost fell to nothing appears (DROP, total_cost 0).
ANOMALIES = """
    WITH present AS (
        SELECT DISTINCT period_month FROM {mv}.mv_cost_domain_month
    ),
    target AS (
        SELECT t.period_month
        FROM unnest(%(months)s::date[]) AS t (period_month)
        JOIN present USING (period_month)
        WHERE t.period_month < %(in_progress)s
    ),
    compared AS (
        SELECT t.period_month, count(p.period_month)::integer AS compared_months
        FROM target AS t
        LEFT JOIN present AS p
               ON p.period_month >= (t.period_month - interval '3 months')::date
              AND p.period_month < t.period_month
        GROUP BY t.period_month
    ),
    scored AS (
        SELECT t.period_month, c.application_id, c.domain_id, c.currency,
               COALESCE(sum(c.total_cost) FILTER (WHERE c.period_month = t.period_month), 0) AS total_cost,
               COALESCE(sum(c.total_cost) FILTER (WHERE c.period_month < t.period_month), 0) AS trailing_sum,
               count(*) FILTER (WHERE c.period_month < t.period_month) AS trailing_months_present,
               count(*) FILTER (WHERE c.period_month < t.period_month AND c.total_cost <> 0)
                   AS trailing_with_cost
        FROM target AS t
        JOIN {mv}.mv_cost_app_domain_month AS c
          ON c.period_month >= (t.period_month - interval '3 months')::date
         AND c.period_month <= t.period_month
        GROUP BY t.period_month, c.application_id, c.domain_id, c.currency
    ),
    judged AS (
        -- cost > 1.5 x (sum / n)  <=>  2 n cost > 3 sum;  cost < 0.5 x (sum / n)  <=>  2 n cost < sum
        SELECT s.*, m.compared_months,
               CASE
                   WHEN s.trailing_sum > 0 AND 2 * m.compared_months * s.total_cost > 3 * s.trailing_sum
                       THEN 'SPIKE'
                   WHEN s.trailing_sum > 0 AND 2 * m.compared_months * s.total_cost < s.trailing_sum
                       THEN 'DROP'
                   WHEN s.trailing_with_cost = 0 AND s.total_cost > 0 THEN 'NEW'
               END AS anomaly_kind
        FROM scored AS s
        JOIN compared AS m USING (period_month)
        WHERE m.compared_months > 0
    )
    INSERT INTO {mv}.mv_anomalies_month
    SELECT period_month, application_id, domain_id, currency, total_cost,
           trailing_sum / compared_months,
           trailing_months_present::integer,
           CASE WHEN trailing_sum > 0 THEN compared_months * total_cost / trailing_sum END,
           anomaly_kind,
           compared_months
    FROM judged
    WHERE anomaly_kind IS NOT NULL
      AND abs(total_cost - trailing_sum / compared_months) >= %(min_cost)s
"""

# Dense series from each domain's first month with a cost to the latest month of the mart.
HISTORY = """
    INSERT INTO {mv}.mv_history_domain
    WITH bounds AS (
        SELECT domain_id, currency, min(period_month) AS first_month,
               (SELECT max(period_month) FROM {mv}.mv_cost_domain_month) AS last_month
        FROM {mv}.mv_cost_domain_month
        GROUP BY domain_id, currency
    ),
    dense AS (
        SELECT b.domain_id, b.currency, m.month::date AS period_month, COALESCE(d.total_cost, 0) AS total_cost
        FROM bounds AS b
        CROSS JOIN LATERAL generate_series(
            b.first_month::timestamp, b.last_month::timestamp, interval '1 month'
        ) AS m (month)
        LEFT JOIN {mv}.mv_cost_domain_month AS d
               ON d.domain_id = b.domain_id AND d.currency = b.currency AND d.period_month = m.month::date
    )
    SELECT domain_id, currency, period_month, total_cost,
           sum(total_cost) OVER (
               PARTITION BY domain_id, currency, date_trunc('year', period_month)
               ORDER BY period_month ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
           sum(total_cost) OVER (
               PARTITION BY domain_id, currency
               ORDER BY period_month RANGE BETWEEN interval '11 months' PRECEDING AND CURRENT ROW),
           lag(total_cost, 12, 0::numeric) OVER (PARTITION BY domain_id, currency ORDER BY period_month)
    FROM dense
"""


def _shift(month: dt.date, months: int) -> dt.date:
    index = month.year * 12 + month.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def quarter_months(months: set[dt.date]) -> list[dt.date]:
    """Every month of the quarters holding `months`."""
    starts = {_shift(dt.date(m.year, 1, 1), (m.month - 1) // 3 * 3) for m in months}
    return sorted({_shift(start, k) for start in starts for k in range(3)})


def _replace(
    conn: psycopg.Connection,
    view: CostView,
    table: str,
    key: str,
    months: list[dt.date],
    insert: str,
    params: dict[str, object],
) -> None:
    """Delete the table's rows of `months` and insert them again with `insert` (the same months).

    One DELETE per month: the month is the first column of every aggregate's key, and for one month
    of a long history the planner finds its rows through that index, where for several months at
    once it may choose to read the whole table, every month of history, each night."""
    delete = sql.SQL("DELETE FROM {}.{} WHERE {} = %s").format(
        view.schema_sql, sql.Identifier(table), sql.Identifier(key)
    )
    for month in months:
        conn.execute(delete, (month,))
    conn.execute(view.statement(insert), {**params, "months": months})


def maintain_aggregates(
    conn: psycopg.Connection, months: list[dt.date], *, today: dt.date, min_cost: Decimal
) -> dict[str, float]:
    """Recompute the aggregate rows that depend on `months`, in both views, from fact_releve and
    fact_releve_allocated as this transaction sees them; return seconds per table (the allocated
    view's prefixed `allocated.`). Runs inside the caller's (publish) transaction."""
    timings: dict[str, float] = {}
    for view in VIEWS:
        for table, seconds in _maintain_view(conn, view, months, today=today, min_cost=min_cost).items():
            timings[f"{view.prefix}{table}"] = seconds
    return timings


def _maintain_view(
    conn: psycopg.Connection, view: CostView, months: list[dt.date], *, today: dt.date, min_cost: Decimal
) -> dict[str, float]:
    published = set(months)
    following = {_shift(m, k) for m in published for k in range(1, 4)}
    params: dict[str, object] = {"in_progress": dt.date(today.year, today.month, 1), "min_cost": min_cost}
    timings: dict[str, float] = {}

    def timed(table: str, key: str, selected: set[dt.date], insert: str) -> None:
        started = time.perf_counter()
        _replace(conn, view, table, key, sorted(selected), insert, params)
        timings[table] = round(time.perf_counter() - started, 3)

    for table, insert in PER_MONTH_FROM_FACTS.items():
        timed(table, "period_month", published, insert)
    in_quarters = set(quarter_months(published))
    started = time.perf_counter()
    quarters = sorted(m for m in in_quarters if m.month in (1, 4, 7, 10))
    conn.execute(
        view.statement("DELETE FROM {mv}.mv_cost_app_quarter WHERE period_quarter = ANY(%(months)s)"),
        {"months": quarters},
    )
    conn.execute(view.statement(QUARTER), {"months": sorted(in_quarters)})
    timings["mv_cost_app_quarter"] = round(time.perf_counter() - started, 3)
    timed("mv_rank_app_month", "period_month", published | {_shift(m, 1) for m in published}, RANKING)
    timed("mv_anomalies_month", "period_month", published | following, ANOMALIES)
    started = time.perf_counter()
    conn.execute(view.statement("DELETE FROM {mv}.mv_history_domain"))
    conn.execute(view.statement(HISTORY))
    timings["mv_history_domain"] = round(time.perf_counter() - started, 3)
    return timings


def rebuild_aggregates(conn: psycopg.Connection, *, today: dt.date, min_cost: Decimal) -> dict[str, float]:
    """Every aggregate row recomputed from fact_releve, in one transaction under the publish lock
    (no publish interleaves); readers see the old aggregates until COMMIT. The months' partitions
    are made first (a month published before its aggregates were partitioned has none yet)."""
    ensure_month_partitions(conn, _fact_months(conn))
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (MART_NAMESPACE, PUBLISH_KEY))
        months = _fact_months(conn)
        for view in VIEWS:
            for table in AGGREGATES:
                conn.execute(
                    sql.SQL("DELETE FROM {}.{}").format(view.schema_sql, sql.Identifier(table))
                )
        return maintain_aggregates(conn, months, today=today, min_cost=min_cost)


def _fact_months(conn: psycopg.Connection) -> list[dt.date]:
    """The months fact_releve holds."""
    rows = conn.execute("SELECT DISTINCT period_month FROM finops.fact_releve ORDER BY 1").fetchall()
    return [row[0] for row in rows]
