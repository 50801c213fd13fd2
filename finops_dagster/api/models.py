"""Response shapes, for the OpenAPI schema at /openapi.json and for the tests that hold the API to it.

Routes build plain dicts and serialise them once (no per-row model validation on the hot path); the
tests validate every response against these models, so the documentation cannot drift from the code.
Item models of the cost listings are derived from the listings themselves (`listings.py`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from finops_dagster.api.listings import Listing

ExactDecimal = str
GrainName = Literal["month", "quarter"]


class Problem(BaseModel):
    """Every error body: a status and a message a person can act on (never a token, never SQL)."""

    status: int
    error: str
    detail: str


def item_model(listing: Listing, name: str) -> type[BaseModel]:
    fields: dict[str, Any] = {
        "period": (str, Field(description="YYYY-MM (month grain) or YYYY-Qn (quarter grain)")),
    }
    for column in (*listing.dimensions, *listing.attributes):
        fields[column] = (str | None if column in listing.attributes else str, ...)
    for measure in listing.measures:
        python: Any = {"money": str, "decimal": str | None, "integer": int | None, "text": str}[measure.kind]
        fields[measure.name] = (python, Field(description=measure.description or None))
    model: type[BaseModel] = create_model(
        name, __config__=ConfigDict(extra="forbid"), __doc__=f"One row of {listing.view}.", **fields
    )
    return model


def page_model(item: type[BaseModel], name: str) -> type[BaseModel]:
    model: type[BaseModel] = create_model(
        name,
        __config__=ConfigDict(extra="forbid"),
        grain=(GrainName, Field(description="costs are monthly; quarters add up months")),
        items=(list[item], ...),  # type: ignore[valid-type]
        page=(int, ...),
        page_size=(int, ...),
        total=(int, Field(description="rows matching the filters, over all pages")),
    )
    return model


class MonthFreshness(BaseModel):
    model_config = ConfigDict(extra="forbid")
    period: str = Field(description="YYYY-MM")
    last_published_at: str | None = Field(description="end of the last successful run that published it")
    last_run_id: str | None
    publish_count: int
    current_month: bool = Field(description="the month is still running: its costs are incomplete")
    complete: bool = Field(description="published and over")


class Freshness(BaseModel):
    model_config = ConfigDict(extra="forbid")
    last_published_at: str | None
    last_run_id: str | None
    current_month: str
    last_complete_month: str | None = Field(description="the latest published month that is over")
    months: list[MonthFreshness]


# --- Backstage Cost Insights (see backstage.py) ---------------------------------------------
# The plugin's types (@backstage/plugin-cost-insights-common) make some fields optional but never
# nullable: such a field is left out of the body when there is nothing to say, and declared here as
# optional without `null` (`omitted`). Fields the plugin does not know (amountExact, currency, grain…)
# are the API's own additions, which the plugin ignores.


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def omitted(description: str = "") -> Any:
    """A field that is either present with a value or absent from the body, never null."""
    return Field(default=None, description=description or None, json_schema_extra=_no_default)


class BackstageModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BackstageGroup(BackstageModel):
    id: str
    name: str


class BackstageProject(BackstageModel):
    id: str
    name: str


class DateAggregation(BackstageModel):
    date: str = Field(description="first day of the month (the grain is the month)")
    amount: float = Field(description="for the chart; the exact amount is amountExact")
    amountExact: ExactDecimal


class ChangeStatistic(BackstageModel):
    ratio: float = omitted("(current - previous) / previous; absent when previous is 0")
    amount: float
    amountExact: ExactDecimal
    ratioExact: ExactDecimal = omitted("the exact ratio; absent with ratio")


class Trendline(BackstageModel):
    slope: float = Field(description="per second: x is the month's first day as a Unix timestamp")
    intercept: float


class BackstageCost(BackstageModel):
    id: str
    aggregation: list[DateAggregation]
    change: ChangeStatistic
    trendline: Trendline = omitted("least-squares line over the points; absent with fewer than two")
    groupedCosts: dict[str, list[BackstageCost]] = omitted("a project's cost per domain")
    currency: str
    grain: Literal["month"]


class BackstageEntity(BackstageModel):
    id: str | None = Field(description="null for cost without a label, as the plugin's Entity allows")
    aggregation: tuple[float, float] = Field(description="[previous period, current period]")
    aggregationExact: tuple[ExactDecimal, ExactDecimal]
    change: ChangeStatistic
    entities: dict[str, list[BackstageEntity]]
    currency: str
    grain: Literal["month"]


class AlertProduct(BackstageModel):
    id: str
    aggregation: tuple[float, float]


class BackstageAlert(BackstageModel):
    """Shaped as Cost Insights' ProjectGrowthData, with a title and subtitle ready to show."""

    kind: Literal["SPIKE", "DROP", "NEW"]
    title: str
    subtitle: str
    project: str
    periodStart: str = Field(description="YYYY-Qn: the quarter of the first month compared with")
    periodEnd: str = Field(description="YYYY-Qn: the quarter of the alert's month")
    month: str = Field(description="YYYY-MM: the alert's month")
    comparedMonths: int = Field(description="how many previous months the average is over")
    aggregation: tuple[float, float] = Field(description="[average of the previous months, the month's cost]")
    change: ChangeStatistic
    products: list[AlertProduct]
    currency: str


class BillingDate(BackstageModel):
    date: str = Field(description="YYYY-MM-DD: last day of the latest complete, published month")
    grain: Literal["month"]
