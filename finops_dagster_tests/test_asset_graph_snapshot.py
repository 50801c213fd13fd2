"""The asset graph as the code location builds it, compared with a reviewed snapshot.

Keys, dependencies, partitions, groups, backfill policies, checks (and whether they block), jobs,
schedules and sensors, for every domain enabled. A change to any of them fails this test until the
snapshot is regenerated, so it shows in review as a diff of `snapshots/asset_graph.json`:

    FINOPS_UPDATE_SNAPSHOT=1 .venv/bin/pytest -q finops_dagster_tests/test_asset_graph_snapshot.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from dagster import Definitions, MonthlyPartitionsDefinition

from finops_dagster.pipeline import DOMAINS, build_definitions

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"
RESOURCE_KEYS = ("postgres", "cmdb", "run_ledger", "private_cloud", "public_cloud", "native")
"""The graph does not depend on the resources' values, only on their keys."""


def describe_partitions(partitions: Any) -> str | None:
    if partitions is None:
        return None
    if isinstance(partitions, MonthlyPartitionsDefinition):
        # the start is the setting FINOPS_FIRST_MONTH, not part of the graph's shape
        return f"monthly from FINOPS_FIRST_MONTH, end_offset={partitions.end_offset}"
    return type(partitions).__name__


def graph_of(defs: Definitions) -> dict[str, Any]:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
            "group": node.group_name,
            "partitions": describe_partitions(node.partitions_def),
            "backfill_policy": str(node.backfill_policy) if node.backfill_policy else None,
            "checks": {
                check.name: {"blocking": graph.get(check).blocking} for check in sorted(node.check_keys)
            },
        }
    jobs = {}
    for job in sorted(defs.resolve_all_job_defs(), key=lambda job: job.name):
        if job.name.startswith("__"):
            continue
        layer = job.asset_layer
        jobs[job.name] = {
            "assets": sorted(key.to_user_string() for key in layer.selected_asset_keys),
            "checks": sorted(key.to_user_string() for key in layer.asset_graph.asset_check_keys),
        }
    return {
        "assets": assets,
        "jobs": jobs,
        "schedules": {
            schedule.name: {"job": schedule.job_name, "cron": schedule.cron_schedule}
            for schedule in sorted(defs.schedules or [], key=lambda schedule: schedule.name)
        },
        "sensors": sorted(sensor.name for sensor in defs.sensors or []),
    }


def test_the_asset_graph_matches_its_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINOPS_DOMAINS_ENABLED", ",".join(DOMAINS))
    for name in ("FINOPS_NIGHTLY_CRON", "FINOPS_TIMEZONE", "FINOPS_FRESHNESS_DEADLINE"):
        monkeypatch.delenv(name, raising=False)
    graph = graph_of(build_definitions(dict.fromkeys(RESOURCE_KEYS)))
    text = json.dumps(graph, indent=2, ensure_ascii=False) + "\n"
    if os.environ.get("FINOPS_UPDATE_SNAPSHOT"):
        SNAPSHOT.write_text(text, encoding="utf-8")
    assert text == SNAPSHOT.read_text(encoding="utf-8"), (
        "the asset graph changed: review the difference, then regenerate the snapshot "
        "(FINOPS_UPDATE_SNAPSHOT=1, see this module's docstring)"
    )
