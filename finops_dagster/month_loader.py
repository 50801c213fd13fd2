"""The loop every domain asset runs: the run's months, one reference snapshot, each month read,
staged, logged, and the materialization's metadata.

A domain supplies only how it reads a month (its sources and rules) and what its log line adds;
asset keys, partitions, checks and metadata keys stay the domain's and the mart's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from dagster import AssetExecutionContext

from finops_dagster.mart.metadata import load_metadata
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
) -> dict[str, Any]:
    """Read and stage each month of the run (a backfill of twelve months is one run, one snapshot
    of the reference data); the staged loads' metadata."""
    now = utc_now()
    snapshot = read_snapshot(conn, domain_id)
    staged = []
    for key in context.partition_keys:
        month = dt.date.fromisoformat(key)
        load = read(MonthToLoad(conn, snapshot, month, context.run_id, now))
        staged.append(stage_domain_load(conn, load, context.run_id))
        context.log.info(
            f"{domain_id} {month:%Y-%m}: {len(load.releves)} relevés, total {load.total_cost}, "
            f"{len(load.rejects)} rejects{log_suffix(load)}"
        )
    return load_metadata(staged)
