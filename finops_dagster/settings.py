"""Pipeline settings read from the environment, validated at start.

Every invalid or missing setting raises `SettingError` naming the variable, so a wrong
deployment fails when the code location loads, not halfway through a night.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from finops_dagster.domains.native import DOMAIN_ID as NATIVE
from finops_dagster.domains.open_legacy import DOMAIN_ID as OPEN_LEGACY
from finops_dagster.domains.private_cloud import DOMAIN_ID as PRIVATE_CLOUD
from finops_dagster.domains.public_cloud import DOMAIN_ID as PUBLIC_CLOUD

AVAILABLE_DOMAINS: tuple[str, ...] = (OPEN_LEGACY, PRIVATE_CLOUD, PUBLIC_CLOUD, NATIVE)


class SettingError(ValueError):
    """A setting is missing or invalid; the message names the environment variable."""


def env_str(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingError(f"{name} must be true or false, got {raw!r}")


def env_decimal(name: str, default: str, *, minimum: Decimal = Decimal(0)) -> Decimal:
    raw = env_str(name, default)
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise SettingError(f"{name} must be a number, got {raw!r}") from None
    if not value.is_finite() or value < minimum:
        raise SettingError(f"{name} must be a finite number >= {minimum}, got {raw!r}")
    return value


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = env_str(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise SettingError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise SettingError(f"{name} must be >= {minimum}, got {value}")
    return value


DEFAULT_FIRST_MONTH = "2020-01"
MONTH_PATTERN = re.compile(r"(\d{4})-(\d{2})")


def first_month() -> dt.date:
    """The first month of the partitions (FINOPS_FIRST_MONTH, YYYY-MM): how far back the pipeline
    can compute and backfill."""
    raw = env_str("FINOPS_FIRST_MONTH", DEFAULT_FIRST_MONTH)
    match = MONTH_PATTERN.fullmatch(raw)
    month = int(match.group(2)) if match else 0
    if match is None or not 1 <= month <= 12 or int(match.group(1)) < 1900:
        raise SettingError(f"FINOPS_FIRST_MONTH must be a month as YYYY-MM (e.g. 2020-01), got {raw!r}")
    return dt.date(int(match.group(1)), month, 1)


def enabled_domains() -> tuple[str, ...]:
    """The domains this deployment runs (FINOPS_DOMAINS_ENABLED), in a stable order."""
    raw = os.environ.get("FINOPS_DOMAINS_ENABLED", "").strip()
    if not raw:
        return AVAILABLE_DOMAINS
    names = [part.strip() for part in raw.split(",") if part.strip()]
    for name in names:
        if name not in AVAILABLE_DOMAINS:
            raise SettingError(
                f"FINOPS_DOMAINS_ENABLED: unknown domain {name!r} (known: {', '.join(AVAILABLE_DOMAINS)})"
            )
    if not names:
        raise SettingError("FINOPS_DOMAINS_ENABLED names no domain")
    return tuple(domain for domain in AVAILABLE_DOMAINS if domain in names)


def reporting_currency() -> str:
    """The currency of the mart's totals (FINOPS_REPORTING_CURRENCY): rate cards price in it and
    bills in other currencies are converted into it."""
    value = env_str("FINOPS_REPORTING_CURRENCY", "EUR").upper()
    if len(value) != 3 or not value.isascii() or not value.isalpha():
        raise SettingError(f"FINOPS_REPORTING_CURRENCY must be an ISO 4217 code, got {value!r}")
    return value


@dataclass(frozen=True)
class ScheduleSettings:
    cron: str
    timezone: str
    recalc_previous_month: bool


def schedule_settings() -> ScheduleSettings:
    return ScheduleSettings(
        cron=env_str("FINOPS_NIGHTLY_CRON", "0 2 * * *"),
        timezone=env_str("FINOPS_TIMEZONE", "UTC"),
        recalc_previous_month=env_bool("FINOPS_RECALC_PREVIOUS_MONTH", True),
    )


DEADLINE_PATTERN = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


def freshness_deadline() -> dt.time:
    """The time of day (FINOPS_FRESHNESS_DEADLINE, HH:MM in FINOPS_TIMEZONE, default 06:00) by which
    the night's run must have published the current month: late enough for the nightly to finish,
    early enough to be told before people read the figures."""
    raw = env_str("FINOPS_FRESHNESS_DEADLINE", "06:00")
    match = DEADLINE_PATTERN.fullmatch(raw)
    if match is None:
        raise SettingError(
            f"FINOPS_FRESHNESS_DEADLINE must be a time of day as HH:MM (e.g. 06:00), got {raw!r}"
        )
    return dt.time(int(match.group(1)), int(match.group(2)))


@dataclass(frozen=True)
class VolumeThresholds:
    """How far a month may move from its trailing average before the volume check speaks up."""

    warn_deviation: Decimal
    error_deviation: Decimal
    trailing_months: int


def volume_thresholds() -> VolumeThresholds:
    warn = env_decimal("FINOPS_VOLUME_WARN_DEVIATION", "0.25")
    error = env_decimal("FINOPS_VOLUME_ERROR_DEVIATION", "0.5")
    if error < warn:
        raise SettingError(
            f"FINOPS_VOLUME_ERROR_DEVIATION must be >= FINOPS_VOLUME_WARN_DEVIATION ({error} < {warn})"
        )
    return VolumeThresholds(
        warn_deviation=warn,
        error_deviation=error,
        trailing_months=env_int("FINOPS_VOLUME_TRAILING_MONTHS", 3, minimum=1),
    )


def pipeline_version() -> str:
    """What etl_runs records as the code version: the package version and the image's git sha."""
    from finops_dagster import __version__

    sha = os.environ.get("FINOPS_GIT_SHA", "").strip()
    return f"{__version__}+{sha[:12]}" if sha else __version__


def run_wait_seconds() -> int:
    """How long a run waits for a month another run is computing before it gives up
    (FINOPS_RUN_WAIT_SECONDS, default two hours: far longer than a night's run, and well within the
    four hours after which Dagster's run monitoring fails a run)."""
    return env_int("FINOPS_RUN_WAIT_SECONDS", 2 * 3600, minimum=0)


def anomaly_min_cost() -> Decimal:
    """The smallest change (in the row's currency, against the trailing average) that is an anomaly:
    below it a spike or a drop is noise, not something to look at."""
    return env_decimal("FINOPS_ANOMALY_MIN_COST", "100")
