"""Conditional requests (RFC 9110 §13): whether the caller's validators still match the publish."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from email.utils import format_datetime, parsedate_to_datetime


def http_date(moment: dt.datetime) -> str:
    return format_datetime(moment.astimezone(dt.UTC).replace(microsecond=0), usegmt=True)


def not_modified(headers: Mapping[str, str], etag: str, last_modified: dt.datetime | None) -> bool:
    """§13.2.2: If-None-Match (weak comparison) wins; If-Modified-Since only without it."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        if if_none_match.strip() == "*":
            return True
        wanted = etag.removeprefix("W/")
        return any(tag.strip().removeprefix("W/") == wanted for tag in if_none_match.split(","))
    if_modified_since = headers.get("if-modified-since")
    if if_modified_since and last_modified is not None:
        try:
            since = parsedate_to_datetime(if_modified_since)
            if since.tzinfo is None:
                since = since.replace(tzinfo=dt.UTC)
            return last_modified.replace(microsecond=0) <= since.astimezone(dt.UTC)
        except (TypeError, ValueError, OverflowError):
            return False  # §13.1.3: an invalid date is ignored (a date beyond year 9999, too)
    return False
