"""Periods as the API speaks them: months `YYYY-MM`, quarters `YYYY-Qn`, Backstage's ISO 8601 intervals.

The mart's grain is the calendar month (the first day of the month in the views). Every parser here
raises `BadPeriod` with a message meant for the caller, which the app turns into a 400.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

MONTH = re.compile(r"^(\d{4})-(\d{2})$")
INTERVALS = re.compile(r"^R(\d{1,2})/P(?:(\d{1,3})M|(\d{1,4})D)/(\d{4}-\d{2}-\d{2})$")
MAX_RANGE_MONTHS = 240
"""Twenty years: more than any mart holds, small enough that a range never becomes a huge series."""


class BadPeriod(ValueError):
    """A period parameter the API cannot read; the message says what was expected."""


def add_months(month: dt.date, count: int) -> dt.date:
    index = month.year * 12 + month.month - 1 + count
    return dt.date(index // 12, index % 12 + 1, 1)


def months_between(first: dt.date, last: dt.date) -> list[dt.date]:
    """The first days of the months from `first` to `last`, both included."""
    count = (last.year - first.year) * 12 + last.month - first.month + 1
    return [add_months(first, offset) for offset in range(max(count, 0))]


def parse_month(name: str, raw: str) -> dt.date:
    """`YYYY-MM` → the month's first day. `name` is the parameter, for the message."""
    match = MONTH.match(raw.strip())
    if not match or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 1900:
        raise BadPeriod(f"{name}: expected a month as YYYY-MM (e.g. 2026-03), got {_shown(raw)}")
    return dt.date(int(match.group(1)), int(match.group(2)), 1)


def month_label(month: dt.date) -> str:
    return f"{month.year:04d}-{month.month:02d}"


def quarter_start(month: dt.date) -> dt.date:
    return dt.date(month.year, 3 * ((month.month - 1) // 3) + 1, 1)


def quarter_label(quarter: dt.date) -> str:
    return f"{quarter.year:04d}-Q{(quarter.month - 1) // 3 + 1}"


@dataclass(frozen=True)
class PeriodRange:
    """An inclusive range of months; either end may be open."""

    first: dt.date | None
    last: dt.date | None


def parse_range(raw_from: str | None, raw_to: str | None) -> PeriodRange:
    first = parse_month("from", raw_from) if raw_from else None
    last = parse_month("to", raw_to) if raw_to else None
    if first and last:
        if first > last:
            raise BadPeriod(f"from ({month_label(first)}) is after to ({month_label(last)})")
        if len(months_between(first, last)) > MAX_RANGE_MONTHS:
            raise BadPeriod(f"the period range spans more than {MAX_RANGE_MONTHS} months")
    return PeriodRange(first, last)


@dataclass(frozen=True)
class Intervals:
    """Backstage's `R<n>/P<duration>/<end>`, read on the monthly grain.

    `months` is the whole series (oldest first), `period_months` the length of one of the n periods.
    The end date is exclusive, as in Cost Insights: `R2/P3M/2026-07-01` is January to June 2026, two
    quarters. A duration in days becomes whole months (P30D → 1, P90D → 3), since costs are monthly.
    """

    months: list[dt.date]
    period_months: int

    @property
    def previous_period(self) -> list[dt.date]:
        return self.months[-2 * self.period_months : -self.period_months] if len(self.months) > 1 else []

    @property
    def current_period(self) -> list[dt.date]:
        return self.months[-self.period_months :]


def parse_intervals(raw: str) -> Intervals:
    match = INTERVALS.match(raw.strip())
    if not match:
        raise BadPeriod(
            f"intervals: expected an ISO 8601 repeating interval R<n>/P<n>M/<YYYY-MM-DD> or "
            f"R<n>/P<n>D/<YYYY-MM-DD> (e.g. R2/P3M/2026-07-01), got {_shown(raw)}"
        )
    repeats = int(match.group(1))
    period_months = int(match.group(2)) if match.group(2) else max(1, round(int(match.group(3)) / 30))
    try:
        end = dt.date.fromisoformat(match.group(4))
    except ValueError:
        raise BadPeriod(f"intervals: {match.group(4)} is not a date") from None
    if repeats < 1 or period_months < 1 or repeats * period_months > MAX_RANGE_MONTHS:
        raise BadPeriod(f"intervals: between 1 and {MAX_RANGE_MONTHS} months in all, got {_shown(raw)}")
    last = dt.date(end.year, end.month, 1) if end.day > 1 else add_months(dt.date(end.year, end.month, 1), -1)
    first = add_months(last, -(repeats * period_months - 1))
    return Intervals(months_between(first, last), period_months)


def _shown(raw: str) -> str:
    """The caller's value, quoted and cut short, never a wall of text in an error message."""
    text = raw if len(raw) <= 40 else raw[:40] + "…"
    return repr(text)
