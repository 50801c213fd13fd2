"""What a private-cloud parser could not turn into a usage record, and the value readers that say why.

Both sources (Nova's tenant usage, OpenCost's allocations) send JSON numbers and timestamps; one
definition of "a usable number" and "a usable instant" keeps their reject reasons alike, and keeps
floats out: every number becomes a `Decimal` built from the float's shortest text form.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from finops_dagster.source_values import UsageProblem, ValueProblem, as_raw, non_negative_number

__all__ = ["UsageProblem", "ValueProblem", "as_raw", "usage_number", "utc_instant"]


def usage_number(entry: dict[str, Any], name: str) -> Decimal:
    """A non-negative, finite quantity or amount read exactly from a JSON number.

    JSON floats go through `str()` (their shortest round-trip text, `0.95949`) so the Decimal is the
    number the source wrote, not the binary float's expansion (`0.9594899999999999...`). Numeric
    strings, and Decimals from a client decoding with `json.loads(..., parse_float=Decimal)`, are
    accepted for the same reason. Negative usage or cost has no meaning here.
    """
    if name not in entry:
        raise ValueProblem(f"{name}: missing")
    return non_negative_number(entry[name], name)


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
