"""Exact division: the parts always add up to the amount, none has the wrong sign, each is within one
quantum of its exact share, and the same inputs give the same parts."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from finops_dagster.allocation.split import QUANTUM, split_exactly

amounts = st.decimals(min_value=Decimal("-1e12"), max_value=Decimal("1e12"), places=6, allow_nan=False)
weights = st.dictionaries(
    st.text(alphabet="ABCDEFGHIJ", min_size=1, max_size=3),
    st.decimals(min_value=0, max_value=Decimal("1e9"), places=4, allow_nan=False),
    min_size=1,
    max_size=12,
).filter(lambda found: sum(found.values()) > 0)


@given(amounts, weights)
def test_the_parts_add_up_to_the_amount_and_keep_its_sign(
    amount: Decimal, shares: dict[str, Decimal]
) -> None:
    parts = split_exactly(amount, shares)
    assert sum(parts.values()) == amount
    assert set(parts) == set(shares)
    assert all(part.as_tuple().exponent >= -6 for part in parts.values())
    if amount >= 0:
        assert all(part >= 0 for part in parts.values())
    else:
        assert all(part <= 0 for part in parts.values())
    total = sum(Fraction(weight) for weight in shares.values())
    for target, part in parts.items():
        exact = Fraction(amount) * Fraction(shares[target]) / total
        assert abs(Fraction(part) - exact) < Fraction(QUANTUM)
        if shares[target] == 0:
            assert part == 0


@given(amounts, weights)
def test_the_same_inputs_give_the_same_parts_whatever_their_order(
    amount: Decimal, shares: dict[str, Decimal]
) -> None:
    reversed_shares = dict(reversed(list(shares.items())))
    assert split_exactly(amount, shares) == split_exactly(amount, reversed_shares)


def test_the_remainder_goes_to_the_largest_remainders_then_by_id() -> None:
    assert split_exactly(Decimal("0.000002"), {"B": Decimal(1), "A": Decimal(1), "C": Decimal(1)}) == {
        "A": Decimal("0.000001"),
        "B": Decimal("0.000001"),
        "C": Decimal("0"),
    }
    assert split_exactly(Decimal("100"), {"A": Decimal(1), "B": Decimal(2)}) == {
        "A": Decimal("33.333333"),
        "B": Decimal("66.666667"),
    }


@pytest.mark.parametrize(
    ("amount", "shares", "message"),
    [
        (Decimal("1.0000001"), {"A": Decimal(1)}, "more decimals than the quantum"),
        (Decimal(1), {"A": Decimal(-1), "B": Decimal(2)}, "must not be negative"),
        (Decimal(1), {"A": Decimal(0)}, "add up to zero"),
    ],
)
def test_impossible_splits_are_refused(amount: Decimal, shares: dict[str, Decimal], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        split_exactly(amount, shares)
