"""Running the real `finops-dagster` commands as the observability tests watch them: their
environment (the demo CMDB, JSON logs) and the JSON lines they log.

The end-to-end, tracing and run-metrics tests start the same commands against the same CMDB, so
they read the same figures.
"""

from __future__ import annotations

import json
import os
from typing import Any

CMDB = "demo://?cis=120&months=3&today=2026-12-05&applications=20"


def environment(mart_url: str, **settings: str) -> dict[str, str]:
    env = {**os.environ, "POSTGRES_URL": mart_url, "MONGO_URL": CMDB, "FINOPS_DOMAINS_ENABLED": "open_legacy",
           "FINOPS_LOG_FORMAT": "json", **settings}
    env.pop("DAGSTER_HOME", None)
    return env


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every non-empty line as a JSON object (a line that is not one fails the test, named)."""
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                raise AssertionError(f"line {number} is not JSON: {line[:300]}") from None
    return records
