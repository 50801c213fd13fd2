"""The value shapes of a ServiceNow CMDB export, as the dumps carry them.

Scalars are strings (`"16384"`); references are plain ids, `{"value", "link"}` or, with
`sysparm_display_value=all`, `{"display_value", "value"}`; mongoexport leaves `{"$oid"}`,
`{"$date"}` and `{"$numberLong"}` wrappers when a file was imported without extended JSON.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

WRAPPER_KEYS = ("value", "$oid", "$numberLong", "$numberInt", "$numberDouble", "$numberDecimal")


def raw_value(raw: Any) -> Any:
    """The machine value behind any wrapper shape (never the display value)."""
    while isinstance(raw, dict):
        for key in WRAPPER_KEYS:
            if key in raw:
                raw = raw[key]
                break
        else:
            return None
    return raw


def text_value(raw: Any) -> str | None:
    """A reference or text field as a stripped string; None when absent or empty."""
    value = raw_value(raw)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def display_value(raw: Any) -> str | None:
    """The human label of a reference when the export carries one, else its value."""
    if isinstance(raw, dict) and raw.get("display_value"):
        return str(raw["display_value"]).strip() or None
    return text_value(raw)


def application_code(raw: Any) -> str | None:
    """An application reference normalised to the referential's code: trimmed, upper-case."""
    text = text_value(raw)
    return text.upper() if text else None


class QuantityError(ValueError):
    """A numeric field that cannot be a quantity; the message is the reject reason."""


def parse_quantity(raw: Any, *, maximum: Decimal) -> Decimal:
    """A CMDB number as an exact Decimal, refusing what cannot be a real size."""
    value = raw_value(raw)
    if value is None:
        raise QuantityError("missing")
    if isinstance(value, bool):
        raise QuantityError(f"not a number ({value!r})")
    text = str(value).strip()
    if not text:
        raise QuantityError("empty")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise QuantityError(f"not a number ({str(value)[:40]!r})") from None
    if number.is_nan():
        raise QuantityError("NaN")
    if not number.is_finite():
        raise QuantityError(f"infinite ({text[:40]})")
    if number < 0:
        raise QuantityError(f"negative ({text[:40]})")
    if number > maximum:
        raise QuantityError(f"implausibly large ({text[:40]} > {maximum})")
    return number
