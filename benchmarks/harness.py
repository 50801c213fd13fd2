"""What every benchmark shares: a throw-away database, the machine's description, memory
figures, the `psql \\copy` baseline and the report's table and number formats."""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
MIB = 1024 * 1024


def max_rss_mib() -> float:
    """The process's resident-set high-water mark (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss_mib() -> float:
    """This program's own resident-set high-water mark (VmHWM), in MiB.

    Unlike ru_maxrss, which a child started by fork and exec inherits from its parent (so a child
    of a big parent never reports less than the parent's size at the fork), VmHWM belongs to the
    program's address space and starts afresh at exec. Falls back to ru_maxrss without /proc.
    """
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return max_rss_mib()


def rss_now_mib() -> float:
    """The process's resident set now (VmRSS), in MiB; 0 where /proc is not available."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def database_url(server: str, name: str) -> str:
    params = conninfo_to_dict(server)
    params["dbname"] = name
    return make_conninfo(**params)  # type: ignore[arg-type]


@contextlib.contextmanager
def bench_database(server: str, *, keep: bool = False) -> Iterator[tuple[str, str]]:
    """A fresh database on `server`, dropped on the way out whatever happens (unless `keep`)."""
    name = f"finops_bench_{os.getpid()}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name, database_url(server, name)
    finally:
        if keep:
            print(f"database {name} kept")
        else:
            with psycopg.connect(server, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            print(f"database {name} dropped")


def psql_copy(url: str, path: Path, table_name: str, columns: Sequence[str], psql: str) -> tuple[float, int]:
    """`psql \\copy` of a CSV file into `table_name`, timed around the psql process: (seconds, rows)."""
    command = f"\\copy {table_name} ({', '.join(columns)}) from '{path}' csv"
    start = time.perf_counter()
    subprocess.run(
        [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", command],
        check=True,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(
                sql.SQL(".").join(map(sql.Identifier, table_name.split(".")))
            )
        ).fetchone()
    return seconds, row[0] if row else 0


def psql_startup_s(url: str, psql: str) -> float:
    start = time.perf_counter()
    subprocess.run([psql, "-X", "-q", "-d", url, "-c", "SELECT 1"], check=True, capture_output=True)
    return time.perf_counter() - start


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        first, *rest = cells
        right = [str(cell).rjust(width) for cell, width in zip(rest, widths[1:], strict=True)]
        return "  " + " | ".join([str(first).ljust(widths[0]), *right])

    rule = "  " + "-+-".join("-" * width for width in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def n(value: float) -> str:
    return f"{value:,.0f}"


def s(value: float) -> str:
    return f"{value:,.3f}" if value < 10 else f"{value:,.1f}"


def rate(count: float, seconds: float) -> str:
    return n(count / seconds) if seconds > 0 else "-"


def mib(value: float) -> str:
    return f"{value:,.1f}"


def load_average() -> str:
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


def machine(server_version: str) -> str:
    model = "?"
    with contextlib.suppress(OSError):
        for entry in Path("/proc/cpuinfo").read_text().splitlines():
            if entry.startswith("model name"):
                model = entry.split(":", 1)[1].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return (
        f"machine: {os.cpu_count()} CPUs ({model}), {memory:.0f} GiB RAM, {platform.system()} "
        f"{platform.release()}\n         Python {platform.python_version()} "
        f"({platform.python_implementation()}), psycopg {psycopg.__version__}, "
        f"PostgreSQL server {server_version}\n"
        f"         load average at start {load_average()} (other processes share these CPUs)"
    )
