"""The metric names the code defines (with the suffixes Prometheus exposes), and those a PromQL text
references, so rules and dashboards can be held to metrics that exist."""

from __future__ import annotations

import re

import yaml

from finops_dagster.api.metrics import ApiMetrics
from finops_dagster.observe.run_metrics import DOMAIN_METRICS, RUN_METRICS
from finops_dagster_tests.support.processes import REPOSITORY

SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
NAME = re.compile(r"\bfinops[a-z0-9_:]*")
QUOTED = re.compile(r'"[^"]*"')
"""Label values (job="finops_nightly") are not metric names."""
RULES = REPOSITORY / "deploy" / "prometheus" / "finops-rules.yaml"


def defined_metric_names() -> set[str]:
    names = set(RUN_METRICS) | set(DOMAIN_METRICS)
    for family in ApiMetrics(dict).registry.collect():
        names |= {family.name + suffix for suffix in SUFFIXES[family.type]}
    return names | recorded_names()


def recorded_names() -> set[str]:
    return {rule["record"] for group in rules()["groups"] for rule in group["rules"] if "record" in rule}


def rules() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load(RULES.read_text())


def referenced_metric_names(promql: str) -> set[str]:
    return set(NAME.findall(QUOTED.sub("", promql)))
