"""The alert rules, checked and unit-tested by the real promtool: every alert fires on the series that
should fire it and stays quiet on those that should not; each has a summary, a description and a
runbook in the README; each reads only metrics the code defines."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from finops_dagster_tests.support.metric_names import (
    RULES,
    defined_metric_names,
    referenced_metric_names,
    rules,
)
from finops_dagster_tests.support.processes import REPOSITORY, binary

TESTS = sorted(Path(__file__).parent.glob("finops-rules*.test.yaml"))


def alerts() -> list[dict]:  # type: ignore[type-arg]
    return [rule for group in rules()["groups"] for rule in group["rules"] if "alert" in rule]


def test_promtool_checks_the_rules() -> None:
    done = subprocess.run([binary("promtool"), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules()['groups'][0]['rules']) + len(rules()['groups'][1]['rules'])} rules found" \
        in done.stdout


def test_promtool_unit_tests_pass() -> None:
    done = subprocess.run(
        [binary("promtool"), "test", "rules", *map(str, TESTS)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(TESTS)


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case["alert_rule_test"]:
                (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    names = {alert["alert"] for alert in alerts()}
    assert names - firing == set()
    assert names - quiet == set()


def test_every_alert_has_a_summary_a_description_and_a_runbook_in_the_readme() -> None:
    readme = (REPOSITORY / "README.md").read_text()
    anchors = {re.sub(r"[^a-z0-9_ -]", "", heading.lower()).strip().replace(" ", "-")
               for heading in re.findall(r"^#+ (.+)$", readme, flags=re.MULTILINE)}
    for alert in alerts():
        annotations = alert["annotations"]
        assert annotations["summary"] and annotations["description"], alert["alert"]
        page, _, anchor = annotations["runbook_url"].partition("#")
        assert page == "README.md" and anchor in anchors, alert["alert"]


def test_the_rules_read_only_metrics_the_code_defines() -> None:
    defined = defined_metric_names()
    for group in rules()["groups"]:
        for rule in group["rules"]:
            referenced = referenced_metric_names(rule["expr"])
            assert referenced, rule
            assert referenced <= defined, referenced - defined
