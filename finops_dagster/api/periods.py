"""Periods as the API speaks them: months `YYYY-MM`, quarters `YYYY-Qn`, Backstage's ISO 8601 intervals.

The mart's grain is the calendar month (the first day of the month in the views). Every parser here
raises `BadPeriod` with a message meant for the caller, which the app turns into a 400.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

MONTH = re.compile(r"^([0-9]{4})-([0-9]{2})$")
INTERVALS = re.compile(r"^R([0-9]{1,2})/P(?:([0-9]{1,3})M|([0-9]{1,4})D)/([0-9]{4}-[0-9]{2}-[0-9]{2})$")
"""ASCII digits only: `\\d` would also take other scripts' digits (`٢٠٢٦-٠٣`), which `int` reads."""
MAX_RANGE_MONTHS = 240
"""Twenty years: more than any mart holds, small enough that a range never becomes a huge series."""
FIRST_MONTH = dt.date(1900, 1, 1)
LAST_MONTH = dt.date(9999, 12, 1)
"""The months the API reads at all: a period outside them is a 400, never a date overflow."""


class BadPeriod(ValueError):
    """A period parameter the API cannot read; the message says what was expected."""


def add_months(month: dt.date, count: int) -> dt.date:
    index = month.year * 12 + month.month - 1 + count
    return dt.date(index // 12, index % 12 + 1, 1)


def shift_within(month: dt.date, count: int) -> dt.date:
    """`add_months`, held to FIRST_MONTH..LAST_MONTH (an open range's far end, never an overflow)."""
    index = month.year * 12 + month.month - 1 + count
    lowest, highest = (m.year * 12 + m.month - 1 for m in (FIRST_MONTH, LAST_MONTH))
    index = min(max(index, lowest), highest)
    return dt.date(index // 12, index % 12 + 1, 1)


def months_between(first: dt.date, last: dt.date) -> list[dt.date]:
    """The first days of the months from `first` to `last`, both included."""
    count = (last.year - first.year) * 12 + last.month - first.month + 1
    return [add_months(first, offset) for offset in range(max(count, 0))]


def parse_month(name: str, raw: str) -> dt.date:
    """`YYYY-MM` → the month's first day. `name` is the parameter, for the message."""
    match = MONTH.match(raw.strip())
    if not match or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < FIRST_MONTH.year:
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
    """The inclusive range of `from`/`to`. With one end given, the range covers at most
    MAX_RANGE_MONTHS from it (the open end is closed there), like a range with both ends; with
    neither, it is the whole mart."""
    first = parse_month("from", raw_from) if raw_from else None
    last = parse_month("to", raw_to) if raw_to else None
    if first and last:
        if first > last:
            raise BadPeriod(f"from ({month_label(first)}) is after to ({month_label(last)})")
        if len(months_between(first, last)) > MAX_RANGE_MONTHS:
            raise BadPeriod(f"the period range spans more than {MAX_RANGE_MONTHS} months")
    elif first:
        last = shift_within(first, MAX_RANGE_MONTHS - 1)
    elif last:
        first = shift_within(last, -(MAX_RANGE_MONTHS - 1))
    return PeriodRange(first, last)


@dataclass(frozen=True)
class Intervals:
    """Backstage's `R<n>/P<duration>/<end>`, read on the monthly grain.

    `months` is the whole series (oldest first); the change compares `current_period` with
    `previous_period`. The end date is exclusive, as in Cost Insights.

    - A duration in months: n periods of whole months ending before `end` (`R2/P3M/2026-07-01` is
      January to June 2026, two quarters).
    - A duration in days (P30D, P90D): the series holds the months whose 15th falls within the n·D
      days before `end`; a month is in the current period when its first day is on or after
      `end` - 1 day - D, which is the split the plugin makes itself (getPreviousPeriodTotalCost),
      so its legends and the API's `change` agree. A P90D period therefore holds 2 to 4 months.
    """

    months: list[dt.date]
    previous_period: list[dt.date]
    current_period: list[dt.date]


def parse_intervals(raw: str) -> Intervals:
    match = INTERVALS.match(raw.strip())
    if not match:
        raise BadPeriod(
            f"intervals: expected an ISO 8601 repeating interval R<n>/P<n>M/<YYYY-MM-DD> or "
            f"R<n>/P<n>D/<YYYY-MM-DD> (e.g. R2/P3M/2026-07-01), got {_shown(raw)}"
        )
    repeats = int(match.group(1))
    try:
        end = dt.date.fromisoformat(match.group(4))
    except ValueError:
        raise BadPeriod(f"intervals: {match.group(4)} is not a date") from None
    span = int(match.group(2)) if match.group(2) else int(match.group(3)) / DAYS_PER_MONTH
    if repeats < 1 or span <= 0 or repeats * span > MAX_RANGE_MONTHS:
        raise BadPeriod(f"intervals: between 1 and {MAX_RANGE_MONTHS} months in all, got {_shown(raw)}")
    if end < add_months(FIRST_MONTH, MAX_RANGE_MONTHS) or end > LAST_MONTH:
        raise BadPeriod(
            f"intervals: the end must lie between {add_months(FIRST_MONTH, MAX_RANGE_MONTHS).isoformat()} "
            f"and {LAST_MONTH.isoformat()}, got {_shown(raw)}"
        )
    if match.group(2):
        return _month_intervals(repeats, int(match.group(2)), end)
    return _day_intervals(repeats, int(match.group(3)), end)


DAYS_PER_MONTH = 30


def _month_intervals(repeats: int, period_months: int, end: dt.date) -> Intervals:
    end_month = dt.date(end.year, end.month, 1)
    last = end_month if end.day > 1 else add_months(end_month, -1)
    months = months_between(add_months(last, -(repeats * period_months - 1)), last)
    previous = months[-2 * period_months : -period_months] if repeats > 1 else []
    return Intervals(months, previous, months[-period_months:])


def _day_intervals(repeats: int, days: int, end: dt.date) -> Intervals:
    inclusive_end = end - dt.timedelta(days=1)
    start = inclusive_end - dt.timedelta(days=repeats * days)
    boundary = inclusive_end - dt.timedelta(days=days)
    previous_start = boundary - dt.timedelta(days=days)
    first, last = add_months(dt.date(start.year, start.month, 1), -1), dt.date(end.year, end.month, 1)
    months = [m for m in months_between(first, last) if start <= m.replace(day=15) < end]
    if not months:
        raise BadPeriod(f"intervals: R{repeats}/P{days}D/{end.isoformat()} holds no month's middle")
    current = [m for m in months if m >= boundary]
    previous = [m for m in months if m < boundary and m.replace(day=15) >= previous_start]
    return Intervals(months, previous, current)


def _shown(raw: str) -> str:
    """The caller's value, quoted and cut short, never a wall of text in an error message."""
    text = raw if len(raw) <= 40 else raw[:40] + "…"
    return repr(text)
