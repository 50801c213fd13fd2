"""HttpSource: one configured HTTP API, with the failure policy every source shares.

- timeouts per source; TLS verification always on (custom CA bundle allowed);
- retries with exponential backoff and jitter on connection errors, timeouts, 429 (honouring
  Retry-After) and 5xx, bounded by the retry count and a total time budget; no retry on other 4xx;
- on 401, a cached token is fetched again once; 403 fails at once;
- a circuit breaker: after repeated failed calls the source fails fast;
- answers must be JSON; every failure is a SourceError naming the source, the URL path (never the
  query), the status and the attempts.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from finops_dagster.http.auth import Auth
from finops_dagster.http.breaker import CircuitBreaker
from finops_dagster.http.errors import SourceError
from finops_dagster.http.settings import HttpSettings

BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
RETRY_AFTER_CAP_S = 300.0


class _NoSecretsInLogs(logging.Filter):
    """Keep keys out of the HTTP libraries' own log lines.

    httpx logs every request URL at INFO, query included, and httpcore logs every response header at
    DEBUG (a Link or Location header repeats the query, Set-Cookie carries a session): a query can
    carry a key, so URLs lose their query and response headers are not logged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(
                arg.copy_with(query=None) if isinstance(arg, httpx.URL) and arg.query else arg
                for arg in record.args
            )
        elif isinstance(record.msg, str) and record.msg.startswith("receive_response_headers.complete "):
            record.msg = "receive_response_headers.complete (headers not logged)"
        return True


_NO_SECRETS_IN_LOGS = _NoSecretsInLogs()
for _logger in ("httpx", "httpcore.http11", "httpcore.http2"):
    logging.getLogger(_logger).addFilter(_NO_SECRETS_IN_LOGS)


@dataclass(frozen=True)
class JsonResponse:
    body: Any
    headers: httpx.Headers
    url: httpx.URL
    links: dict[str, dict[str, str]]


class _Retry(Exception):
    def __init__(self, problem: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.status = status
        self.retry_after = retry_after


class HttpSource:
    """Calls to one source's API. Thread-safe enough for one run's sequential use."""

    def __init__(
        self,
        settings: HttpSettings,
        auth: Auth | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        exact_numbers: bool = False,
        no_content: Any = None,
    ) -> None:
        """`exact_numbers` reads JSON numbers as Decimal from their text (money stays exact);
        `no_content`, when given, is the body of a 204 answer (otherwise a 204 is not a JSON answer)."""
        self.settings = settings
        self.exact_numbers = exact_numbers
        self.no_content = no_content
        self.auth = auth or Auth()
        self.sleep = sleep
        self.clock = clock
        self.rng = rng or random.Random()
        self.breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_reset_s, clock)
        self.http = httpx.Client(
            base_url=settings.base_url,
            timeout=settings.timeout_s,
            verify=ssl.create_default_context(cafile=settings.ca_bundle) if settings.ca_bundle else True,
            transport=transport,
            headers={"Accept": "application/json", "User-Agent": "finops-dagster"},
        )

    @property
    def name(self) -> str:
        return self.settings.source

    def close(self) -> None:
        self.http.close()

    def get(
        self, path: str, params: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None
    ) -> JsonResponse:
        return self.request("GET", path, params=params, headers=headers)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> JsonResponse:
        """One logical call, retried as the policy says; returns the decoded JSON body."""
        target = self.http.build_request(method, path).url
        url_path = target.path
        self._refuse_other_hosts(target, method)
        deadline = self.clock() + self.settings.retry_budget_s
        attempt = 0
        refreshed = False
        while True:
            if not self.breaker.allow():
                raise SourceError(
                    self.name,
                    f"circuit open after {self.breaker.failures} failed calls; "
                    f"not calling again for {self.settings.breaker_reset_s:.0f}s",
                    method=method,
                    path=url_path,
                )
            attempt += 1
            try:
                response = self._send(method, path, params, json_body, headers)
                if response.status_code == 401 and self.auth.can_refresh and not refreshed:
                    self.auth.invalidate()
                    refreshed = True
                    attempt -= 1
                    continue
                return self._accept(response, method, url_path, attempt)
            except _Retry as retry:
                delay = self._delay(attempt, retry, method, url_path, deadline)
                self.sleep(delay)

    def _refuse_other_hosts(self, target: httpx.URL, method: str) -> None:
        """Credentials stay with their source: a next link to another host is not followed."""
        base = httpx.URL(self.settings.base_url)
        if (target.scheme, target.host, target.port) != (base.scheme, base.host, base.port):
            raise SourceError(
                self.name,
                f"refusing to call another host ({target.host}) with this source's credentials; "
                "a next link must stay on the configured base URL",
                method=method,
                path=target.path,
            )

    def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json_body: Any,
        headers: Mapping[str, str] | None,
    ) -> httpx.Response:
        try:
            auth_headers = self.auth.headers(self.http)
            return self.http.request(
                method, path, params=params, json=json_body, headers={**auth_headers, **(headers or {})}
            )
        except httpx.TimeoutException:
            raise _Retry(f"timed out after {self.settings.timeout_s:g}s") from None
        except httpx.TransportError as error:
            raise _Retry(f"connection failed ({type(error).__name__})") from None

    def _accept(self, response: httpx.Response, method: str, path: str, attempt: int) -> JsonResponse:
        status = response.status_code
        if status == 429 or status >= 500:
            raise _Retry("rate limited" if status == 429 else "server error", status, _retry_after(response))
        if status == 401:
            raise SourceError(
                self.name,
                "authentication refused; check the source's credentials",
                method=method,
                path=path,
                status=status,
                attempts=attempt,
            )
        if status == 403:
            raise SourceError(
                self.name,
                "access forbidden; the technical account lacks a permission",
                method=method,
                path=path,
                status=status,
                attempts=attempt,
            )
        if status >= 400:
            raise SourceError(
                self.name, "request refused", method=method, path=path, status=status, attempts=attempt
            )
        body = self._decode(response, method, path, attempt)
        self.breaker.record_success()
        return JsonResponse(
            body, response.headers, response.url, {str(k): v for k, v in response.links.items()}
        )

    def _decode(self, response: httpx.Response, method: str, path: str, attempt: int) -> Any:
        if response.status_code == 204 and self.no_content is not None:
            return self.no_content
        content_type = response.headers.get("content-type", "")
        if "json" not in content_type.lower():
            raise SourceError(
                self.name,
                f"expected a JSON answer, got {content_type.split(';')[0] or 'no type'!r}",
                method=method,
                path=path,
                status=response.status_code,
                attempts=attempt,
            )
        try:
            if self.exact_numbers:
                return json.loads(response.content, parse_float=Decimal)
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise SourceError(
                self.name,
                "malformed JSON answer",
                method=method,
                path=path,
                status=response.status_code,
                attempts=attempt,
            ) from None

    def _delay(self, attempt: int, retry: _Retry, method: str, path: str, deadline: float) -> float:
        if attempt > self.settings.retries:
            self.breaker.record_failure()
            raise SourceError(
                self.name,
                f"gave up: {retry.problem}",
                method=method,
                path=path,
                status=retry.status,
                attempts=attempt,
            )
        backoff = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 1)) * self.rng.uniform(0.5, 1.0)
        delay = retry.retry_after if retry.retry_after is not None else backoff
        if self.clock() + delay > deadline:
            self.breaker.record_failure()
            raise SourceError(
                self.name,
                f"retry budget of {self.settings.retry_budget_s:g}s exhausted: {retry.problem}",
                method=method,
                path=path,
                status=retry.status,
                attempts=attempt,
            )
        return delay


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After as seconds (delta or HTTP date); also the x-ms-ratelimit-…-retry-after variants."""
    for name in (
        "retry-after",
        "x-ms-ratelimit-microsoft.costmanagement-entity-retry-after",
        "x-ms-ratelimit-microsoft.costmanagement-tenant-retry-after",
        "x-ms-ratelimit-microsoft.costmanagement-qpu-retry-after",
    ):
        value = response.headers.get(name)
        if not value:
            continue
        try:
            return min(max(float(value), 0.0), RETRY_AFTER_CAP_S)
        except ValueError:
            pass
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            continue
        return min(max(when.timestamp() - time.time(), 0.0), RETRY_AFTER_CAP_S)
    return None
