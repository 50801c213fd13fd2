"""Reading the values an API source sends: what cannot be used becomes a problem with a reason.

Shared by every HTTP domain's parsers so their reject reasons read alike and floats stay out:
a number becomes a `Decimal` built from its shortest text form (`0.95949`, not the binary float's
expansion), and every refusal says which field and why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from finops_dagster.reject_reasons import RejectReason


@dataclass(frozen=True)
class UsageProblem:
    """One source entry that cannot become a usage record: where it was, why, and what it carried.

    Parsers return these next to the good records instead of raising, so one bad entry does not
    hide the rest of the page, and instead of dropping, so the caller can turn it into a `Reject`
    (docs/architecture.md, invariants 4, nothing lost, and 6, a reason for every refusal).
    """

    ref: str
    reason: str
    raw: dict[str, Any] = field(hash=False)
    records: int = 1
    """Source records the problem stands for in a record ledger (one per product an entry measures)."""


NEGATIVE = "negative"
"""How a field below zero is named in a problem's reason (`vcpu_hours: negative (-3)`)."""
ONLY_NEGATIVES = re.compile(rf"[^:;]+: {NEGATIVE} \([^)]*\)(?:; [^:;]+: {NEGATIVE} \([^)]*\))*")


def problem_code(reason: str) -> RejectReason:
    """The code of a parser's problem: NEGATIVE_QUANTITY when every field it names is below zero
    (the entry is otherwise readable), MALFORMED_RECORD for anything else an entry lacks. Parsers
    join all of an entry's field problems with `; ` (and the native snapshots add the nights)."""
    details = re.sub(r" \(\d+ night\(s\)\)$", "", reason)
    if ONLY_NEGATIVES.fullmatch(details):
        return RejectReason.NEGATIVE_QUANTITY
    return RejectReason.MALFORMED_RECORD


class ValueProblem(ValueError):
    """A field that cannot be read as what it should be; the message is the reject reason."""


def as_raw(entry: Any) -> dict[str, Any]:
    """The entry as a dict for `UsageProblem.raw`, wrapping what is not an object so nothing is lost."""
    return entry if isinstance(entry, dict) else {"value": entry}


def non_negative_number(raw: Any, name: str) -> Decimal:
    """A finite, non-negative number from a JSON number, a numeric string or a Decimal."""
    if raw is None:
        raise ValueProblem(f"{name}: missing")
    # bool is an int subclass: `true` is not a quantity.
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
        raise ValueProblem(f"{name}: {NEGATIVE} ({text[:40]})")
    # -0 is a zero like any other; copy_abs, unlike `+ 0`, never rounds to the context precision.
    return number.copy_abs() if number.is_zero() else number
