"""The cost listings: which materialized view answers which question, and how a request becomes SQL.

Each `Listing` names one view of sql/003_views.sql and how to read it: its key columns (the view's
unique key, which gives the stable order every page relies on), its measures, the filters it takes and
the columns it sorts by. A listing of a coarser grain than its view (a family's cost over all
applications, a domain's quarter) groups the view's rows in the query; it never reads anything but
the view. SQL is composed with `psycopg.sql` only: identifiers come from these declarations, values
travel as parameters, so no request text ever becomes SQL.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from psycopg import sql

from finops_dagster.api.periods import PeriodRange, add_months, month_label, quarter_label, quarter_start
from finops_dagster.mart.aggregates import cost_view

Kind = Literal["text", "money", "decimal", "integer"]
Grain = Literal["month", "quarter"]


@dataclass(frozen=True)
class Measure:
    name: str
    kind: Kind
    expression: str | None = None
    """An aggregate over the view's rows when the listing groups them; None = the view's column as is."""
    description: str = ""

    def select(self, grouped: bool) -> sql.Composable:
        if grouped:
            if self.expression is None:
                raise ValueError(f"measure {self.name} has no aggregate for a grouped listing")
            return sql.SQL("{} AS {}").format(sql.SQL(self.expression), sql.Identifier(self.name))
        return sql.Identifier(self.name)


@dataclass(frozen=True)
class Listing:
    """One way of reading one view. `dimensions` plus the period are the view's (or the grouping's) key."""

    name: str
    view: str
    grain: Grain
    dimensions: tuple[str, ...]
    measures: tuple[Measure, ...]
    filters: tuple[str, ...]
    """Filters it takes: a dimension (`domain` filters `domain_id`), `currency`, `kind`."""
    period_column: str = "period_month"
    grouped: bool = False
    attributes: tuple[str, ...] = ()
    """Text columns that are not part of the key (an application's group)."""
    default_order: tuple[str, ...] = ()
    description: str = ""
    extra_sorts: tuple[str, ...] = field(default=())

    @property
    def sorts(self) -> tuple[str, ...]:
        return ("period", *self.dimensions, *(m.name for m in self.measures), *self.extra_sorts)

    def column_of(self, filter_name: str) -> str:
        return {"currency": "currency", "kind": "anomaly_kind"}.get(filter_name, f"{filter_name}_id")


def _sum(name: str, kind: Kind = "money", description: str = "") -> Measure:
    return Measure(name, kind, f"sum({name})", description)


TOTAL = "exact decimal string, in `currency`"

DOMAIN_MONTH = Listing(
    "domain costs",
    "mv_cost_domain_month",
    "month",
    ("domain_id", "currency"),
    (
        Measure("total_cost", "money", description=TOTAL),
        Measure("releve_count", "integer"),
        Measure("application_count", "integer"),
    ),
    ("domain", "currency"),
)
DOMAIN_QUARTER = Listing(
    "domain costs",
    "mv_cost_domain_month",
    "quarter",
    ("domain_id", "currency"),
    (
        _sum("total_cost", description=TOTAL),
        _sum("releve_count", "integer"),
        Measure("months_count", "integer", "count(*)"),
    ),
    ("domain", "currency"),
    grouped=True,
)
FAMILY_MONTH = Listing(
    "family costs",
    "mv_cost_family_month",
    "month",
    ("domain_id", "family_id", "currency"),
    (Measure("total_cost", "money", description=TOTAL), Measure("releve_count", "integer")),
    ("domain", "family", "currency"),
)
FAMILY_QUARTER = Listing(
    "family costs",
    "mv_cost_family_month",
    "quarter",
    ("domain_id", "family_id", "currency"),
    (
        _sum("total_cost", description=TOTAL),
        _sum("releve_count", "integer"),
        Measure("months_count", "integer", "count(*)"),
    ),
    ("domain", "family", "currency"),
    grouped=True,
)
GROUP_MONTH = Listing(
    "group costs",
    "mv_cost_group_month",
    "month",
    ("group_id", "currency"),
    (Measure("total_cost", "money", description=TOTAL), Measure("application_count", "integer")),
    ("group", "currency"),
)
GROUP_QUARTER = Listing(
    "group costs",
    "mv_cost_group_month",
    "quarter",
    ("group_id", "currency"),
    (_sum("total_cost", description=TOTAL), Measure("months_count", "integer", "count(*)")),
    ("group", "currency"),
    grouped=True,
)
APPLICATION_MONTH = Listing(
    "application costs",
    "mv_cost_application_month",
    "month",
    ("application_id", "currency"),
    (Measure("total_cost", "money", description=TOTAL), Measure("releve_count", "integer")),
    ("application", "group", "currency"),
    attributes=("group_id",),
)
APPLICATION_QUARTER = Listing(
    "application costs",
    "mv_cost_app_quarter",
    "quarter",
    ("application_id", "currency"),
    (Measure("total_cost", "money", description=TOTAL), Measure("months_count", "integer")),
    ("application", "group", "currency"),
    period_column="period_quarter",
    attributes=("group_id",),
)
PRODUCT_KEY = ("domain_id", "family_id", "product_id", "usage_unit", "currency")
PRODUCT_MEASURES = (
    _sum("usage_quantity", "decimal", "exact decimal string, in `usage_unit`"),
    _sum("total_cost", description=TOTAL),
    _sum("releve_count", "integer"),
)
PRODUCT_MONTH = Listing(
    "product costs",
    "mv_cost_app_product_month",
    "month",
    PRODUCT_KEY,
    (*PRODUCT_MEASURES, Measure("application_count", "integer", "count(*)")),
    ("domain", "family", "product", "currency"),
    grouped=True,
)
PRODUCT_QUARTER = Listing(
    "product costs",
    "mv_cost_app_product_month",
    "quarter",
    PRODUCT_KEY,
    PRODUCT_MEASURES,
    ("domain", "family", "product", "currency"),
    grouped=True,
)
HISTORY_DOMAIN = Listing(
    "domain history",
    "mv_history_domain",
    "month",
    ("domain_id", "currency"),
    (
        Measure("total_cost", "money", description=TOTAL),
        Measure("cumulative_cost_year_to_date", "money"),
        Measure("rolling_12m_cost", "money"),
        Measure("previous_year_cost", "money"),
    ),
    ("domain", "currency"),
)
RANKING = Listing(
    "application ranking",
    "mv_rank_app_month",
    "month",
    ("application_id", "currency"),
    (
        Measure("total_cost", "money", description=TOTAL),
        Measure("cost_rank", "integer"),
        Measure("previous_month_cost", "money"),
        Measure("month_over_month_change", "money"),
        Measure(
            "month_over_month_ratio", "decimal", description="total_cost / previous_month_cost, null when 0"
        ),
    ),
    ("application", "currency"),
    default_order=("currency", "cost_rank"),
)
ANOMALIES = Listing(
    "anomalies",
    "mv_anomalies_month",
    "month",
    ("application_id", "domain_id", "currency"),
    (
        Measure("total_cost", "money", description=TOTAL),
        Measure("trailing_avg_cost", "money"),
        Measure("trailing_months_present", "integer"),
        Measure("compared_months", "integer", description="previous months the trailing average is over"),
        Measure("deviation_ratio", "decimal"),
        Measure("anomaly_kind", "text", description="SPIKE, DROP or NEW"),
    ),
    ("application", "domain", "kind", "currency"),
)
APP_BY_DOMAIN = Listing(
    "application cost by domain",
    "mv_cost_app_domain_month",
    "month",
    ("application_id", "domain_id", "currency"),
    (Measure("total_cost", "money", description=TOTAL), Measure("releve_count", "integer")),
    ("application", "domain", "currency"),
)
APP_BY_FAMILY = Listing(
    "application cost by family",
    "mv_cost_app_family_month",
    "month",
    ("application_id", "domain_id", "family_id", "currency"),
    (Measure("total_cost", "money", description=TOTAL), Measure("releve_count", "integer")),
    ("application", "domain", "family", "currency"),
)
APP_BY_PRODUCT = Listing(
    "application cost by product",
    "mv_cost_app_product_month",
    "month",
    ("application_id", "domain_id", "family_id", "product_id", "usage_unit", "currency"),
    (
        Measure("usage_quantity", "decimal", description="exact decimal string, in `usage_unit`"),
        Measure("total_cost", "money", description=TOTAL),
        Measure("releve_count", "integer"),
    ),
    ("application", "domain", "family", "product", "currency"),
)

ANOMALY_KINDS = ("SPIKE", "DROP", "NEW")


@dataclass(frozen=True)
class Sort:
    column: str
    descending: bool


@dataclass(frozen=True)
class Request:
    """A listing request once its parameters are read (filters already validated)."""

    periods: PeriodRange
    filters: dict[str, str]
    sort: Sort | None
    page: int
    page_size: int
    view: str = "direct"
    """direct (finops.mv_*) or allocated (finops_allocated.mv_*): the same tables after the rules."""


def _period_expression(listing: Listing) -> sql.Composable:
    if listing.grouped and listing.grain == "quarter":
        return sql.SQL("date_trunc('quarter', {})::date").format(sql.Identifier(listing.period_column))
    return sql.Identifier(listing.period_column)


def _range_conditions(listing: Listing, periods: PeriodRange) -> tuple[list[sql.Composable], list[Any]]:
    """Conditions on the view's own period column, so its indexes apply (quarters: whole quarters)."""
    conditions: list[sql.Composable] = []
    params: list[Any] = []
    column = sql.Identifier(listing.period_column)
    first, last = periods.first, periods.last
    if listing.grain == "quarter":
        first = quarter_start(first) if first else None
        last = quarter_start(last) if last else None
        if last and listing.period_column == "period_month":
            last = add_months(last, 2)
    if first and first == last:
        # one period: an equality lets PostgreSQL treat the period as a constant, so an index led by
        # it can also give the order of the column sorted on (rankings by change, for instance)
        return [sql.SQL("{} = %s").format(column)], [first]
    if first:
        conditions.append(sql.SQL("{} >= %s").format(column))
        params.append(first)
    if last:
        conditions.append(sql.SQL("{} <= %s").format(column))
        params.append(last)
    return conditions, params


@dataclass(frozen=True)
class Query:
    """A page's SQL and, separately, the SQL counting every matching row (run only when needed)."""

    page: sql.Composed
    page_params: list[Any]
    count: sql.Composed
    count_params: list[Any]


def build_query(listing: Listing, request: Request) -> Query:
    """SELECT … FROM the view WHERE … [GROUP BY …] ORDER BY (sort, period, key) LIMIT/OFFSET.

    The total is a separate count: a `count(*) OVER ()` on the page query would make PostgreSQL
    read and sort every matching row even for a top-10 that an index can answer directly."""
    conditions, params = _range_conditions(listing, request.periods)
    for name, value in sorted(request.filters.items()):
        conditions.append(sql.SQL("{} = %s").format(sql.Identifier(listing.column_of(name))))
        params.append(value)
    where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("")

    dimensions = [sql.Identifier(name) for name in listing.dimensions]
    attributes = [sql.Identifier(name) for name in listing.attributes]
    measures = [measure.select(listing.grouped) for measure in listing.measures]
    inner = sql.SQL("SELECT {period} AS period, {columns} FROM {view}{where}").format(
        period=_period_expression(listing),
        columns=sql.SQL(", ").join([*dimensions, *attributes, *measures]),
        view=sql.Identifier(cost_view(request.view).schema, listing.view),
        where=where,
    )
    if listing.grouped:
        inner += sql.SQL(" GROUP BY {}").format(sql.SQL(", ").join([sql.SQL("1"), *dimensions]))

    order: list[sql.Composable] = []
    seen: set[str] = set()

    def by(column: str, descending: bool = False) -> None:
        if column in seen:
            return
        seen.add(column)
        direction = sql.SQL(" DESC NULLS LAST") if descending else sql.SQL(" ASC NULLS LAST")
        order.append(sql.Identifier(column) + direction)

    if request.sort:
        by(request.sort.column, request.sort.descending)
    by("period")
    for name in listing.default_order:
        by(name.lstrip("-"), name.startswith("-"))
    for name in listing.dimensions:
        by(name)
    page = sql.SQL("SELECT * FROM ({inner}) AS listing ORDER BY {order} LIMIT %s OFFSET %s").format(
        inner=inner, order=sql.SQL(", ").join(order)
    )
    count = sql.SQL("SELECT count(*) AS total FROM ({inner}) AS listing").format(inner=inner)
    return Query(page, [*params, request.page_size, (request.page - 1) * request.page_size], count, params)


def exact(value: Decimal | None) -> str | None:
    """A numeric as an exact decimal string, never in exponent notation (1E-7 → 0.0000001)."""
    return None if value is None else format(value, "f")


def period_text(grain: Grain, period: dt.date) -> str:
    return quarter_label(period) if grain == "quarter" else month_label(period)


def render(listing: Listing, row: dict[str, Any]) -> dict[str, Any]:
    """One view row as the API shows it: the period label, the key, exact decimal strings."""
    item: dict[str, Any] = {"period": period_text(listing.grain, row["period"])}
    for name in (*listing.dimensions, *listing.attributes):
        item[name] = row[name]
    for measure in listing.measures:
        value = row[measure.name]
        if measure.kind in ("money", "decimal"):
            item[measure.name] = exact(value)
        elif measure.kind == "integer":
            item[measure.name] = None if value is None else int(value)
        else:
            item[measure.name] = value
    return item
