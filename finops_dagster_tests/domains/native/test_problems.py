"""The native domain's value readers (sizes, counts, quantities, ids): exact, or refused with a reason."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from finops_dagster.domains.native.problems import ValueProblem, byte_count, count, identifier, quantity


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (0, 0),
        (1038090, 1038090),
        ("2066080", 2066080),
        (" 42 ", 42),
        (1024.0, 1024),
        (Decimal("7"), 7),
        ("1e3", 1000),
        (-0.0, 0),
        (2**63 - 1, 2**63 - 1),
    ],
)
def test_byte_count_accepts_whole_non_negative_numbers(raw: Any, expected: int) -> None:
    value = byte_count(raw, "size")
    assert value == expected
    assert type(value) is int


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "size: missing"),
        (True, "size: not a number (bool)"),
        (False, "size: not a number (bool)"),
        (-5, "size: negative (-5)"),
        ("-1", "size: negative (-1)"),
        (float("nan"), "size: NaN"),
        ("NaN", "size: NaN"),
        ("inf", "size: infinite (inf)"),
        ("12 MB", "size: not a number ('12 MB')"),
        ("abc", "size: not a number ('abc')"),
        ([1], "size: not a number (list)"),
        ({"bytes": 1}, "size: not a number (dict)"),
        (1.5, "size: not a whole number of bytes (1.5)"),
        (2**63, f"size: too large ({2**63})"),
    ],
)
def test_byte_count_refuses_with_a_reason(raw: Any, reason: str) -> None:
    with pytest.raises(ValueProblem) as caught:
        byte_count(raw, "size")
    assert str(caught.value) == reason


def test_count_quantity_and_identifier_readers() -> None:
    assert count(1337, "downloadCount") == 1337
    with pytest.raises(ValueProblem, match=r"^downloadCount: not a whole number of items \(2\.5\)$"):
        count(2.5, "downloadCount")
    assert quantity(0.1, "minutes") == Decimal("0.1")
    assert quantity(0.1, "minutes") != Decimal.from_float(0.1)
    assert quantity("12.50", "minutes") == Decimal("12.50")
    assert str(quantity(-0.0, "minutes")) == "0.0"
    with pytest.raises(ValueProblem, match=r"^minutes: negative \(-1\.5\)$"):
        quantity(-1.5, "minutes")
    assert identifier(4, "id") == 4
    assert identifier("125", "id") == 125
    for raw, reason in [
        (None, "id: missing"),
        (True, "id: not an integer id (bool)"),
        (4.0, "id: not an integer id (float)"),
        ("abc", "id: not an integer id ('abc')"),
        (-3, "id: not an integer id ('-3')"),
        (0, "id: not a positive id (0)"),
    ]:
        with pytest.raises(ValueProblem) as caught:
            identifier(raw, "id")
        assert str(caught.value) == reason
