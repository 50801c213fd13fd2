"""The Grafana dashboard loads, lays its panels out without overlap, and every PromQL it holds reads
only metrics the code defines (the end-to-end test also runs each against a real Prometheus)."""

from __future__ import annotations

from finops_dagster_tests.observe.dashboard import dashboard, expressions, panels
from finops_dagster_tests.support.metric_names import defined_metric_names, referenced_metric_names


def test_the_dashboard_loads_with_its_panels() -> None:
    board = dashboard()
    assert board["uid"] == "finops-dagster"
    titles = [panel["title"] for panel in panels()]
    assert len(titles) == len(set(titles)) >= 15
    for required in ("Cost per domain and month", "Relevés per domain and month", "Rejects",
                     "Unallocated share of cost", "Run duration", "Step durations (last run)",
                     "Requests per second by route and status", "Latency p50 / p99"):
        assert required in titles
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels():
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}"


def test_panels_do_not_overlap() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in dashboard()["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                 for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cells & taken, panel["title"]
        taken |= cells


def test_every_query_reads_only_metrics_the_code_defines() -> None:
    defined = defined_metric_names()
    for title, promql in expressions():
        referenced = referenced_metric_names(promql)
        assert referenced, title
        assert referenced <= defined, (title, referenced - defined)
