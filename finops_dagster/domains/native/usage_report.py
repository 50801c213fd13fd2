"""Any internal service exposing the usage-report contract (usage_report.openapi.yaml), Cube first.

Adding a service is configuration: its name in FINOPS_NATIVE_SERVICES, its FINOPS_SERVICE_<NAME>_URL
(+ _AUTH and credentials, OIDC by default), and its products in usage_report_products.csv. A report
covers a period and is month-to-date while the period runs (a counter): each night the current and
the previous period are read, so the previous month's final figures, known only after it ended,
are the ones kept. A report for another period than asked is not used: it becomes a reject of the
night with its reason.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from finops_dagster.domains.native.snapshots import Problem, Reading, Snapshot
from finops_dagster.domains.native.usage_report_payloads import load_products, reading_of
from finops_dagster.http.auth import auth_from_env
from finops_dagster.http.client import HttpSource
from finops_dagster.http.errors import SourceError
from finops_dagster.http.pagination import by_token
from finops_dagster.http.settings import http_settings
from finops_dagster.releve import month_start
from finops_dagster.settings import SettingError, env_int

PATH = "/v1/usage-report"


def service_names() -> list[str]:
    raw = os.environ.get("FINOPS_NATIVE_SERVICES", "").strip()
    names = [name.strip().lower() for name in raw.split(",") if name.strip()]
    for name in names:
        if not name.replace("_", "").isalnum():
            raise SettingError(
                f"FINOPS_NATIVE_SERVICES: {name!r} is not a valid service name (letters, digits, _)"
            )
    return names


class UsageReportService:
    def __init__(
        self, name: str, client: HttpSource, page_size: int, products: dict[tuple[str, str], str]
    ) -> None:
        self.name = name
        self.client = client
        self.page_size = page_size
        self.products = products

    @classmethod
    def from_env(cls, name: str) -> UsageReportService:
        prefix = f"FINOPS_SERVICE_{name.upper()}"
        products = load_products(name)
        if not products:
            raise SettingError(
                f"FINOPS_NATIVE_SERVICES names {name!r}, which has no product in usage_report_products.csv"
            )
        return cls(
            name,
            HttpSource(http_settings(name, prefix), auth_from_env(prefix)),
            env_int(f"{prefix}_PAGE_SIZE", 500, minimum=1),
            products,
        )

    def snapshot(self, night: dt.date) -> list[Snapshot]:
        current = month_start(night)
        previous = month_start(current - dt.timedelta(days=1))
        return [self._report(previous, night), self._report(current, night)]

    def _report(self, month: dt.date, night: dt.date) -> Snapshot:
        period = f"{month:%Y-%m}"
        readings: list[Reading] = []
        problems: list[Problem] = []
        received = [0]

        def items_of(body: Any) -> list[Any]:
            if not isinstance(body, dict) or not isinstance(body.get("items"), list):
                raise SourceError(self.name, "unexpected answer: no 'items' list", path=PATH)
            received[0] += len(body["items"])
            if body.get("period") != period:
                problems.append(
                    Problem(
                        f"{self.name} report {period}",
                        f"answered period {body.get('period')!r} "
                        f"when asked for {period}: {len(body['items'])} items not used",
                        {"period": body.get("period"), "items": len(body["items"])},
                        records=len(body["items"]),
                    )
                )
                return []
            return list(body["items"])

        def token_of(body: Any) -> str | None:
            token = body.get("next_page_token") if isinstance(body, dict) else None
            return str(token) if token else None

        for index, item in enumerate(
            by_token(
                self.client,
                PATH,
                {"period": period, "page_size": self.page_size},
                "page_token",
                items_of,
                token_of,
            )
        ):
            reading = self._reading(index, item)
            if isinstance(reading, Reading):
                readings.append(reading)
            else:
                problems.append(reading)
        return Snapshot(self.name, month, night, readings, problems, records_received=received[0])

    def _reading(self, index: int, item: Any) -> Reading | Problem:
        return reading_of(self.products, index, item)

    def close(self) -> None:
        self.client.close()
