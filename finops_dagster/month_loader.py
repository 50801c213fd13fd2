"""The loop every domain asset runs: the run's months, one reference snapshot, each month read,
staged, logged, and each month's materialization metadata (its own figures, on its own partition).

A domain supplies only how it reads a month (its sources and rules) and what its log line adds;
asset keys, partitions, checks and metadata keys stay the domain's and the mart's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from dagster import AssetExecutionContext

from finops_dagster.mart.metadata import month_metadata, staged_month_figures
from finops_dagster.mart.staging import stage_domain_load
from finops_dagster.reference.snapshot import ReferenceSnapshot, read_snapshot
from finops_dagster.releve import DomainLoad, utc_now


@dataclass(frozen=True)
class MonthToLoad:
    """What a domain's reader gets for one month of the run."""

    conn: psycopg.Connection
    snapshot: ReferenceSnapshot
    month: dt.date
    run_id: str
    now: dt.datetime


MonthReader = Callable[[MonthToLoad], DomainLoad]


def load_months(
    context: AssetExecutionContext,
    conn: psycopg.Connection,
    domain_id: str,
    read: MonthReader,
    log_suffix: Callable[[DomainLoad], str] = lambda load: "",
    month_extra: Callable[[DomainLoad], Mapping[str, Any]] = lambda load: {},
) -> None:
    """Read and stage each month of the run (a backfill of twelve months is one run, one snapshot
    of the reference data). Each month's figures, read back from what was staged, and the domain's
    `month_extra`, become the metadata of that month's partition only."""
    now = utc_now()
    snapshot = read_snapshot(conn, domain_id)
    for key in context.partition_keys:
        month = dt.date.fromisoformat(key)
        load = read(MonthToLoad(conn, snapshot, month, context.run_id, now))
        stage_domain_load(conn, load, context.run_id)
        figures = staged_month_figures(conn, domain_id, month, context.run_id)
        context.add_asset_metadata({**month_metadata(figures), **month_extra(load)}, partition_key=key)
        costs = ", ".join(f"{cost.total} {cost.currency}" for cost in figures.costs) or "no cost"
        context.log.info(
            f"{domain_id} {month:%Y-%m}: {figures.releves} relevés, total {costs}, "
            f"{figures.rejects} rejects{log_suffix(load)}"
        )
