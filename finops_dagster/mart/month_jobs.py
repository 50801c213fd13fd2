"""Closing a month and approving a restatement, as Dagster jobs (the CLI's `close` and `restate
--approve` do the same): launched from the UI with their config, recorded like any run."""

import datetime as dt

from dagster import Config, OpExecutionContext, job, op

from finops_dagster.mart.month_close import close_month
from finops_dagster.mart.publish import approve_restatement
from finops_dagster.resources.postgres import PostgresResource


def month_of(text: str) -> dt.date:
    """`YYYY-MM` as the month's first day; ValueError naming the expected form."""
    try:
        return dt.date.fromisoformat(f"{text.strip()}-01")
    except ValueError:
        raise ValueError(f"month {text!r}: expected YYYY-MM") from None


class CloseMonthConfig(Config):
    month: str
    """YYYY-MM"""
    by: str
    """who closes it (recorded, shown by the API)"""
    note: str = ""


class ApproveRestatementConfig(Config):
    month: str
    """YYYY-MM"""
    run: str
    """the run id whose restatement is approved"""
    by: str
    """who approves it"""


@op
def close_the_month(
    context: OpExecutionContext, config: CloseMonthConfig, postgres: PostgresResource
) -> None:
    """Close the month: from now on the nightly skips it and only an approved restatement changes it."""
    with postgres.connect() as conn:
        status = close_month(conn, month_of(config.month), by=config.by, note=config.note or None)
    context.log.info(status.describe())


@op
def approve_the_restatement(
    context: OpExecutionContext, config: ApproveRestatementConfig, postgres: PostgresResource
) -> None:
    """Publish the month's restatement by the run: facts, allocation and aggregates together."""
    with postgres.connect() as conn:
        status = approve_restatement(conn, month_of(config.month), config.run, by=config.by)
    context.log.info(f"{status.describe()}: restatement by run {config.run} approved by {config.by}")


@job(
    name="close_month",
    description="Close a month (config: month YYYY-MM, by, note): the nightly no longer rewrites it.",
)
def close_month_job() -> None:
    close_the_month()


@job(
    name="approve_restatement",
    description="Approve a closed month's restatement (config: month YYYY-MM, run, by): its new version "
    "is published (facts, allocation and aggregates together) and the version goes up.",
)
def approve_restatement_job() -> None:
    approve_the_restatement()
