"""Starting the API: settings, a start-up check of the database access, then uvicorn.

`--demo` serves the demo's mart: the embedded server that `finops-dagster demo` left running under the
demo directory (or POSTGRES_URL when set), with authentication disabled unless FINOPS_API_AUTH says
otherwise — and the API says so loudly at start.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from finops_dagster.api.db import check_access, describe
from finops_dagster.api.settings import SettingError, api_settings
from finops_dagster.observe.logs import configure_logging, json_logs, uvicorn_log_config


def prepare_demo() -> None:
    """Point the API at the demo's mart, and disable authentication unless a mode is set explicitly."""
    from finops_dagster.demo.embedded_postgres import ensure_database, start_embedded
    from finops_dagster.demo.run import demo_dir

    if not os.environ.get("POSTGRES_URL") and not os.environ.get("FINOPS_API_POSTGRES_URL"):
        pgdata = demo_dir() / "pgdata"
        if not pgdata.exists():
            print(
                f"finops-dagster api --demo: no demo data in {pgdata}; run `finops-dagster demo` first",
                file=sys.stderr,
            )
        os.environ["POSTGRES_URL"] = ensure_database(start_embedded(pgdata), "finops")
    os.environ.setdefault("FINOPS_API_AUTH", "none")


def _say(level: int, text: str) -> None:
    """A start-up line on stderr: printed as is in text mode, a log record in JSON mode."""
    if json_logs():
        logging.getLogger("finops_dagster.api").log(level, text)
    else:
        print(text, file=sys.stderr)


def serve(host: str, port: int, *, access_log: bool = True, workers: int = 1) -> int:
    import uvicorn

    from finops_dagster.api.app import AUTH_DISABLED_WARNING, create_app

    configure_logging()
    settings = api_settings()
    if settings.metrics_port is not None and workers > 1:
        raise SettingError(
            "FINOPS_API_METRICS=port:NNNN serves one process's metrics on one port: use it with one worker, "
            "or FINOPS_API_METRICS=on with --workers"
        )
    note = check_access(settings)
    if note:
        _say(logging.WARNING, f"WARNING: {note}")
    if settings.auth_disabled:
        _say(logging.WARNING, f"WARNING: {AUTH_DISABLED_WARNING}")
    role = settings.db_role or "the connecting user (FINOPS_API_DB_ROLE=none)"
    _say(
        logging.INFO,
        f"FinOps API on http://{host}:{port} — docs /docs, schema /openapi.json — reading "
        f"{describe(settings.postgres_url)} as {role}",
    )
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "access_log": access_log,
        "log_level": "info",
        "proxy_headers": True,
        "server_header": False,
    }
    log_config = uvicorn_log_config()
    if log_config is not None:
        options["log_config"] = log_config
    if workers > 1:  # each worker process imports the app and reads the same environment
        uvicorn.run("finops_dagster.api.asgi:create", factory=True, workers=workers, **options)
    else:
        uvicorn.run(create_app(settings), **options)
    return 0
