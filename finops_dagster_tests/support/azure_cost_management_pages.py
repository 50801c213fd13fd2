"""Query API answers of Azure Cost Management for one subscription, as the text the API sends.

The client tests serve them over a socket; the payload tests parse them directly.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

SCOPE = "/subscriptions/00000000-0000-0000-0000-000000000001"
OCTOBER = dt.date(2026, 10, 1)
COLUMNS = [
    {"name": "Cost", "type": "Number"},
    {"name": "TagKey", "type": "String"},
    {"name": "TagValue", "type": "String"},
    {"name": "ServiceName", "type": "String"},
    {"name": "Currency", "type": "String"},
]


def page(rows: list[list[Any]], next_link: str | None = None) -> str:
    """A Query API answer as text; costs are written as given (strings here become JSON numbers)."""
    body = {"properties": {"nextLink": next_link, "columns": COLUMNS, "rows": ["ROWS"]}}
    text = json.dumps(body)
    rendered = ", ".join(
        "[" + ", ".join(str(cell) if i == 0 else json.dumps(cell) for i, cell in enumerate(row)) + "]"
        for row in rows
    )
    return text.replace('["ROWS"]', f"[{rendered}]")
