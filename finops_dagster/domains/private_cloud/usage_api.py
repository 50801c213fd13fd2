"""The generic usage API that in-house private clouds expose (contract: usage_api.openapi.yaml).

`GET /v1/usage?period=YYYY-MM` pages of `{application, tenant, metric, unit, quantity}` items with
an opaque `next_page_token`; `usage_api_payloads` turns each item into metered usage of a product
(through usage_api_metrics.csv) or a reject with its reason. A page for another period than asked
means the service is broken and fails the run.
"""

from __future__ import annotations

import datetime as dt
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

from finops_dagster.domains.private_cloud.problems import UsageProblem
from finops_dagster.domains.private_cloud.usage_api_payloads import (
    MetricMapping,
    UnmappedQuantity,
    load_metric_mappings,
    meter_item,
)
from finops_dagster.http.auth import auth_from_env
from finops_dagster.http.client import HttpSource
from finops_dagster.http.errors import SourceError
from finops_dagster.http.pagination import by_token
from finops_dagster.http.settings import http_settings
from finops_dagster.priced_usage import MeteredUsage
from finops_dagster.settings import env_int

SOURCE = "usage_api"
PREFIX = "FINOPS_USAGE_API"
PATH = "/v1/usage"


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
        return meter_item(self.client.name, self.metrics, index, item)

    def close(self) -> None:
        self.client.close()
