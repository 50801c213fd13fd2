"""The demo's months: from `months - 1` months before today's to today's, as partition keys.

Apart from the demo's run so the command line can set FINOPS_FIRST_MONTH from them before anything
builds the partitions.
"""

import datetime as dt

from finops_dagster.releve import month_start


def demo_months(today: dt.date, months: int) -> tuple[str, str]:
    last = month_start(today)
    first = last
    for _ in range(months - 1):
        first = month_start(first - dt.timedelta(days=1))
    return first.isoformat(), last.isoformat()
