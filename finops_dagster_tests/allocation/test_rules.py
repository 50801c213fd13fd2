"""The allocation rule file: each malformed rule refused with the file, line and reason; valid rules
read, ordered and chosen by month."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from finops_dagster.allocation.rules import COLUMNS, Method, TargetKind, load_rules, rules_of_month
from finops_dagster.reference.catalog import ReferenceDataError

HEADER = ",".join(COLUMNS)
GOOD = [
    "SHARE-CI,v1,20,2026-01-01,,PLATFORM,native,,,domain,native,proportional,",
    "IDLE,v1,10,2026-01-01,2026-07-01,UNALLOCATED,,,,applications,APP_A=70;APP_B=30,fixed,",
    "IDLE,v2,10,2026-07-01,,UNALLOCATED,,,,group,G1,quantity,PC_VCPU",
]


def write(directory: Path, *rows: str) -> Path:
    (directory / "allocation_rules.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    return directory


def test_valid_rules_are_read_and_chosen_by_month_in_order(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path, *GOOD))
    june = rules_of_month(rules, dt.date(2026, 6, 1))
    assert [(rule.rule_id, rule.version) for rule in june] == [("IDLE", "v1"), ("SHARE-CI", "v1")]
    assert june[0].percentages == (("APP_A", Decimal(70)), ("APP_B", Decimal(30)))
    july = rules_of_month(rules, dt.date(2026, 7, 1))
    assert (july[0].version, july[0].method, july[0].target_kind) == ("v2", Method.QUANTITY, TargetKind.GROUP)
    assert rules_of_month(rules, dt.date(2025, 12, 1)) == []


def test_no_file_means_no_rule(tmp_path: Path) -> None:
    assert load_rules(tmp_path) == ()


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("R,v1,1,2026-01-01,,A,,,,applications,B=60;C=30,fixed,", "add up to 90, not 100"),
        ("R,v1,1,2026-01-01,,A,,,,applications,B:60,fixed,", "is not APPLICATION=PERCENT"),
        ("R,v1,1,2026-01-01,,A,,,,group,G1,fixed,", "needs target_kind applications"),
        ("R,v1,1,2026-01-01,,A,,,,applications,B,quantity,", "basis_product is required"),
        ("R,v1,1,2026-01-01,,A,,,,applications,B,even,PC_VCPU", "basis_product is required"),
        ("R,v1,1,2026-01-01,,A,,,,applications,A;B,even,", "A is both the source and a target"),
        ("R,v1,1,2026-01-15,,A,,,,applications,B,even,", "is not the first day of a month"),
        ("R,v1,1,2026-03-01,2026-02-01,A,,,,applications,B,even,", "valid_to must be after valid_from"),
        ("R,v1,1,2026-01-01,,A,,,,applications,B,random,", "'random' is not a valid Method"),
        ("R,v1,1,2026-01-01,,A,,,,domain,x;y,even,", "names exactly one domain"),
        ("R,v1,x,2026-01-01,,A,,,,applications,B,even,", "invalid literal for int()"),
        (",v1,1,2026-01-01,,A,,,,applications,B,even,", "rule_id is empty"),
    ],
)
def test_a_malformed_rule_is_refused_naming_file_and_line(tmp_path: Path, row: str, message: str) -> None:
    with pytest.raises(ReferenceDataError, match=r"allocation_rules\.csv line 3") as refused:
        load_rules(write(tmp_path, GOOD[0], row))
    assert message in str(refused.value)


def test_overlapping_versions_of_a_rule_are_refused(tmp_path: Path) -> None:
    overlapping = "IDLE,v2,10,2026-06-01,,UNALLOCATED,,,,group,G1,even,"
    with pytest.raises(ReferenceDataError, match="rule IDLE: versions v1 and v2 overlap"):
        load_rules(write(tmp_path, GOOD[1], overlapping))
