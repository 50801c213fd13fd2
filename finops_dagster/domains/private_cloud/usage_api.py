"""The generic usage API that in-house private clouds expose (contract: usage_api.openapi.yaml).

`GET /v1/usage?period=YYYY-MM` pages of `{application, tenant, metric, unit, quantity}` items with
an opaque `next_page_token`. Quantities are decimal strings. Metrics become products through
usage_api_metrics.csv (metric + unit → product and factor): a new metric is a line of data.
An item with an unknown metric or unit, or an unreadable quantity, is a reject with its reason; a
page for another period than asked means the service is broken and fails the run.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from finops_dagster.domains.private_cloud.problems import UsageProblem
from finops_dagster.http.auth import auth_from_env
from finops_dagster.http.client import HttpSource
from finops_dagster.http.errors import SourceError
from finops_dagster.http.pagination import by_token
from finops_dagster.http.settings import http_settings
from finops_dagster.priced_usage import MeteredUsage
from finops_dagster.settings import env_int

SOURCE = "usage_api"
PREFIX = "FINOPS_USAGE_API"
METRICS_FILE = Path(__file__).resolve().parent / "usage_api_metrics.csv"
PATH = "/v1/usage"
NO_TENANT = "(no tenant)"


@dataclass(frozen=True)
class MetricMapping:
    product_id: str
    factor: Decimal


def load_metric_mappings(path: Path = METRICS_FILE) -> dict[tuple[str, str], MetricMapping]:
    with path.open(encoding="utf-8", newline="") as handle:
        return {
            (row["metric"], row["unit"]): MetricMapping(row["product_id"], Decimal(row["factor"]))
            for row in csv.DictReader(handle)
        }


@dataclass(frozen=True)
class UnmappedQuantity:
    """An item whose quantity is readable but whose metric/unit maps to no product."""

    ref: str
    reason: str
    unit: str
    quantity: Decimal
    raw: dict[str, Any]


class UsageApi:
    def __init__(
        self, client: HttpSource, page_size: int, metrics: dict[tuple[str, str], MetricMapping] | None = None
    ) -> None:
        self.client = client
        self.page_size = page_size
        self.metrics = metrics or load_metric_mappings()
        self._received: Counter[dt.date] = Counter()

    def records_received(self, month: dt.date) -> int:
        """Items the month's pages held, counted as each page arrived, before any item was read."""
        return self._received[month]

    @classmethod
    def from_env(cls) -> UsageApi:
        name = os.environ.get(f"{PREFIX}_NAME") or SOURCE
        settings = http_settings(name, PREFIX)
        return cls(
            HttpSource(settings, auth_from_env(PREFIX)), env_int(f"{PREFIX}_PAGE_SIZE", 500, minimum=1)
        )

    def items(self, month: dt.date) -> Iterator[dict[str, Any]]:
        period = f"{month:%Y-%m}"
        self._received[month] = 0

        def items_of(body: Any) -> list[Any]:
            if not isinstance(body, dict) or not isinstance(body.get("items"), list):
                raise SourceError(self.client.name, "unexpected answer: no 'items' list", path=PATH)
            if body.get("period") != period:
                raise SourceError(
                    self.client.name,
                    f"answered period {body.get('period')!r} when asked for {period}",
                    path=PATH,
                )
            self._received[month] += len(body["items"])
            return list(body["items"])

        def token_of(body: Any) -> str | None:
            token = body.get("next_page_token") if isinstance(body, dict) else None
            return str(token) if token else None

        yield from by_token(
            self.client,
            PATH,
            {"period": period, "page_size": self.page_size},
            "page_token",
            items_of,
            token_of,
        )

    def metered(self, month: dt.date) -> Iterator[MeteredUsage | UsageProblem | UnmappedQuantity]:
        for index, item in enumerate(self.items(month)):
            yield self._meter(index, item)

    def _meter(self, index: int, item: Any) -> MeteredUsage | UsageProblem | UnmappedQuantity:
        raw = item if isinstance(item, dict) else {"value": item}
        tenant = str(raw.get("tenant") or "").strip()
        ref = f"{tenant or 'no tenant'} / {raw.get('metric')} (item {index})"
        quantity = _quantity(raw.get("quantity"))
        if isinstance(quantity, str):
            return UsageProblem(ref, f"quantity {quantity}", raw)
        if not tenant and not raw.get("application"):
            tenant = NO_TENANT  # nobody owns it: the unallocated application, never dropped
        mapping = self.metrics.get((str(raw.get("metric")), str(raw.get("unit"))))
        if mapping is None:
            return UnmappedQuantity(
                ref,
                f"unknown metric {raw.get('metric')!r} in unit {raw.get('unit')!r} "
                "(add it to usage_api_metrics.csv)",
                str(raw.get("unit")),
                quantity,
                raw,
            )
        application = raw.get("application")
        return MeteredUsage(
            self.client.name,
            tenant or str(application),
            mapping.product_id,
            quantity * mapping.factor,
            application=str(application) if application else None,
            fields={"tenant": tenant},
        )

    def close(self) -> None:
        self.client.close()


def _quantity(raw: Any) -> Decimal | str:
    """An exact quantity from a decimal string (a JSON number is accepted through its text)."""
    if raw is None or isinstance(raw, bool):
        return "missing"
    try:
        value = Decimal(str(raw).strip())
    except InvalidOperation:
        return f"is not a number ({str(raw)[:40]!r})"
    if not value.is_finite():
        return f"is not finite ({raw})"
    if value < 0:
        return f"is negative ({raw})"
    return value
