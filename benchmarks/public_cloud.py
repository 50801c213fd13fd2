"""Benchmark: the public_cloud domain asset on a month of FOCUS line items, against a bare DuckDB GROUP BY.

Generates `--line-items` FOCUS line items for one month as Parquet (two providers, one billed in
USD), then, each in a fresh process so its peak memory is its own:
  1. materializes `public_cloud_releves` for the month against a fresh PostgreSQL database
     (the whole asset: reading, allocation, conversion, staging into the mart);
  2. runs a bare DuckDB `GROUP BY` over the same files, by the columns the domain reads,
     summing the same cost: the least any reader of these files has to do.
Prints the asset step's wall time (from Dagster's step events: what the asset itself takes) and the
whole `materialize` call, the GROUP BY's time kept in DuckDB (`CREATE TABLE … AS`) and fetched into
Python, their ratios and each process's peak resident memory. The ratio judged against the target is
the median of each round's ratio (a step and the GROUP BY measured back to back): on a shared
machine whose speed drifts from minute to minute, the fastest step against the fastest GROUP BY
compares moments, not programs.

    python -m benchmarks.public_cloud                       # 10,000,000 line items
    python -m benchmarks.public_cloud --line-items 1000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import psycopg

from benchmarks.harness import (
    DEFAULT_SERVER,
    bench_database,
    load_average,
    machine,
    max_rss_mib,
    mib,
    n,
    s,
    table,
)
from finops_dagster.demo.estate import build_estate
from finops_dagster.demo.public_cloud import DEMO_PROVIDERS, write_focus_exports
from finops_dagster.domains.public_cloud.export_reader import export_files

MONTH = dt.date(2026, 10, 1)
TARGET_RATIO = 1.5
TARGET_PEAK_MIB = 1024


def generate(directory: Path, line_items: int, applications: int, seed: int) -> tuple[list[Path], float]:
    """The month's exports: `line_items` in all, half per provider."""
    estate = build_estate(applications=applications, seed=seed)
    start = time.perf_counter()
    paths = write_focus_exports(
        estate,
        directory,
        [MONTH],
        line_items_per_month=line_items // len(DEMO_PROVIDERS),
        fmt="parquet",
        seed=seed,
    )
    return paths, time.perf_counter() - start


def prepare_mart(url: str, applications: int, seed: int) -> str:
    from finops_dagster.mart.migrations import apply_migrations
    from finops_dagster.reference.catalog import load_catalog
    from finops_dagster.reference.loader import (
        ApplicationRecord,
        load_applications_into_mart,
        load_catalog_into_mart,
    )

    with psycopg.connect(url, autocommit=True) as conn:
        apply_migrations(conn)
        load_catalog_into_mart(conn, load_catalog())
        estate = build_estate(applications=applications, seed=seed)
        records = [
            ApplicationRecord(app.code, app.name, app.group_code, app.group_name)
            for app in estate.applications
        ]
        load_applications_into_mart(conn, records, source="benchmark")
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


def measure_asset(url: str, directory: str) -> dict[str, Any]:
    """Materialize the domain asset for the month; runs in its own process."""
    os.environ.update(
        POSTGRES_URL=url,
        FINOPS_PUBLIC_CLOUD_SOURCES="focus",
        FINOPS_FOCUS_PATHS=directory,
    )
    from dagster import DagsterInstance, materialize

    from finops_dagster.domains.public_cloud.assets import public_cloud_releves
    from finops_dagster.domains.public_cloud.resource import public_cloud_from_env
    from finops_dagster.mart.etl_runs import RunLedger
    from finops_dagster.resources.postgres import postgres_from_env

    postgres = postgres_from_env()
    resources = {
        "postgres": postgres,
        "public_cloud": public_cloud_from_env(),
        "run_ledger": RunLedger(postgres=postgres),
    }
    rss_before = max_rss_mib()
    instance = DagsterInstance.ephemeral()
    start = time.perf_counter()
    result = materialize(
        [public_cloud_releves], resources=resources, partition_key=MONTH.isoformat(), instance=instance
    )
    wall = time.perf_counter() - start
    metadata = result.asset_materializations_for_node("public_cloud_releves")[0].metadata
    steps = {
        entry.dagster_event.event_type_value: entry.timestamp
        for entry in instance.all_logs(result.run_id)
        if entry.dagster_event is not None
    }
    return {
        "step_s": steps["STEP_SUCCESS"] - steps["STEP_START"],
        "wall_s": wall,
        "peak_mib": max_rss_mib(),
        "rss_before_mib": rss_before,
        "line_items": metadata["line_items"].value,
        "releves": metadata["releves"].value,
        "rejects": metadata["rejects"].value,
        "total_cost": metadata["total_cost_exact"].value,
    }


BARE_GROUP_BY = """
    SELECT coalesce(ServiceProviderName, ProviderName), ServiceName, ServiceCategory, ChargeCategory,
           SubAccountId, SubAccountName, Tags, BillingCurrency, PricingUnit,
           sum(EffectiveCost), count(*), sum(PricingQuantity)
    FROM read_parquet($files, union_by_name = true)
    WHERE ChargePeriodStart >= $start AND ChargePeriodStart < $end
    GROUP BY ALL
"""
"""The month's cost grouped by the columns the domain reads, straight from the files."""


def measure_bare(directory: str) -> dict[str, Any]:
    """The bare GROUP BY, kept in DuckDB (as the domain keeps its first sums), then fetched."""
    params = {
        "files": export_files([directory]),
        "start": dt.datetime(2026, 10, 1),
        "end": dt.datetime(2026, 11, 1),
    }
    rss_before = max_rss_mib()
    with duckdb.connect() as conn:
        conn.execute("SET enable_progress_bar = false")
        start = time.perf_counter()
        conn.execute(f"CREATE TEMP TABLE grouped AS {BARE_GROUP_BY}", params)
        in_duckdb = time.perf_counter() - start
        row = conn.execute('SELECT count(*), sum("count_star()") FROM grouped').fetchone()
        start = time.perf_counter()
        rows = conn.execute(BARE_GROUP_BY, params).fetchall()
        fetched = time.perf_counter() - start
    return {
        "wall_s": in_duckdb,
        "fetched_s": fetched,
        "peak_mib": max_rss_mib(),
        "rss_before_mib": rss_before,
        "groups": row[0] if row else 0,
        "line_items": row[1] if row else 0,
        "fetched_groups": len(rows),
    }


def in_child(args: Sequence[str]) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.public_cloud", *args], check=True, capture_output=True, text=True
    )
    return dict(json.loads(completed.stdout.strip().splitlines()[-1]))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.public_cloud",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--line-items", type=int, default=10_000_000, help="line items in the month (default 10M)"
    )
    parser.add_argument("--applications", type=int, default=5000, help="applications (default 5,000)")
    parser.add_argument(
        "--postgres-url", default=DEFAULT_SERVER, help="a server the benchmark may create a database on"
    )
    parser.add_argument(
        "--workdir", type=Path, help="where to write the Parquet files (default: a temporary folder)"
    )
    parser.add_argument(
        "--reuse", type=Path, help="a folder of FOCUS Parquet files written by an earlier run: no generation"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds of both measures; the fastest of each is kept (default 3)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--measure", choices=("asset", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--directory", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.measure == "asset":
        print(json.dumps(measure_asset(args.url, args.directory)))
        return 0
    if args.measure == "bare":
        print(json.dumps(measure_bare(args.directory)))
        return 0
    with (
        tempfile.TemporaryDirectory(dir=args.workdir) as workdir,
        bench_database(args.postgres_url) as (_, url),
    ):
        directory = args.reuse or Path(workdir) / "focus"
        if args.reuse is None:
            print(
                f"generating {n(args.line_items)} FOCUS line items for {MONTH:%Y-%m} as Parquet …", flush=True
            )
            paths, generate_s = generate(directory, args.line_items, args.applications, args.seed)
            size = sum(path.stat().st_size for path in paths)
            print(f"  {len(paths)} file(s), {mib(size / 2**20)} MiB, in {s(generate_s)} s", flush=True)
        server_version = prepare_mart(url, args.applications, args.seed)
        bares, assets = [], []
        for attempt in range(1, args.repeat + 1):
            print(f"measuring, round {attempt} of {args.repeat} …", flush=True)
            bares.append(in_child(["--measure", "bare", "--directory", str(directory)]))
            assets.append(in_child(["--measure", "asset", "--url", url, "--directory", str(directory)]))
        bare = min(bares, key=lambda run: run["wall_s"])
        bare["fetched_s"] = min(run["fetched_s"] for run in bares)
        asset = min(assets, key=lambda run: run["step_s"])
    ratios = [one["step_s"] / other["wall_s"] for one, other in zip(assets, bares, strict=True)]
    ratio = statistics.median(ratios)
    print()
    print(machine(server_version))
    print(f"load average now: {load_average()}; {args.repeat} rounds, each measure in turn")
    print()
    print(
        table(
            ["round", "bare GROUP BY s", "step s", "step / bare"],
            [
                [str(number), s(other["wall_s"]), s(one["step_s"]), f"{one['step_s'] / other['wall_s']:.2f}"]
                for number, (one, other) in enumerate(zip(assets, bares, strict=True), start=1)
            ],
        )
    )
    print()
    print("fastest of the rounds:")
    print(
        table(
            ["step", "line items", "wall s", "line items/s", "peak RSS MiB", "out"],
            [
                [
                    "bare GROUP BY, kept in DuckDB",
                    n(bare["line_items"]),
                    s(bare["wall_s"]),
                    n(bare["line_items"] / bare["wall_s"]),
                    mib(bare["peak_mib"]),
                    f"{n(bare['groups'])} groups",
                ],
                [
                    "bare GROUP BY, fetched",
                    n(bare["line_items"]),
                    s(bare["fetched_s"]),
                    n(bare["line_items"] / bare["fetched_s"]),
                    "",
                    f"{n(bare['fetched_groups'])} rows in Python",
                ],
                [
                    "public_cloud_releves step",
                    n(asset["line_items"]),
                    s(asset["step_s"]),
                    n(asset["line_items"] / asset["step_s"]),
                    mib(asset["peak_mib"]),
                    f"{n(asset['releves'])} relevés, {n(asset['rejects'])} rejects",
                ],
                [
                    "materialize() in all",
                    n(asset["line_items"]),
                    s(asset["wall_s"]),
                    n(asset["line_items"] / asset["wall_s"]),
                    "",
                    "with Dagster's run start and end",
                ],
            ],
        )
    )
    print()
    print(
        f"ratio asset step / bare GROUP BY kept in DuckDB: {ratio:.2f}, median of the rounds' ratios "
        f"({min(ratios):.2f} to {max(ratios):.2f}; fastest against fastest "
        f"{asset['step_s'] / bare['wall_s']:.2f}) (target <= {TARGET_RATIO})"
    )
    fetched_ratio = asset["step_s"] / bare["fetched_s"]
    print(f"ratio asset step / bare GROUP BY fetched, fastest against fastest: {fetched_ratio:.2f}")
    print(f"asset peak memory: {mib(asset['peak_mib'])} MiB (target < {TARGET_PEAK_MIB} MiB)")
    print(f"total cost of the month: {asset['total_cost']} EUR")
    met = ratio <= TARGET_RATIO and asset["peak_mib"] < TARGET_PEAK_MIB
    print("targets met" if met else "targets NOT met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
