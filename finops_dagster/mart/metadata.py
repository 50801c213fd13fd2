"""Materialization metadata shared by the domain assets: numbers the UI can plot across partitions.

Dagster records one materialization per partition of a run with the same metadata, so the
numeric entries are the run's totals and a table gives the per-month figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from dagster import MetadataValue

from finops_dagster.mart.staging import StagedLoad


def load_metadata(staged: Sequence[StagedLoad]) -> dict[str, Any]:
    total = sum((load.total_cost for load in staged), Decimal(0))
    unallocated = sum((load.unallocated_cost for load in staged), Decimal(0))
    share = float(unallocated / total) if total else 0.0
    rows = ["| month | relevés | total cost | unallocated cost | rejects |", "|---|---:|---:|---:|---:|"]
    rows += [
        f"| {load.period_month} | {load.releves} | {load.total_cost} | {load.unallocated_cost} "
        f"| {load.rejects} |"
        for load in staged
    ]
    return {
        "releves": MetadataValue.int(sum(load.releves for load in staged)),
        "total_cost": MetadataValue.float(float(total)),
        "total_cost_exact": MetadataValue.text(str(total)),
        "unallocated_cost": MetadataValue.float(float(unallocated)),
        "unallocated_share": MetadataValue.float(round(share, 6)),
        "rejects": MetadataValue.int(sum(load.rejects for load in staged)),
        "months": MetadataValue.md("\n".join(rows)),
    }
