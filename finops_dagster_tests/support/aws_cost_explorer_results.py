"""GetCostAndUsage answers of AWS Cost Explorer, grouped by the application tag and the service.

The client tests serve them over a socket; the payload tests parse them directly.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

OCTOBER = dt.date(2026, 10, 1)
DEFINITIONS = [{"Type": "TAG", "Key": "app-id"}, {"Type": "DIMENSION", "Key": "SERVICE"}]


def results(
    groups: list[tuple[str, str, str, str]], start: str = "2026-10-01", **extra: Any
) -> dict[str, Any]:
    """A GetCostAndUsage page: groups of (tag key, service, amount, unit) for the metric NetAmortizedCost."""
    return {
        "GroupDefinitions": DEFINITIONS,
        "ResultsByTime": [
            {
                "TimePeriod": {"Start": start, "End": "2026-11-01"},
                "Total": {},
                "Groups": [
                    {
                        "Keys": [tag, service],
                        "Metrics": {"NetAmortizedCost": {"Amount": amount, "Unit": unit}},
                    }
                    for tag, service, amount, unit in groups
                ],
                "Estimated": False,
            }
        ],
        "DimensionValueAttributes": [],
        **extra,
    }
