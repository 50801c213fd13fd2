"""Starting the API: settings, a start-up check of the database access, then uvicorn.

`--demo` serves the demo's mart: the embedded server that `finops-dagster demo` left running under the
demo directory (or POSTGRES_URL when set), with authentication disabled unless FINOPS_API_AUTH says
otherwise — and the API says so loudly at start.
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import suppress
from typing import Any

import uvicorn
from uvicorn.main import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from finops_dagster.api.connections import GuardedHttpToolsProtocol
from finops_dagster.api.db import check_access, describe
from finops_dagster.api.settings import ApiSettings, SettingError, api_settings
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
    # the demo's embedded server has one login, its superuser: allowed there, and said at start
    os.environ.setdefault("FINOPS_API_ALLOW_PRIVILEGED_LOGIN", "true")


def _say(level: int, text: str) -> None:
    """A start-up line on stderr: printed as is in text mode, a log record in JSON mode."""
    if json_logs():
        logging.getLogger("finops_dagster.api").log(level, text)
    else:
        print(text, file=sys.stderr)


def serve(host: str, port: int, *, access_log: bool = True, workers: int = 1) -> int:
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
        f"FinOps API on http://{host}:{port} — schema /openapi.json — reading "
        f"{describe(settings.postgres_url)} as {role}",
    )
    config = uvicorn_config(
        "finops_dagster.api.asgi:create" if workers > 1 else create_app(settings),
        settings,
        host=host,
        port=port,
        access_log=access_log,
        workers=workers,
    )
    run(config)
    return 0


def uvicorn_config(app: Any, settings: ApiSettings, **options: Any) -> uvicorn.Config:
    """uvicorn's configuration for the API: its guarded connections (connections.py), no Server
    header, and the project's log format. `app` is the app, or its import string with workers (each
    worker process imports it and reads the same environment)."""
    log_config = uvicorn_log_config()
    if log_config is not None:
        options["log_config"] = log_config
    if isinstance(app, str):
        options["factory"] = True
    defaults = {"log_level": "info", "proxy_headers": True, "server_header": False}
    config = uvicorn.Config(
        app,
        http=GuardedHttpToolsProtocol,
        timeout_keep_alive=settings.connections.idle_timeout_s,
        **{**defaults, **options},
    )
    # read by GuardedHttpToolsProtocol; an attribute of the config so that it reaches worker processes
    config.connection_limits = settings.connections  # type: ignore[attr-defined]
    return config


def run(config: uvicorn.Config) -> None:
    """uvicorn.run's own steps for a prepared config: one process, or a supervisor and its workers."""
    if config.workers > 1:
        socket = config.bind_socket()
        Multiprocess(config, sockets=[socket]).run()
        return
    server = uvicorn.Server(config)
    with suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        raise SystemExit(STARTUP_FAILURE)
