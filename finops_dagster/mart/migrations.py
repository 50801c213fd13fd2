"""The migration runner: plain SQL files in `sql/`, applied in name order, each once.

Each file runs in its own transaction and is recorded with its SHA-256, so an edited applied
file is refused instead of silently diverging from the database; an advisory lock keeps two
processes from migrating at once.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

from finops_dagster.mart.locks import MART_NAMESPACE, MIGRATIONS_KEY

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "sql"
MIGRATION_FILE = re.compile(r"^\d{3}_[a-z0-9_]+\.sql$")

LEDGER_DDL = """
CREATE SCHEMA IF NOT EXISTS finops;
CREATE TABLE IF NOT EXISTS finops.schema_migrations (
    filename    text PRIMARY KEY,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
"""


class MigrationError(RuntimeError):
    """The database and the migration files disagree; the message says which file and how."""


@dataclass(frozen=True)
class Migration:
    name: str
    sql: str
    checksum: str


def discover_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files in apply order; a file not named NNN_name.sql is an error, not ignored."""
    if not directory.is_dir():
        raise MigrationError(f"migration directory {directory} does not exist")
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        if not MIGRATION_FILE.match(path.name):
            raise MigrationError(f"{path.name}: migration files are named NNN_lowercase_name.sql")
        text = path.read_text(encoding="utf-8")
        migrations.append(Migration(path.name, text, hashlib.sha256(text.encode()).hexdigest()))
    return migrations


def apply_migrations(conn: psycopg.Connection, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply what is pending on an autocommit connection; return the names applied."""
    if not conn.autocommit:
        raise MigrationError("apply_migrations needs an autocommit connection")
    migrations = discover_migrations(directory)
    conn.execute("SELECT pg_advisory_lock(%s, %s)", (MART_NAMESPACE, MIGRATIONS_KEY))
    try:
        conn.execute(LEDGER_DDL)
        applied: dict[str, str] = dict(
            conn.execute("SELECT filename, checksum FROM finops.schema_migrations").fetchall()
        )
        _refuse_divergence(migrations, applied)
        done = []
        for migration in migrations:
            if migration.name in applied:
                continue
            try:
                with conn.transaction():
                    conn.execute(migration.sql)
                    conn.execute(
                        "INSERT INTO finops.schema_migrations (filename, checksum) VALUES (%s, %s)",
                        (migration.name, migration.checksum),
                    )
            except psycopg.DatabaseError as error:
                reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                raise MigrationError(
                    f"{migration.name} failed and was rolled back (nothing of it applied): {reason}"
                ) from error
            done.append(migration.name)
        return done
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s, %s)", (MART_NAMESPACE, MIGRATIONS_KEY))


def _refuse_divergence(migrations: list[Migration], applied: dict[str, str]) -> None:
    known = {migration.name: migration for migration in migrations}
    for name, checksum in sorted(applied.items()):
        if name not in known:
            raise MigrationError(
                f"the database has migration {name} applied, which this code does not have: "
                "it was migrated by a newer version"
            )
        if known[name].checksum != checksum:
            raise MigrationError(
                f"{name} was edited after it was applied (recorded sha256 {checksum[:12]}…, "
                f"file {known[name].checksum[:12]}…): add a new migration instead of editing one"
            )
