"""The value shapes of a ServiceNow CMDB export, as the dumps carry them.

Scalars are strings (`"16384"`); references are plain ids, `{"value", "link"}` or, with
`sysparm_display_value=all`, `{"display_value", "value"}`; mongoexport leaves `{"$oid"}`,
`{"$date"}` and `{"$numberLong"}` wrappers when a file was imported without extended JSON.
The dump time `_ingested_at` is a BSON date, or an ISO-8601 string or `{"$date"}` wrapper when the
loader did not convert it.
"""

from __future__ import annotations

import datetime as dt
import re
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


class DumpTimeError(ValueError):
    """An `_ingested_at` that is no instant; the message is the reject reason."""


ISO_DATE_PREFIX = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
"""An ISO-8601 dump time starts with its calendar date (extended format): the client's string range
relies on it to find a month's string dump times, so a string without it is not read as a time."""


def ingested_instant(raw: Any) -> dt.datetime:
    """The dump time as a naive UTC datetime (as pymongo returns BSON dates): a BSON date, an
    ISO-8601 string (a time without offset is UTC), or `{"$date": <ISO string | epoch ms |
    {"$numberLong": ms}>}`."""
    if isinstance(raw, dt.datetime):
        return _naive_utc(raw)
    if isinstance(raw, str):
        return _iso_instant(raw)
    if isinstance(raw, dict) and set(raw) == {"$date"}:
        return _extended_json_date(raw["$date"])
    if raw is None:
        raise DumpTimeError("_ingested_at missing or null")
    raise DumpTimeError(f"_ingested_at is not a date ({type(raw).__name__} {_excerpt(raw)})")


def _iso_instant(text: str) -> dt.datetime:
    if ISO_DATE_PREFIX.match(text) is None:
        raise DumpTimeError(f"_ingested_at is not an ISO-8601 date ({_excerpt(text)})")
    try:
        return _naive_utc(dt.datetime.fromisoformat(text))
    except (ValueError, OverflowError):
        raise DumpTimeError(f"_ingested_at is not an ISO-8601 date ({_excerpt(text)})") from None


def _extended_json_date(value: Any) -> dt.datetime:
    if isinstance(value, str):
        return _iso_instant(value)
    if isinstance(value, dict) and set(value) == {"$numberLong"} and isinstance(value["$numberLong"], str):
        try:
            value = int(value["$numberLong"])
        except ValueError:
            raise DumpTimeError(f"_ingested_at $date is not a date ({_excerpt(value)})") from None
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=value)
        except OverflowError:
            raise DumpTimeError(f"_ingested_at $date out of range ({_excerpt(value)})") from None
    raise DumpTimeError(f"_ingested_at $date is not a date ({_excerpt(value)})")


def _naive_utc(instant: dt.datetime) -> dt.datetime:
    if instant.tzinfo is None:
        return instant
    return instant.astimezone(dt.UTC).replace(tzinfo=None)


def _excerpt(value: Any) -> str:
    """A short printable rendering (repr escapes control characters such as NUL)."""
    return repr(value)[:60]
