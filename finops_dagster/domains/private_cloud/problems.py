"""What a private-cloud parser could not turn into a usage record, and the value readers that say why.

Both sources (Nova's tenant usage, OpenCost's allocations) send JSON numbers and timestamps; one
definition of "a usable number" and "a usable instant" keeps their reject reasons alike, and keeps
floats out: every number becomes a `Decimal` built from the float's shortest text form.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any


@dataclass(frozen=True)
class UsageProblem:
    """One source entry that cannot become a usage record: where it was, why, and what it carried.

    The parsers return these next to the good records instead of raising, so one bad tenant or
    namespace does not hide the rest of the page, and instead of dropping, so the caller can turn
    it into a `Reject` (invariant 4: nothing lost, invariant 6: a reason for every refusal).
    """

    ref: str
    reason: str
    raw: dict[str, Any] = field(hash=False)


class ValueProblem(ValueError):
    """A field that cannot be read as what it should be; the message is the reject reason."""


def as_raw(entry: Any) -> dict[str, Any]:
    """The entry as a dict for `UsageProblem.raw`, wrapping what is not an object so nothing is lost."""
    return entry if isinstance(entry, dict) else {"value": entry}


def usage_number(entry: dict[str, Any], name: str) -> Decimal:
    """A non-negative, finite quantity or amount read exactly from a JSON number.

    JSON floats go through `str()` (their shortest round-trip text, `0.95949`) so the Decimal is the
    number the source wrote, not the binary float's expansion (`0.9594899999999999...`). Numeric
    strings, and Decimals from a client decoding with `json.loads(..., parse_float=Decimal)`, are
    accepted for the same reason. Negative usage or cost has no meaning here.
    """
    if name not in entry or entry[name] is None:
        raise ValueProblem(f"{name}: missing")
    raw = entry[name]
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
    # -0.0 is a zero like any other; copy_abs, unlike `+ 0`, never rounds to the context precision.
    return number.copy_abs() if number.is_zero() else number


def utc_instant(raw: Any, name: str) -> dt.datetime:
    """An ISO 8601 timestamp as an aware UTC datetime.

    OpenCost writes `Z`; Nova writes no offset at all (`2018-10-09T11:29:04.166194`) but its clock
    is UTC, so a naive timestamp is read as UTC rather than as the worker's local time.
    """
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise ValueProblem(f"{name}: missing")
    if not isinstance(raw, str):
        raise ValueProblem(f"{name}: not a timestamp ({type(raw).__name__})")
    try:
        instant = dt.datetime.fromisoformat(raw.strip())
    except ValueError:
        raise ValueProblem(f"{name}: not an ISO 8601 timestamp ({raw[:40]!r})") from None
    if instant.tzinfo is None:
        return instant.replace(tzinfo=dt.UTC)
    return instant.astimezone(dt.UTC)
