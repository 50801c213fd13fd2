"""The Grafana dashboard's panels and PromQL, read from deploy/grafana/finops-dagster.json."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from finops_dagster_tests.support.processes import REPOSITORY

DASHBOARD = REPOSITORY / "deploy" / "grafana" / "finops-dagster.json"
LABEL_VALUES = re.compile(r"label_values\(\s*([a-z_:][a-z0-9_:]*)\s*,\s*([a-z_][a-z0-9_]*)\s*\)")
VARIABLES = {"$job": ".*", "$domain": ".*", "$api_job": ".*"}


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def panels(items: list[dict[str, Any]] | None = None) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested ones included (rows themselves left out)."""
    for panel in dashboard()["panels"] if items is None else items:
        if panel["type"] == "row":
            yield from panels(panel.get("panels", []))
        else:
            yield panel


def expressions() -> Iterator[tuple[str, str]]:
    """(panel title, PromQL) of every target, and of the template variables' queries."""
    for panel in panels():
        for target in panel["targets"]:
            yield panel["title"], target["expr"]
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            yield f"variable {variable['name']}", _as_promql(variable["query"]["query"])


def _as_promql(query: str) -> str:
    """Grafana's `label_values(metric, label)` as the PromQL that lists the same values."""
    match = LABEL_VALUES.fullmatch(query.strip())
    assert match, f"unexpected variable query {query!r}"
    return f"group by ({match.group(2)}) ({match.group(1)})"


def with_variables(promql: str) -> str:
    """The expression as Prometheus would receive it with every variable on All."""
    for name, value in VARIABLES.items():
        promql = promql.replace(name, value)
    return promql
