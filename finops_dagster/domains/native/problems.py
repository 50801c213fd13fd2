"""What a native-domain parser could not turn into a usage record, and the value readers that say why.

GitLab sends sizes as JSON integers (bytes) and CI minutes as numbers; Artifactory sends some sizes
as integers too (`usedSpaceInBytes`). One definition of "a usable byte count" and "a usable
quantity" keeps the reject reasons of both sources alike and keeps floats out: a quantity becomes a
`Decimal` built from the number's shortest text form, a byte count an exact `int`.

`UsageProblem` has the same shape as the private-cloud one on purpose (a later refactor may merge
them); it is defined here so the native domain does not depend on another domain's package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = [
    "MAX_COUNT",
    "UsageProblem",
    "ValueProblem",
    "as_raw",
    "byte_count",
    "count",
    "identifier",
    "quantity",
]


@dataclass(frozen=True)
class UsageProblem:
    """One source entry that cannot become a usage record: where it was, why, and what it carried.

    The parsers return these next to the good records instead of raising, so one bad project or
    repository does not hide the rest of the page, and instead of dropping, so the caller can turn
    it into a `Reject` (invariant 4: nothing lost, invariant 6: a reason for every refusal).
    """

    ref: str
    reason: str
    raw: dict[str, Any] = field(hash=False)


# The largest count the mart stores (PostgreSQL bigint); also keeps `int()` of "1e999999999" cheap.
MAX_COUNT = 2**63 - 1


class ValueProblem(ValueError):
    """A field that cannot be read as what it should be; the message is the reject reason."""


def as_raw(entry: Any) -> dict[str, Any]:
    """The entry as a dict for `UsageProblem.raw`, wrapping what is not an object so nothing is lost."""
    return entry if isinstance(entry, dict) else {"value": entry}


def _number(raw: Any, name: str) -> Decimal:
    """A finite, non-negative number from a JSON number, a numeric string or a Decimal."""
    if raw is None:
        raise ValueProblem(f"{name}: missing")
    # bool is an int subclass: `true` is not a size.
    if isinstance(raw, bool) or not isinstance(raw, int | float | str | Decimal):
        raise ValueProblem(f"{name}: not a number ({type(raw).__name__})")
    text = str(raw).strip()
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValueProblem(f"{name}: not a number ({text[:40]!r})") from None
    if number.is_nan():
        raise ValueProblem(f"{name}: NaN")
    if not number.is_finite():
        raise ValueProblem(f"{name}: infinite ({text[:40]})")
    if number < 0:
        raise ValueProblem(f"{name}: negative ({text[:40]})")
    # -0 is a zero like any other; copy_abs, unlike `+ 0`, never rounds to the context precision.
    return number.copy_abs() if number.is_zero() else number


def byte_count(raw: Any, name: str) -> int:
    """A non-negative whole number of bytes, from a JSON integer or a numeric string.

    An integral float or string (`1024.0`, `"1024"`) is accepted as the integer it denotes; a
    fractional one is refused rather than rounded, since a byte count is never fractional at the
    source and a fraction means the field is not what we think it is.
    """
    return _whole(raw, name, "bytes")


def count(raw: Any, name: str) -> int:
    """A non-negative whole count (downloads, files…), read like `byte_count`."""
    return _whole(raw, name, "items")


def _whole(raw: Any, name: str, unit: str) -> int:
    number = _number(raw, name)
    if number != number.to_integral_value():
        raise ValueProblem(f"{name}: not a whole number of {unit} ({str(raw).strip()[:40]})")
    if number > MAX_COUNT:
        raise ValueProblem(f"{name}: too large ({str(raw).strip()[:40]})")
    return int(number)


def quantity(raw: Any, name: str) -> Decimal:
    """A non-negative, finite quantity (CI minutes…) read exactly as the source wrote it.

    JSON floats go through `str()` (their shortest round-trip text) so `0.1` stays `Decimal("0.1")`.
    """
    return _number(raw, name)


def identifier(raw: Any, name: str) -> int:
    """A positive integer id (GitLab project, group and namespace ids); numeric strings accepted."""
    if raw is None:
        raise ValueProblem(f"{name}: missing")
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ValueProblem(f"{name}: not an integer id ({type(raw).__name__})")
    text = str(raw).strip()
    if not text.isdigit() or not text.isascii():
        raise ValueProblem(f"{name}: not an integer id ({text[:40]!r})")
    value = int(text)
    if value <= 0:
        raise ValueProblem(f"{name}: not a positive id ({value})")
    return value
