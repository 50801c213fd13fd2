"""What a native-domain parser could not turn into a usage record, and the value readers that say why.

GitLab sends sizes as JSON integers (bytes) and CI minutes as numbers; Artifactory sends some sizes
as integers too (`usedSpaceInBytes`). One definition of "a usable byte count" and "a usable
quantity" keeps the reject reasons of both sources alike and keeps floats out: a quantity becomes a
`Decimal` built from the number's shortest text form, a byte count an exact `int`.

`UsageProblem`, `ValueProblem` and the number reader are shared by every HTTP domain
(finops_dagster/source_values.py); this module adds what only the native sources need.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from finops_dagster.source_values import UsageProblem, ValueProblem, as_raw, non_negative_number

__all__ = [
    "MAX_COUNT",
    "UsageProblem",
    "ValueProblem",
    "as_raw",
    "byte_count",
    "count",
    "identifier",
    "quantity",
    "text_field",
]


# The largest count the mart stores (PostgreSQL bigint); also keeps `int()` of "1e999999999" cheap.
MAX_COUNT = 2**63 - 1


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
    number = non_negative_number(raw, name)
    if number != number.to_integral_value():
        raise ValueProblem(f"{name}: not a whole number of {unit} ({str(raw).strip()[:40]})")
    if number > MAX_COUNT:
        raise ValueProblem(f"{name}: too large ({str(raw).strip()[:40]})")
    return int(number)


def quantity(raw: Any, name: str) -> Decimal:
    """A non-negative, finite quantity (CI minutes…) read exactly as the source wrote it.

    JSON floats go through `str()` (their shortest round-trip text) so `0.1` stays `Decimal("0.1")`.
    """
    return non_negative_number(raw, name)


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


def text_field(raw: Any, name: str, reasons: list[str], *, required: bool = False) -> str | None:
    """A non-blank string, stripped; None when absent (a reason is added when it is required)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if required:
            reasons.append(f"{name}: missing")
        return None
    if not isinstance(raw, str):
        reasons.append(f"{name}: not a string ({type(raw).__name__})")
        return None
    return raw.strip()
