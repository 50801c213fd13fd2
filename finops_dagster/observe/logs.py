"""Logs as one JSON object per line when FINOPS_LOG_FORMAT=json (text stays the default).

Every process of the project can emit them: the headless nightly (`finops-dagster nightly`), the code
location (Dagster's own events go through the `console` logger this module provides in JSON mode), and
the read API (uvicorn's access and error logs included). Each object has `time` (UTC, ISO 8601),
`level`, `logger` and `message`, plus what is known of the context: `run_id`, `job`, `step`,
`domain`, `month` (or `months` for a range), `event` (a Dagster event's type), and, for the API's
access log, `method`, `path` and `status`. The message is the one the text format would print, so
what keeps secrets out of the text logs keeps them out of these.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

from dagster import Field, InitLoggerContext, LoggerDefinition, logger

from finops_dagster.settings import AVAILABLE_DOMAINS, SettingError

LOG_FORMAT_SETTING = "FINOPS_LOG_FORMAT"
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DOMAINS = AVAILABLE_DOMAINS
CONTEXT_FIELDS = ("run_id", "job", "step", "domain", "month", "months")
PARTITION_TAG = "dagster/partition"
RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


def log_format() -> str:
    """`text` (default) or `json`; anything else fails naming the setting."""
    value = os.environ.get(LOG_FORMAT_SETTING, "text").strip().lower() or "text"
    if value not in FORMATS:
        raise SettingError(f"{LOG_FORMAT_SETTING} must be text or json, got {value!r}")
    return value


def json_logs() -> bool:
    return log_format() == "json"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": _message(record),
        }
        entry.update(_context(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def _message(record: logging.LogRecord) -> str:
    meta = getattr(record, "dagster_meta", None)
    if isinstance(meta, Mapping) and isinstance(meta.get("orig_message"), str):
        return meta["orig_message"]
    return record.getMessage()


def _context(record: logging.LogRecord) -> dict[str, Any]:
    """run id, step, domain, month… from the record's `extra`, Dagster's metadata, uvicorn's args."""
    found: dict[str, Any] = {}
    meta = getattr(record, "dagster_meta", None)
    if isinstance(meta, Mapping):
        found.update(_dagster_context(meta))
    for name in CONTEXT_FIELDS:
        value = getattr(record, name, None)
        if value is not None:
            found[name] = value
    if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
        _, method, path, _, status = record.args
        found.update({"method": method, "path": path, "status": status})
    return found


def _dagster_context(meta: Mapping[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for field, key in (("run_id", "run_id"), ("job", "job_name"), ("step", "step_key")):
        if meta.get(key):
            found[field] = meta[key]
    step = meta.get("step_key") or ""
    domain = next((name for name in DOMAINS if step.startswith(name)), None)
    if domain:
        found["domain"] = domain
    tags = meta.get("job_tags") or {}
    first, last = (tags.get(tag) for tag in RANGE_TAGS)
    if tags.get(PARTITION_TAG):
        found["month"] = tags[PARTITION_TAG][:7]
    elif first and last:
        found.update({"month": first[:7]} if first == last else {"months": f"{first[:7]}:{last[:7]}"})
    event = meta.get("dagster_event")
    if event is not None and getattr(event, "event_type_value", None):
        found["event"] = event.event_type_value
    return found


def formatter() -> logging.Formatter:
    return JsonFormatter() if json_logs() else logging.Formatter(TEXT_FORMAT)


def configure_logging(level: int = logging.INFO) -> None:
    """The process's root logger on stderr, in the configured format (replaces basicConfig)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # Python's warnings (Dagster's beta notices) would otherwise be bare text lines among the JSON
    logging.captureWarnings(json_logs())


def uvicorn_log_config() -> dict[str, Any] | None:
    """uvicorn's `log_config` in JSON mode (its error and access loggers in JSON); None keeps its own."""
    if not json_logs():
        return None
    json_formatter = {"()": f"{__name__}.JsonFormatter"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": json_formatter},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json",
                                "stream": "ext://sys.stderr"}},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        },
    }


@logger(
    config_schema={
        "log_level": Field(str, is_required=False, default_value="INFO"),
        "name": Field(str, is_required=False, default_value="dagster"),
    },
    description="Dagster's events and logs as one JSON object per line on stderr (FINOPS_LOG_FORMAT=json).",
)
def json_console_logger(init_context: InitLoggerContext) -> logging.Logger:
    """Same configuration as Dagster's default `console` logger, so run configs written for it work."""
    config = init_context.logger_config
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    run_logger = logging.Logger(config["name"], level=config["log_level"].upper())
    run_logger.addHandler(handler)
    return run_logger


def dagster_loggers() -> dict[str, LoggerDefinition] | None:
    """The code location's loggers: Dagster's own console in text mode, the JSON one in JSON mode."""
    return {"console": json_console_logger} if json_logs() else None
