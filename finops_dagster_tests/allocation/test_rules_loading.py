"""The rule file loads like the rate cards: the reference asset stores its rows in the mart, and a
malformed file fails the step naming the file and line (or the rule), loading nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from dagster import DagsterInstance, materialize

from finops_dagster.allocation.rules import COLUMNS
from finops_dagster.mart.allocation import read_rules
from finops_dagster.reference.assets import reference_data

HEADER = ",".join(COLUMNS)
GOOD = (
    "IDLE,v1,10,2025-01-01,,UNALLOCATED,open_legacy,,,domain,open_legacy,proportional,",
    "SHARE,v1,20,2025-01-01,2026-01-01,MONITORING,,,,applications,BACKUP=60;DATAHUB=40,fixed,",
)


def rule_file(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "rules.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def load(resources: dict[str, Any], monkeypatch: pytest.MonkeyPatch, path: Path) -> Any:
    monkeypatch.setenv("FINOPS_ALLOCATION_RULES", str(path))
    with DagsterInstance.ephemeral() as instance:
        return materialize([reference_data], resources=resources, instance=instance, raise_on_error=False)


def test_the_rules_are_stored_and_read_back_as_the_file_says(
    resources: dict[str, Any], mart: psycopg.Connection, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    result = load(resources, monkeypatch, rule_file(tmp_path, *GOOD))
    assert result.success
    [materialization] = result.asset_materializations_for_node("reference_data")
    assert materialization.metadata["allocation_rules"].value == 2
    rules = read_rules(mart)
    assert [(rule.rule_id, rule.version, str(rule.method)) for rule in rules] == [
        ("IDLE", "v1", "proportional"),
        ("SHARE", "v1", "fixed"),
    ]
    assert rules[1].percentages[0][0] == "BACKUP" and str(rules[1].valid_to) == "2026-01-01"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            "BAD,v1,10,2025-01-01,,A,,,,applications,B=60;C=30,fixed,",
            "rules.csv line 3: fixed percentages add up",
        ),
        (
            "BAD,v1,10,2025-01-01,,A,no_such_domain,,,applications,B,even,",
            "rule BAD (v1): unknown source_domain",
        ),
    ],
)
def test_a_malformed_rule_fails_the_step_naming_file_and_row_and_loads_nothing(
    resources: dict[str, Any],
    mart: psycopg.Connection,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    row: str,
    message: str,
) -> None:
    assert load(resources, monkeypatch, rule_file(tmp_path, GOOD[0])).success
    result = load(resources, monkeypatch, rule_file(tmp_path, GOOD[0], row))
    assert not result.success
    [failure] = [event for event in result.all_events if event.event_type_value == "STEP_FAILURE"]
    assert message in str(failure.step_failure_data.error)
    assert [rule.rule_id for rule in read_rules(mart)] == ["IDLE"]  # the previous rules stay


def test_a_missing_configured_file_is_a_setting_error(
    resources: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    result = load(resources, monkeypatch, tmp_path / "absent.csv")
    assert not result.success
    [failure] = [event for event in result.all_events if event.event_type_value == "STEP_FAILURE"]
    assert "FINOPS_ALLOCATION_RULES:" in str(failure.step_failure_data.error)
