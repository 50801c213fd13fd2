"""Webhook alerting for the FinOps pipeline: payload formatting and delivery.

The webhook URL is a secret (Slack incoming-webhook URLs embed a token in their path), so this
module is written so that the URL only ever travels from the environment to the HTTP client:
it is never formatted into log lines, exception messages or anything Dagster persists, and the
``httpx`` request log line (which prints the full URL at INFO level) is redacted.

Payloads are Slack-compatible (``text`` + ``blocks``) so the URL can point straight at Slack, and
carry a ``finops`` object with structured fields so that any other receiver (a Teams relay, an
on-call router, a test server) does not have to parse prose.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import httpx

WEBHOOK_URL_ENV: Final = "FINOPS_ALERT_WEBHOOK_URL"
UI_URL_ENV: Final = "FINOPS_DAGSTER_UI_URL"

DEFAULT_TIMEOUT_SECONDS: Final = 10.0
DEFAULT_RETRIES: Final = 2
DEFAULT_BACKOFF_SECONDS: Final = 0.5
ERROR_SUMMARY_MAX_CHARS: Final = 300

PARTITION_TAG: Final = "dagster/partition"
PARTITION_RANGE_START_TAG: Final = "dagster/asset_partition_range_start"
PARTITION_RANGE_END_TAG: Final = "dagster/asset_partition_range_end"

AlertKind = Literal["run_failure", "check_failure"]

logger = logging.getLogger(__name__)


class AlertDeliveryError(Exception):
    """Raised when an alert could not be delivered after all retries.

    The message names only the status code or the error class: the URL must not leak into
    sensor tick errors, which Dagster stores and shows in the UI.
    """


@dataclass(frozen=True)
class PartitionRange:
    """Partition(s) a run covered; a single-partition run has ``start == end``."""

    start: str
    end: str

    def label(self) -> str:
        """Human-readable form, collapsing single partitions so messages stay short."""
        return self.start if self.start == self.end else f"{self.start}…{self.end}"


@dataclass(frozen=True)
class Alert:
    """Everything an alert says, independent of the wire format.

    Kept separate from the payload so sensors only gather facts and formatting lives in one place.
    """

    kind: AlertKind
    run_id: str
    job: str | None
    severity: str
    error_summary: str
    partition_range: PartitionRange | None = None
    asset_key: str | None = None
    check_name: str | None = None
    details: Sequence[str] = field(default_factory=tuple)


# --------------------------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------------------------


def webhook_url_from_env() -> str | None:
    """Return the webhook URL, or None when alerting is disabled (unset or blank)."""
    value = os.environ.get(WEBHOOK_URL_ENV, "").strip()
    return value or None


def ui_url_from_env() -> str | None:
    """Return the Dagster UI base URL without trailing slash, or None when not configured."""
    value = os.environ.get(UI_URL_ENV, "").strip().rstrip("/")
    return value or None


def alerting_disabled_reason() -> str:
    """Skip reason shown on sensor ticks; names the variable, never a value."""
    return f"Alerting is disabled: set the {WEBHOOK_URL_ENV} environment variable to enable it."


# --------------------------------------------------------------------------------------------
# Fact extraction helpers
# --------------------------------------------------------------------------------------------


def summarize_error(text: str | None, max_chars: int = ERROR_SUMMARY_MAX_CHARS) -> str:
    """First non-blank line, truncated: alerts must stay one glance long; the UI has the rest."""
    first_line = next((line.strip() for line in (text or "").splitlines() if line.strip()), "")
    if len(first_line) <= max_chars:
        return first_line
    return first_line[: max_chars - 1].rstrip() + "…"


def partition_range_from_tags(tags: Mapping[str, str]) -> PartitionRange | None:
    """Read the partition (or backfill range) a run targeted from Dagster's standard run tags."""
    start = tags.get(PARTITION_RANGE_START_TAG)
    end = tags.get(PARTITION_RANGE_END_TAG)
    if start and end:
        return PartitionRange(start=start, end=end)
    single = tags.get(PARTITION_TAG)
    if single:
        return PartitionRange(start=single, end=single)
    return None


def run_url(ui_url: str | None, run_id: str) -> str | None:
    """Deep link to the run page, so the on-call person lands on the logs in one click."""
    return f"{ui_url}/runs/{run_id}" if ui_url else None


# --------------------------------------------------------------------------------------------
# Payload formatting
# --------------------------------------------------------------------------------------------


def _escape_mrkdwn(text: str) -> str:
    """Escape the three characters Slack mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _headline(alert: Alert) -> str:
    """One-line summary used as the notification text (what phones and search show)."""
    short_run = alert.run_id[:8]
    partition = f" [{alert.partition_range.label()}]" if alert.partition_range else ""
    if alert.kind == "run_failure":
        head = f"FinOps run failed: {alert.job or 'unknown job'}{partition} (run {short_run})"
    else:
        head = (
            f"FinOps check failed ({alert.severity}): {alert.asset_key} / {alert.check_name}"
            f"{partition} (run {short_run})"
        )
    return f"{head}: {alert.error_summary}" if alert.error_summary else head


def _fields(alert: Alert) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str | None]] = [
        ("Job", alert.job),
        ("Run", alert.run_id),
        ("Partition", alert.partition_range.label() if alert.partition_range else None),
        ("Asset", alert.asset_key),
        ("Check", alert.check_name),
        ("Severity", alert.severity),
    ]
    return [(name, value) for name, value in pairs if value]


def _blocks(alert: Alert, link: str | None) -> list[dict[str, Any]]:
    icon = ":rotating_light:" if alert.severity == "ERROR" else ":warning:"
    title = "Run failure" if alert.kind == "run_failure" else f"Asset check failure ({alert.severity})"
    blocks: list[dict[str, Any]] = [_section(f"{icon} *FinOps {title}*")]
    blocks.append(
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*{name}*\n`{_escape_mrkdwn(value)}`"}
                for name, value in _fields(alert)
            ],
        }
    )
    if alert.error_summary:
        blocks.append(_section(f"```{_escape_mrkdwn(alert.error_summary)}```"))
    blocks.extend(_section(_escape_mrkdwn(line)) for line in alert.details)
    if link:
        blocks.append(_section(f"<{link}|Open run in Dagster>"))
    return blocks


def build_payload(alert: Alert, ui_url: str | None = None) -> dict[str, Any]:
    """Render an alert as a Slack-compatible JSON body with a structured ``finops`` object."""
    link = run_url(ui_url, alert.run_id)
    partition = alert.partition_range
    return {
        "text": _headline(alert),
        "blocks": _blocks(alert, link),
        "finops": {
            "kind": alert.kind,
            "job": alert.job,
            "run_id": alert.run_id,
            "partition_range": {"start": partition.start, "end": partition.end} if partition else None,
            "asset_key": alert.asset_key,
            "check_name": alert.check_name,
            "severity": alert.severity,
            "error_summary": alert.error_summary,
            "run_url": link,
        },
    }


# --------------------------------------------------------------------------------------------
# Delivery
# --------------------------------------------------------------------------------------------

_REDACTED = "<redacted alert webhook URL>"


class _SecretUrlRedactingFilter(logging.Filter):
    """Strip registered secret URLs from ``httpx`` log records.

    httpx logs ``HTTP Request: POST <full url> ...`` at INFO, which would put the webhook token
    in Dagster's captured logs as soon as anyone raises the log level.
    """

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()

    def register(self, url: str) -> None:
        self._secrets.update({url, str(httpx.URL(url))})

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        redacted = message
        for secret in self._secrets:
            redacted = redacted.replace(secret, _REDACTED)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_httpx_redactor = _SecretUrlRedactingFilter()
logging.getLogger("httpx").addFilter(_httpx_redactor)


def _attempt(client: httpx.Client, url: str, payload: Mapping[str, Any]) -> tuple[bool, str | None]:
    """POST once; return (retryable, failure) where failure is None on success.

    Failures are described by status code or exception class only: exception texts from
    httpx can contain the request URL.
    """
    try:
        response = client.post(url, json=dict(payload))
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        return True, type(exc).__name__
    except Exception as exc:  # any other error: report the class only, never str(exc)
        return False, type(exc).__name__
    if response.is_success:
        return False, None
    return response.status_code >= 500, f"HTTP {response.status_code}"


def post_alert(
    payload: Mapping[str, Any],
    webhook_url: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    retries: int = DEFAULT_RETRIES,
    backoff_seconds: float = DEFAULT_BACKOFF_SECONDS,
) -> None:
    """Deliver one payload, retrying connect errors and 5xx (transient), not 4xx (our bug).

    Read timeouts are not retried: the receiver may already have posted the message and a retry
    would duplicate it.
    """
    _httpx_redactor.register(webhook_url)
    attempts = max(retries, 0) + 1
    failure: str | None = None
    with httpx.Client(timeout=timeout) as client:
        for attempt in range(1, attempts + 1):
            retryable, failure = _attempt(client, webhook_url, payload)
            if failure is None:
                return
            if not retryable or attempt == attempts:
                break
            logger.warning("alert webhook attempt %d/%d failed (%s); retrying", attempt, attempts, failure)
            time.sleep(backoff_seconds * attempt)
    # Raised outside any ``except`` block so no httpx exception (whose text may hold the URL)
    # is chained into the traceback Dagster serializes.
    raise AlertDeliveryError(f"alert webhook delivery failed after {attempt} attempt(s): {failure}")


def send_alert(alert: Alert, webhook_url: str) -> dict[str, Any]:
    """Format and deliver an alert with the UI link from the environment; return the payload."""
    payload = build_payload(alert, ui_url_from_env())
    post_alert(payload, webhook_url)
    return payload
