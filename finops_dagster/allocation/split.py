"""Dividing an amount among weights so that the parts add up to the amount exactly.

Each part is rounded down to the mart's quantum (numeric(24,6)); the quanta left over go one each to
the parts with the largest rounding remainders, ties broken by the target's id, so the same inputs
always give the same parts (the largest-remainder method). Fractions keep the arithmetic exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from fractions import Fraction
from math import floor

QUANTUM = Decimal("0.000001")


def split_exactly(
    amount: Decimal, weights: Mapping[str, Decimal], quantum: Decimal = QUANTUM
) -> dict[str, Decimal]:
    """`amount` divided in proportion to `weights` (all >= 0, at least one > 0), to the quantum."""
    if amount != amount.quantize(quantum):
        raise ValueError(f"amount {amount} has more decimals than the quantum {quantum}")
    if any(weight < 0 for weight in weights.values()):
        raise ValueError("weights must not be negative")
    total_weight = sum((Fraction(weight) for weight in weights.values()), Fraction(0))
    if total_weight == 0:
        raise ValueError("weights add up to zero")
    units = int(amount / quantum)
    sign, units = (-1 if units < 0 else 1), abs(units)
    exact = {target: units * Fraction(weight) / total_weight for target, weight in weights.items()}
    parts = {target: floor(share) for target, share in exact.items()}
    left_over = units - sum(parts.values())
    by_remainder = sorted(exact, key=lambda target: (-(exact[target] - parts[target]), target))
    for target in by_remainder[:left_over]:
        parts[target] += 1
    return {target: sign * count * quantum for target, count in parts.items()}
