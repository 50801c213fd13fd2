"""The nightly run end to end, at a chosen scale of the generated estate.

    python -m benchmarks.nightly                 # reference scale (Scale.reference(1.0))
    python -m benchmarks.nightly --scale 0.1     # the same estate, a tenth of the source volumes

What it does, in order (everything but step 6 is set-up, timed and printed on its own):

1. a fresh database `finops_bench_<pid>` on --postgres-url (migrated; dropped at the end);
2. the sources of `Scale.reference(--scale)`, all drawn from one estate of 5,000 applications:
   FOCUS exports (Parquet) of two providers for the previous and the current month, the simulated
   private cloud (OpenStack, OpenCost, usage API) and native services (GitLab, Artifactory, Cube)
   served over HTTP on localhost by this process, and the native services' past nights of the two
   months saved into the mart (their snapshots are the domain's only history; the services are
   asked on each month's first night and what they said is saved for every night of the month);
3. MongoDB: no MongoDB server can run on this machine and the in-memory stand-in cannot hold a
   million CIs with their nightly dumps, so the Dagster run reads the stand-in at --standin-cis
   CIs (all the estate's application records, every nightly dump of the two months), and the
   open_legacy mapping and pricing of the scale's CIs over 30 dumps is timed apart, on
   what MongoDB's aggregation yields (one summary per CI), by the open_legacy benchmark's
   generator and fold, the pricing in SQL (step 8);
4. a first nightly run over the previous and current month (its publish populates the aggregates),
   then the aggregates step alone with 2 months in the mart (the run's months recomputed in a
   transaction rolled back);
5. 24 months of history before the previous month, by SQL from what that run published (≈3% of
   relevés churn per month, a 1%/month trend and ±10% noise), with their etl_runs and domain_load
   records, so the volume checks and the aggregates compare real history; the aggregates rebuilt
   (`rebuild_aggregates`, timed), then the aggregates step alone again with 26 months: the ratio of
   the two is the history growth (target ≤ 1.3), each ≤ 10 s at ×1;
6. THE MEASURED RUN: the nightly job (`finops_nightly`, previous + current month, every domain, the
   publish with the 11 aggregates of its months, every check) executed in process in a child
   process, so its peak memory (VmHWM, the high-water mark of its own address space — not
   ru_maxrss, which a forked child inherits from this process and its simulators) is its own; a
   thread samples VmRSS every 100 ms and each step gets the highest sample taken while it ran.
   Meanwhile another process reads the aggregates every 50 ms as the API does (a month's top
   applications, domains, ranking, anomalies, history), timing each read (max ≤ 100 ms, none > 1 s);
7. baselines on the same data: `psql \\copy` of the run's published rows (exported to CSV) into an
   empty copy of fact_releve, and a bare DuckDB GROUP BY over the FOCUS files of the two months,
   each in a fresh process;
8. the open_legacy fold at the scale's CI count (see 3).

Figures: per step wall time, rows in and out, throughput and peak RSS; the run's wall time and peak
memory; the baselines and the ratios of the publish and public_cloud steps to them; the aggregates step with 2
and 26 months; the read loop's latencies; the targets at ×1 (run ≤ 120 s with the stand-in CMDB and
≤ 150 s with the CMDB mapping at scale in its place, aggregates ≤ 10 s and history growth ≤ 1.3,
native_releves ≤ 10 s, CMDB mapping ≤ 15 s, peak ≤ 1.5 GiB, reads max ≤ 100 ms and none > 1 s).
--json PATH saves every figure. Before each aggregates measurement the set-up vacuums and analyzes
the database, as autovacuum would have over the nights it stands for.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg

from benchmarks.harness import (
    DEFAULT_SERVER,
    bench_database,
    load_average,
    machine,
    mib,
    n,
    peak_rss_mib,
    psql_copy,
    psql_startup_s,
    rss_now_mib,
    s,
    table,
)
from finops_dagster.demo.scale import Scale
from finops_dagster.mart.aggregates import AGGREGATES, maintain_aggregates, rebuild_aggregates
from finops_dagster.releve import RELEVE_COLUMNS, month_start, next_month
from finops_dagster.settings import anomaly_min_cost

TARGET_RUN_S = 120.0
TARGET_RUN_WITH_CMDB_S = 150.0
TARGET_PEAK_MIB = 2048.0
TARGET_READ_S = 1.0
TARGET_PRICING_PEAK_MIB = 1536.0
TARGET_NATIVE_S = 10.0
TARGET_CMDB_MAPPING_S = 15.0
TARGET_READ_MAX_S = 0.1
TARGET_AGGREGATES_S = 10.0
TARGET_HISTORY_GROWTH = 1.3
CMDB_DUMPS = 30
READ_INTERVAL_S = 0.05
RSS_INTERVAL_S = 0.1
STANDIN_CIS = 3_000
HISTORY_CHURN_PER_MILLE = 30
HISTORY_TREND_PER_MONTH = 0.01


# --------------------------------------------------------------------------- child: the nightly run


class RssSampler(threading.Thread):
    """VmRSS of this process every `interval` seconds, with the wall-clock time of each sample."""

    def __init__(self, interval: float = RSS_INTERVAL_S) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append((time.time(), rss_now_mib()))
            self._halt.wait(self.interval)

    def stop(self) -> list[tuple[float, float]]:
        self._halt.set()
        self.join()
        self.samples.append((time.time(), rss_now_mib()))
        return self.samples


def _metadata_value(value: Any) -> Any:
    raw = getattr(value, "value", value)
    return raw if isinstance(raw, int | float | str | bool) or raw is None else str(raw)


def run_nightly(first: str, last: str) -> dict[str, Any]:
    """Execute the nightly job over [first, last] in this process; everything as JSON-able data."""
    import warnings

    warnings.filterwarnings("ignore", message=".*(beta|no-op in mongomock|XDG_RUNTIME_DIR|preview).*")
    from dagster import DagsterInstance

    from finops_dagster.mart.etl_runs import RANGE_END_TAG, RANGE_START_TAG
    from finops_dagster.pipeline import build_definitions
    from finops_dagster.resources.mongo import MongoResource

    started = time.perf_counter()
    # The stand-in is filled once per process and URL: fill it before the run starts.
    MongoResource(url=os.environ["MONGO_URL"], database=os.environ.get("MONGO_DB", "cmdb_raw")).db()
    standin_s = time.perf_counter() - started
    job = build_definitions().resolve_job_def("finops_nightly")
    rss_before = peak_rss_mib()
    sampler = RssSampler()
    sampler.start()
    with DagsterInstance.ephemeral() as instance:
        begin = time.time()
        clock = time.perf_counter()
        result = job.execute_in_process(
            instance=instance,
            tags={RANGE_START_TAG: first, RANGE_END_TAG: last},
            run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
            raise_on_error=False,
        )
        wall = time.perf_counter() - clock
        end = time.time()
        entries = instance.all_logs(result.run_id)
    samples = sampler.stop()
    steps: dict[str, dict[str, Any]] = {}
    materializations: dict[str, list[dict[str, Any]]] = {}
    checks: list[dict[str, Any]] = []
    failures: list[str] = []
    for entry in entries:
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        kind = event.event_type_value
        step = steps.setdefault(event.step_key, {"key": event.step_key, "start": None, "end": None})
        if kind == "STEP_START":
            step["start"] = entry.timestamp
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"):
            step["end"] = entry.timestamp
            step["status"] = kind.removeprefix("STEP_").lower()
            if kind == "STEP_FAILURE":
                failures.append(f"{event.step_key}: {event.message}")
        elif kind == "ASSET_MATERIALIZATION":
            materialization = event.event_specific_data.materialization  # type: ignore[union-attr]
            materializations.setdefault(event.step_key, []).append(
                {
                    "asset": materialization.asset_key.to_user_string(),
                    "metadata": {k: _metadata_value(v) for k, v in materialization.metadata.items()},
                }
            )
        elif kind == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            checks.append(
                {
                    "step": event.step_key,
                    "check": f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}",  # type: ignore[union-attr]
                    "passed": bool(evaluation.passed),  # type: ignore[union-attr]
                    "severity": str(getattr(evaluation.severity, "value", evaluation.severity)),  # type: ignore[union-attr]
                }
            )
    for step in steps.values():
        if step["start"] is not None and step["end"] is not None:
            inside = [
                rss for moment, rss in samples if step["start"] <= moment <= step["end"] + RSS_INTERVAL_S
            ]
            step["rss_peak_mib"] = max(inside, default=0.0)
    loads = _run_loads(os.environ["POSTGRES_URL"], result.run_id)
    return {
        "run_id": result.run_id,
        "success": result.success,
        "wall_s": wall,
        "begin": begin,
        "end": end,
        "standin_fill_s": standin_s,
        "rss_before_mib": rss_before,
        "rss_sampled_peak_mib": max((rss for _, rss in samples), default=0.0),
        "peak_mib": peak_rss_mib(),
        "steps": sorted(
            (step for step in steps.values() if step["start"] is not None), key=lambda step: step["start"]
        ),
        "materializations": materializations,
        "checks": checks,
        "failures": failures,
        "loads": loads,
    }


def _run_loads(url: str, run_id: str) -> dict[str, Any]:
    with psycopg.connect(url) as conn:
        domains = conn.execute(
            "SELECT domain_id, sum(source_record_count)::bigint, sum(releve_count)::bigint, "
            "sum(reject_count)::bigint, count(*) FILTER (WHERE published_at IS NOT NULL) "
            "FROM finops.domain_load WHERE run_id = %s GROUP BY domain_id",
            (run_id,),
        ).fetchall()
        fact = conn.execute("SELECT count(*) FROM finops.fact_releve").fetchone()
        status = conn.execute(
            "SELECT status, error_summary FROM finops.etl_runs WHERE run_id = %s", (run_id,)
        ).fetchone()
    return {
        "domains": {
            domain: {"source_records": source, "releves": releves, "rejects": rejects, "published": published}
            for domain, source, releves, rejects, published in domains
        },
        "fact_releve_rows": fact[0] if fact else 0,
        "etl_status": list(status) if status else None,
    }


# --------------------------------------------------------------------------- child: the read loop


def read_loop(url: str, month: str) -> dict[str, Any]:
    """Read the aggregates every READ_INTERVAL_S until stdin closes: what the API does meanwhile."""
    stop = threading.Event()

    def wait_for_eof() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=wait_for_eof, daemon=True).start()
    queries = (
        "SELECT application_id, total_cost FROM finops.mv_cost_application_month "
        "WHERE period_month = %s ORDER BY total_cost DESC LIMIT 20",
        "SELECT domain_id, total_cost FROM finops.mv_cost_domain_month WHERE period_month = %s",
        "SELECT application_id, cost_rank FROM finops.mv_rank_app_month "
        "WHERE period_month = %s AND cost_rank <= 10",
        "SELECT application_id, domain_id, anomaly_kind, total_cost FROM finops.mv_anomalies_month "
        "WHERE period_month = %s ORDER BY abs(total_cost - trailing_avg_cost) DESC LIMIT 50",
        "SELECT domain_id, period_month, rolling_12m_cost FROM finops.mv_history_domain "
        "WHERE period_month <= %s ORDER BY domain_id, period_month",
    )
    latencies: list[float] = []
    slow: list[tuple[float, float]] = []
    errors = 0
    with psycopg.connect(url, autocommit=True) as conn:
        index = 0
        while not stop.is_set():
            begin = time.time()
            started = time.perf_counter()
            try:
                conn.execute(queries[index % len(queries)], (month,)).fetchall()
            except psycopg.Error:
                errors += 1
            latency = time.perf_counter() - started
            latencies.append(latency)
            if latency > 0.2:
                slow.append((begin, latency))
            index += 1
            stop.wait(READ_INTERVAL_S)
    ordered = sorted(latencies)
    return {
        "reads": len(latencies),
        "errors": errors,
        "max_s": ordered[-1] if ordered else 0.0,
        "p50_s": ordered[len(ordered) // 2] if ordered else 0.0,
        "p99_s": ordered[int(len(ordered) * 0.99)] if ordered else 0.0,
        "over_1s": sum(1 for latency in latencies if latency > TARGET_READ_S),
        "slow": slow,
    }


# --------------------------------------------------------------------------- children: baselines


BARE_GROUP_BY = """
    SELECT date_trunc('month', ChargePeriodStart),
           coalesce(ServiceProviderName, ProviderName), ServiceName, ServiceCategory, ChargeCategory,
           SubAccountId, SubAccountName, Tags, BillingCurrency, PricingUnit,
           sum(EffectiveCost), count(*), sum(PricingQuantity)
    FROM read_parquet($files, union_by_name = true)
    WHERE ChargePeriodStart >= $start AND ChargePeriodStart < $end
    GROUP BY ALL
"""
"""The public_cloud benchmark's baseline (the columns the domain groups by, the same cost), per month."""


def bare_group_by(directory: str, first: str, end: str) -> dict[str, Any]:
    """The bare GROUP BY over the FOCUS files of the months from `first` to `end` (exclusive)."""
    import duckdb

    from finops_dagster.domains.public_cloud.export_reader import export_files

    params = {
        "files": export_files([directory]),
        "start": dt.datetime.fromisoformat(first),
        "end": dt.datetime.fromisoformat(end),
    }
    rss_before = peak_rss_mib()
    start = time.perf_counter()
    with duckdb.connect() as conn:
        rows = conn.execute(BARE_GROUP_BY, params).fetchall()
    wall = time.perf_counter() - start
    return {
        "wall_s": wall,
        "peak_mib": peak_rss_mib(),
        "rss_before_mib": rss_before,
        "groups": len(rows),
        "line_items": sum(row[11] for row in rows),
    }


def cmdb_fold(server: str, cis: int, applications: int, seed: int) -> dict[str, Any]:
    """The open_legacy mapping and pricing of `cis` CIs over CMDB_DUMPS dumps (the open_legacy
    benchmark's generator and fold, the generator's own time subtracted)."""
    from benchmarks.open_legacy import Bench, MappingRun, build_estate, prepare
    from finops_dagster.reference.catalog import load_catalog

    catalog = load_catalog()
    estate = build_estate(applications, catalog, seed)
    with bench_database(server) as (_, url):
        snapshot, _, _ = prepare(url, catalog, estate)
        bench = Bench(argparse.Namespace(dumps=CMDB_DUMPS, seed=seed), snapshot, estate, url)
        run = MappingRun(cis=cis)
        bench.time_generator(run)
        bench.map_and_price(run, "nightly-cmdb-fold")
    return {
        "cis": run.cis,
        "documents": run.documents,
        "generator_s": run.generator_s,
        "mapping_s": run.mapping_s,
        "pricing_s": run.finish_s,
        "releves": run.releves,
        "rejects": run.rejects,
        "peak_mib": peak_rss_mib(),
    }


RESULTS: dict[str, Any] = {}
"""Every child's figures, saved as they come (--results), so a late failure loses nothing."""


def in_child(role: Sequence[str], env: dict[str, str] | None = None, *, save_as: str = "") -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.nightly", "--role", *role],
        capture_output=True,
        text=True,
        env=env,
    )
    if completed.returncode != 0:
        sys.stderr.write(completed.stderr[-4000:])
        raise SystemExit(f"the {role[0]} process failed (exit {completed.returncode})")
    result = dict(json.loads(completed.stdout.strip().splitlines()[-1]))
    save(save_as or role[0], result)
    return result


def save(name: str, figures: Any) -> None:
    RESULTS[name] = figures
    path = RESULTS.get("_path")
    if path:
        Path(path).write_text(json.dumps(RESULTS, indent=1, default=str), encoding="utf-8")


# --------------------------------------------------------------------------- parent: set-up


@dataclass
class Setup:
    focus_s: float = 0.0
    focus_files: int = 0
    focus_mib: float = 0.0
    simulators_s: float = 0.0
    replay_s: float = 0.0
    replayed_nights: int = 0
    warmup: dict[str, Any] | None = None
    history_s: float = 0.0
    history_rows: int = 0
    rebuild_s: float = 0.0
    aggregates_2_months: dict[str, float] | None = None
    aggregates_with_history: dict[str, float] | None = None


def replay_nights(environment: Any, first: dt.date, today: dt.date) -> int:
    """The native services' nights since `first`, saved as the nightly runs would have saved them
    (`save_snapshot`, which keeps the month's figures): the services are asked on the first night
    of each month only, and what they said is saved for each night until the next month's, so the
    mart holds every night's rows without 30 rounds of HTTP and parsing per month."""
    from finops_dagster.domains.native.resource import native_from_env
    from finops_dagster.domains.native.snapshots import save_snapshot
    from finops_dagster.resources.postgres import PostgresResource

    if environment.native is None:
        return 0
    nights = [first + dt.timedelta(days=offset) for offset in range((today - first).days)]
    said: list[Any] = []
    postgres = PostgresResource(url=environment.postgres_url)
    with postgres.connect() as conn, native_from_env().connected() as sources:
        for night in nights:
            if night == first or night.day == 1:
                environment.native.simulator.night = night
                said = [snapshot for source in sources for snapshot in source.snapshot(night)]
            for snapshot in said:
                save_snapshot(conn, replace(snapshot, night=night), "bench-replay")
    environment.native.simulator.night = today
    return len(nights)


def analyze(url: str) -> None:
    """Dead rows reclaimed and planner statistics fresh, as autovacuum keeps them over a mart's
    nights: the benchmark fills months and rewrites every aggregate row in minutes, faster than
    autovacuum notices (and a test server may run without it)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")


def aggregates_step(url: str, months: list[dt.date], today: dt.date) -> dict[str, float]:
    """The publish's aggregate maintenance for `months` alone (seconds per aggregate and the total),
    in a transaction rolled back: what the step costs with the history the mart holds now."""
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        timings = maintain_aggregates(conn, months, today=today, min_cost=anomaly_min_cost())
        total = time.perf_counter() - started
        conn.rollback()
    return {**timings, "total": total}


def progress(text: str) -> None:
    sys.stdout.flush()
    print(f"… {text}", file=sys.stderr, flush=True)


def fill_history(url: str, previous: dt.date, months: int, seed: int) -> int:
    """`months` published months before `previous`, derived from what the first run published for
    `previous`: per month back, about 3% of the relevés drop out, cost and usage shrink by the
    trend and vary ±10% per relevé. Each month gets its etl_runs and domain_load records, and an
    allocated view equal to its direct one (no rule applied)."""
    from finops_dagster.mart.month_partitions import ensure_month_partitions

    columns = ", ".join(RELEVE_COLUMNS)
    derived = {
        "period_month": "%(month)s",
        "run_id": "%(run_id)s",
        "computed_at": "%(computed_at)s",
        **{name: f"round({name} * f, 6)" for name in ("usage_quantity", "total_cost", "billed_cost")},
    }
    values = ", ".join(derived.get(name, name) for name in RELEVE_COLUMNS)
    history = []
    month = previous
    for _ in range(months):
        month = month_start(month - dt.timedelta(days=1))
        history.append(month)
    with psycopg.connect(url, autocommit=True) as conn:
        ensure_month_partitions(conn, history)
        with conn.transaction():
            for back, month in enumerate(history, start=1):
                run_id = f"history-{month:%Y-%m}"
                salt = f"{seed}:{month:%Y-%m}"
                conn.execute(
                    "INSERT INTO finops.etl_runs (run_id, status, trigger_type, job_name, periods, "
                    "started_at, ended_at, version) "
                    "VALUES (%s, 'SUCCESS', 'SCHEDULE', 'finops_nightly', %s, %s, %s, 'history')",
                    (
                        run_id,
                        json.dumps([month.isoformat()]),
                        dt.datetime.combine(next_month(month), dt.time(2), dt.UTC),
                        dt.datetime.combine(next_month(month), dt.time(2, 10), dt.UTC),
                    ),
                )
                inserted = conn.execute(
                    f"""
                    INSERT INTO finops.fact_releve ({columns})
                    SELECT {values}
                    FROM (
                        SELECT *, ((1 - %(trend)s * %(back)s)
                                  * (0.9 + 0.2 * ((hashtext(application_id || product_id || %(salt)s) & 1023)
                                                  / 1023.0)))::numeric AS f
                        FROM finops.fact_releve
                        WHERE period_month = %(previous)s
                    ) AS published
                    WHERE (hashtext(%(salt)s || application_id || product_id) & 1023) >= %(churn)s
                    """,
                    {
                        "month": month,
                        "run_id": run_id,
                        "computed_at": dt.datetime.combine(next_month(month), dt.time(2, 5), dt.UTC),
                        "trend": HISTORY_TREND_PER_MONTH,
                        "back": back,
                        "salt": salt,
                        "previous": previous,
                        "churn": HISTORY_CHURN_PER_MILLE * 1024 // 1000,
                    },
                ).rowcount
                conn.execute(
                    "UPDATE finops.etl_runs SET records_inserted = %s WHERE run_id = %s", (inserted, run_id)
                )
                # a month published without allocation rules: its allocated view is its direct one, as
                # migration 017 leaves the months published before it
                conn.execute(
                    "INSERT INTO finops.fact_releve_allocated "
                    "SELECT period_month, application_id, product_id, family_id, domain_id, min(usage_unit), "
                    "currency, sum(usage_quantity), sum(total_cost), 0, 0, sum(total_cost), max(run_id) "
                    "FROM finops.fact_releve WHERE period_month = %s "
                    "GROUP BY period_month, application_id, product_id, family_id, domain_id, currency",
                    (month,),
                )
                conn.execute(
                    "INSERT INTO finops.domain_load (domain_id, period_month, run_id, loaded_at, "
                    "releve_count, reject_count, total_cost, source_record_count, source_totals, "
                    "published_at) "
                    "SELECT domain_id, period_month, run_id, max(computed_at), count(*), 0, sum(total_cost), "
                    "sum(source_record_count), '{}'::jsonb, max(computed_at) FROM finops.fact_releve "
                    "WHERE period_month = %s GROUP BY domain_id, period_month, run_id",
                    (month,),
                )
        conn.execute("ANALYZE finops.fact_releve")
        row = conn.execute(
            "SELECT count(*) FROM finops.fact_releve WHERE period_month < %s", (previous,)
        ).fetchone()
    return row[0] if row else 0


def export_published(url: str, run_id: str, path: Path) -> int:
    """The rows the run published, as CSV in RELEVE_COLUMNS order."""
    columns = ", ".join(RELEVE_COLUMNS)
    rows = 0
    with psycopg.connect(url) as conn, path.open("wb") as handle:
        with conn.cursor().copy(
            f"COPY (SELECT {columns} FROM finops.fact_releve WHERE run_id = %s) TO STDOUT WITH (FORMAT csv)",
            (run_id,),
        ) as copy:
            for chunk in copy:
                handle.write(chunk)
        count = conn.execute(
            "SELECT count(*) FROM finops.fact_releve WHERE run_id = %s", (run_id,)
        ).fetchone()
        rows = count[0] if count else 0
    return rows


# --------------------------------------------------------------------------- parent: the report


def _step_label(key: str) -> str:
    return key.replace("__", ":")


def _rows(step: str, measured: dict[str, Any]) -> tuple[int | None, int | None, str]:
    """(rows in, rows out, what they are) of a step, from the run's loads and metadata."""
    loads = measured["loads"]["domains"]
    outputs = measured["materializations"].get(step, [])
    metadata = outputs[0]["metadata"] if outputs else {}
    for domain, figures in loads.items():
        if step == f"{domain}_releves":
            unit = "line items" if domain == "public_cloud" else "source records"
            return (
                figures["source_records"],
                figures["releves"] + figures["rejects"],
                f"{unit} → relevés+rejects",
            )
    if step == "fact_releve":
        staged = sum(figures["releves"] for figures in loads.values())
        return staged, int(metadata.get("releves", 0)), "staged → published relevés"
    if step == "materialized_views":
        return (
            measured["loads"]["fact_releve_rows"],
            sum(int(item["metadata"].get("rows_estimate", 0)) for item in outputs),
            "fact_releve rows → aggregate rows (11 tables, estimated)",
        )
    if step == "native_snapshots":
        readings = sum(int(v) for k, v in metadata.items() if k.endswith("_readings"))
        return None, readings, "readings persisted (tonight)"
    if step == "applications":
        return None, int(metadata.get("applications", 0)), "applications"
    if step == "reference_data":
        return None, int(metadata.get("products", 0)), "products"
    checks = [check for check in measured["checks"] if check["step"] == step]
    if checks:
        passed = sum(1 for check in checks if check["passed"])
        return None, None, f"{passed}/{len(checks)} check(s) passed"
    return None, None, ""


def print_steps(measured: dict[str, Any]) -> None:
    rows = []
    for step in measured["steps"]:
        wall = (step["end"] or step["start"]) - step["start"]
        rows_in, rows_out, what = _rows(step["key"], measured)
        basis = rows_in if rows_in is not None else rows_out
        rows.append(
            [
                _step_label(step["key"]),
                s(wall),
                n(rows_in) if rows_in is not None else "-",
                n(rows_out) if rows_out is not None else "-",
                n(basis / wall) if basis and wall > 0 else "-",
                mib(step.get("rss_peak_mib", 0.0)),
                step.get("status", "?"),
                what,
            ]
        )
    print(
        table(
            ["step (run order)", "wall s", "rows in", "rows out", "rows/s", "peak RSS MiB", "status", "rows"],
            rows,
        )
    )


def print_checks(measured: dict[str, Any]) -> None:
    failed = [check for check in measured["checks"] if not check["passed"]]
    print(
        f"checks: {len(measured['checks'])} evaluated, {len(failed)} failed"
        + "".join(f"\n  FAILED {check['check']} ({check['severity']})" for check in failed)
    )


def step_at(measured: dict[str, Any], moment: float) -> str:
    for step in measured["steps"]:
        if step["start"] <= moment <= (step["end"] or step["start"]):
            return _step_label(step["key"])
    return "between steps"


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.nightly",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--scale", type=float, default=1.0, help="factor of the reference scale (default 1)")
    parser.add_argument(
        "--postgres-url", default=DEFAULT_SERVER, help="server the benchmark may create a database on"
    )
    parser.add_argument(
        "--workdir", type=Path, help="where to write the FOCUS files (default: a temporary folder)"
    )
    parser.add_argument(
        "--standin-cis",
        type=int,
        default=STANDIN_CIS,
        help=f"CIs of the in-memory CMDB stand-in the Dagster run reads (default {STANDIN_CIS:,})",
    )
    parser.add_argument(
        "--cmdb-fold", action=argparse.BooleanOptionalAction, default=True, help="time the CMDB fold at scale"
    )
    parser.add_argument(
        "--json",
        "--results",
        dest="results",
        type=Path,
        help="also save every figure as JSON there (default: nightly-<scale>-<pid>.json in the temp folder)",
    )
    parser.add_argument(
        "--keep-database", action="store_true", help="keep finops_bench_<pid> at the end, to look into it"
    )
    parser.add_argument("--role", nargs="+", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def child(role: list[str]) -> int:
    kind, *rest = role
    if kind == "run":
        result = run_nightly(*rest)
    elif kind == "reads":
        result = read_loop(*rest)
    elif kind == "bare":
        result = bare_group_by(*rest)
    elif kind == "cmdb-fold":
        result = cmdb_fold(rest[0], int(rest[1]), int(rest[2]), int(rest[3]))
    else:
        raise SystemExit(f"unknown role {kind}")
    print(json.dumps(result))
    return 0


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.role:
        return child(args.role)
    psql = shutil.which("psql")
    if psql is None:
        print("psql is not on PATH: it is the \\copy baseline", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminate)  # so the database is dropped on the way out
    for name in ("FINOPS_DOMAINS_ENABLED", "FINOPS_FOCUS_PATHS", "FINOPS_PUBLIC_CLOUD_SOURCES", "MONGO_URL"):
        os.environ.pop(name, None)
    scale = Scale.reference(args.scale)
    RESULTS["_path"] = str(
        args.results or Path(tempfile.gettempdir()) / f"nightly-{args.scale:g}-{os.getpid()}.json"
    )
    print(f"figures also saved to {RESULTS['_path']}")
    today = dt.datetime.now(dt.UTC).date()
    current = month_start(today)
    previous = month_start(current - dt.timedelta(days=1))
    print(f"nightly benchmark — {scale.describe()}")
    print(
        f"run: previous and current month ({previous:%Y-%m}, {current:%Y-%m} up to {today}), "
        f"{scale.history_months} months published before"
    )
    print(
        "MongoDB: no MongoDB server can run on this machine and the in-memory stand-in cannot hold\n"
        f"         {scale.cis:,} CIs × their nightly dumps. The Dagster run reads the stand-in at "
        f"{args.standin_cis:,} CIs\n"
        f"         (with all {scale.applications:,} application records, every dump of the two months); "
        f"the mapping and pricing\n"
        f"         of {scale.cis:,} CIs × {CMDB_DUMPS} dumps is timed apart on what the aggregation yields "
        "(MongoDB's aggregation NOT measured)."
    )
    setup = Setup()
    with (
        tempfile.TemporaryDirectory(prefix="finops_nightly_", dir=args.workdir) as workdir,
        bench_database(args.postgres_url, keep=args.keep_database) as (name, url),
    ):
        measured, reads, copy_figures, bare, fold, server_version = run(
            args, scale, today, url, Path(workdir), setup, psql
        )
    report(args, scale, setup, measured, reads, copy_figures, bare, fold, server_version, previous)
    return 0 if measured["success"] else 1


def run(
    args: argparse.Namespace, scale: Scale, today: dt.date, url: str, workdir: Path, setup: Setup, psql: str
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any] | None, str]:
    from finops_dagster.demo.run import (
        DemoEnvironment,
        cmdb_standin_url,
        start_simulated_native,
        start_simulated_private_cloud,
        write_demo_focus_exports,
    )
    from finops_dagster.mart.migrations import apply_migrations

    current = month_start(today)
    previous = month_start(current - dt.timedelta(days=1))
    with psycopg.connect(url, autocommit=True) as conn:
        apply_migrations(conn)
        row = conn.execute("SHOW server_version").fetchone()
    server_version = machine(str(row[0]) if row else "?")  # with the load average at the start
    os.environ["POSTGRES_URL"] = url

    progress(f"writing FOCUS exports ({scale.focus_line_items:,} line items per provider-month, Parquet)")
    started = time.perf_counter()
    focus = write_demo_focus_exports(workdir, 2, today, scale, fmt="parquet")
    setup.focus_s = time.perf_counter() - started
    assert focus is not None
    files = [path for path in focus.rglob("*") if path.is_file()]
    setup.focus_files, setup.focus_mib = len(files), sum(path.stat().st_size for path in files) / 2**20

    progress("starting the simulated private cloud and native services")
    started = time.perf_counter()
    private_cloud = start_simulated_private_cloud(today, scale)
    native = start_simulated_native(today, scale)
    setup.simulators_s = time.perf_counter() - started
    standin = cmdb_standin_url(replace(scale, cis=args.standin_cis), 2, today)
    os.environ["MONGO_URL"] = standin
    environment = DemoEnvironment(url, standin, workdir, False, private_cloud, native, focus)

    progress(f"replaying the native services' nights since {previous}")
    started = time.perf_counter()
    setup.replayed_nights = replay_nights(environment, previous, today)
    setup.replay_s = time.perf_counter() - started

    run_role = ["run", previous.isoformat(), current.isoformat()]
    progress("first nightly run (its publish populates the aggregates)")
    setup.warmup = in_child(run_role, dict(os.environ), save_as="first_run")
    if not setup.warmup["success"]:
        print("the first nightly run failed:\n  " + "\n  ".join(setup.warmup["failures"]))
    analyze(url)
    setup.aggregates_2_months = aggregates_step(url, [previous, current], today)
    save("aggregates_2_months", setup.aggregates_2_months)

    progress(f"filling {scale.history_months} months of history")
    started = time.perf_counter()
    setup.history_rows = fill_history(url, previous, scale.history_months, scale.seed)
    setup.history_s = time.perf_counter() - started

    progress("rebuilding the aggregates over the history")
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        rebuild_aggregates(conn, today=today, min_cost=anomaly_min_cost())
    setup.rebuild_s = time.perf_counter() - started
    analyze(url)
    setup.aggregates_with_history = aggregates_step(url, [previous, current], today)
    save("aggregates_with_history", setup.aggregates_with_history)
    save("rebuild_s", setup.rebuild_s)
    progress("THE MEASURED NIGHTLY RUN, with the read loop")
    reader = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.nightly", "--role", "reads", url, previous.isoformat()],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)
        measured = in_child(run_role, dict(os.environ), save_as="measured_run")
    finally:
        assert reader.stdin is not None and reader.stdout is not None
        reader.stdin.close()
        out = reader.stdout.read()
        reader.wait(timeout=60)
    reads = dict(json.loads(out.strip().splitlines()[-1]))
    save("reads", reads)
    progress("baseline: psql \\copy of the published rows")
    csv_path = workdir / "published.csv"
    exported = export_published(url, measured["run_id"], csv_path)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS finops.fact_releve_copy")
        conn.execute("CREATE TABLE finops.fact_releve_copy (LIKE finops.fact_releve INCLUDING ALL)")
    copy_s, copied = psql_copy(url, csv_path, "finops.fact_releve_copy", RELEVE_COLUMNS, psql)
    copy_figures = {
        "rows": exported,
        "copied": copied,
        "seconds": copy_s,
        "psql_start_s": psql_startup_s(url, psql),
    }
    save("copy", copy_figures)
    progress("baseline: bare DuckDB GROUP BY over the FOCUS files")
    bare = in_child(["bare", str(focus), previous.isoformat(), next_month(current).isoformat()])
    fold = None
    if args.cmdb_fold:
        progress(f"open_legacy fold of {scale.cis:,} CIs × {CMDB_DUMPS} dumps")
        fold = in_child(
            ["cmdb-fold", args.postgres_url, str(scale.cis), str(scale.applications), str(scale.seed)]
        )
    return measured, reads, copy_figures, bare, fold, server_version


def report(
    args: argparse.Namespace,
    scale: Scale,
    setup: Setup,
    measured: dict[str, Any],
    reads: dict[str, Any],
    copy_figures: dict[str, Any],
    bare: dict[str, Any],
    fold: dict[str, Any] | None,
    server_version: str,
    previous: dt.date,
) -> None:
    print()
    print(server_version)
    print(f"         load average at the end {load_average()}")
    print()
    print("set-up (not part of the nightly run):")
    print(
        f"  FOCUS exports: {setup.focus_files} Parquet files, {mib(setup.focus_mib)} MiB, "
        f"{s(setup.focus_s)} s; "
        f"simulated services started in {s(setup.simulators_s)} s"
    )
    print(
        f"  native services: {setup.replayed_nights} past nights saved in {s(setup.replay_s)} s "
        "(asked over HTTP on each month's first night)"
    )
    if setup.warmup is not None:
        print(
            f"  first nightly run (views populated, no history yet): {s(setup.warmup['wall_s'])} s, "
            f"{'success' if setup.warmup['success'] else 'FAILED'}, peak {mib(setup.warmup['peak_mib'])} MiB"
        )
    print(
        f"  history: {n(setup.history_rows)} relevés over {scale.history_months} months by SQL "
        f"in {s(setup.history_s)} s"
    )
    print(f"  aggregates rebuilt over the whole history: {s(setup.rebuild_s)} s")
    print(f"  CMDB stand-in filled in the run's process before the run: {s(measured['standin_fill_s'])} s")
    print()
    status = measured["loads"]["etl_status"]
    print(
        f"THE NIGHTLY RUN {measured['run_id']}: {'success' if measured['success'] else 'FAILED'}"
        + (f", etl_runs {status[0]}" if status else "")
        + (f" — {status[1]}" if status and status[1] else "")
    )
    for failure in measured["failures"]:
        print(f"  step failed: {failure[:400]}")
    print_steps(measured)
    print_checks(measured)
    peak = measured["peak_mib"]
    print(f"whole run wall (execute_in_process): {s(measured['wall_s'])} s")
    print(
        f"run process peak memory (VmHWM): {mib(peak)} MiB "
        f"(before the run: {mib(measured['rss_before_mib'])} MiB, with the CMDB stand-in; "
        f"highest 100 ms sample {mib(measured['rss_sampled_peak_mib'])} MiB)"
    )
    loads = measured["loads"]["domains"]
    print(
        "  loads: "
        + "; ".join(
            f"{domain} {n(f['source_records'])} in → {n(f['releves'])} relevés, {n(f['rejects'])} rejects"
            for domain, f in sorted(loads.items())
        )
    )
    print()
    steps = {step["key"]: (step["end"] or step["start"]) - step["start"] for step in measured["steps"]}
    publish_s = steps.get("fact_releve", 0.0)
    public_s = steps.get("public_cloud_releves", 0.0)
    print("baselines (same data, each in its own process):")
    print(
        table(
            ["baseline", "rows", "wall s", "rows/s", "peak RSS MiB", "step", "step s", "ratio step/baseline"],
            [
                [
                    "psql \\copy of the run's published rows into an empty LIKE fact_releve",
                    n(copy_figures["copied"]),
                    s(copy_figures["seconds"]),
                    n(copy_figures["copied"] / copy_figures["seconds"]),
                    "-",
                    "fact_releve (publish)",
                    s(publish_s),
                    f"{publish_s / copy_figures['seconds']:.2f}×",
                ],
                [
                    "bare DuckDB GROUP BY over the FOCUS files (both months)",
                    n(bare["line_items"]),
                    s(bare["wall_s"]),
                    n(bare["line_items"] / bare["wall_s"]),
                    mib(bare["peak_mib"]),
                    "public_cloud_releves",
                    s(public_s),
                    f"{public_s / bare['wall_s']:.2f}×",
                ],
            ],
        )
    )
    print(
        f"  \\copy includes psql start-up ({s(copy_figures['psql_start_s'])} s); the bare GROUP BY found "
        f"{n(bare['groups'])} groups."
    )
    print()
    print(
        f"read loop (views every {READ_INTERVAL_S * 1000:.0f} ms during the measured run): "
        f"{n(reads['reads'])} reads, p50 {reads['p50_s'] * 1000:.1f} ms, p99 {reads['p99_s'] * 1000:.1f} ms, "
        f"max {reads['max_s'] * 1000:.1f} ms, "
        f"{reads['over_1s']} over 1 s, {reads['errors']} errors"
    )
    for begin, latency in sorted(reads["slow"], key=lambda item: -item[1])[:5]:
        print(f"  slow read {latency * 1000:.0f} ms during {step_at(measured, begin)}")
    if fold is not None:
        print()
        fold_s = fold["mapping_s"] + fold["pricing_s"]
        print(
            "open_legacy at scale, apart (one summary per CI, as MongoDB's aggregation yields them; "
            f"no MongoDB): {n(fold['cis'])} CIs × "
            f"{CMDB_DUMPS} dumps ({n(fold['documents'])} documents) → {n(fold['releves'])} relevés, "
            f"{n(fold['rejects'])} rejects;\n"
            f"  mapping {s(fold['mapping_s'])} s + pricing {s(fold['pricing_s'])} s = {s(fold_s)} s "
            f"({n(fold['cis'] / fold_s)} CIs/s; the generator's own {s(fold['generator_s'])} s subtracted), "
            f"process peak {mib(fold['peak_mib'])} MiB"
        )
        estimate = measured["wall_s"] - steps.get("open_legacy_releves", 0.0) + fold_s
        print(
            f"  whole run with the CMDB fold at scale instead of the stand-in's step: {s(estimate)} s "
            "(plus MongoDB's aggregation, not measurable here)"
        )
    else:
        estimate = measured["wall_s"]
    print()
    met_run = measured["wall_s"] <= TARGET_RUN_S and estimate <= TARGET_RUN_WITH_CMDB_S
    met_peak = peak < TARGET_PEAK_MIB
    met_reads = reads["over_1s"] == 0 and reads["errors"] == 0
    two = (setup.aggregates_2_months or {}).get("total", 0.0)
    full = (setup.aggregates_with_history or {}).get("total", 0.0)
    growth = full / two if two else float("inf")
    met_aggregates = full <= TARGET_AGGREGATES_S and growth <= TARGET_HISTORY_GROWTH
    met_read_max = reads["max_s"] <= TARGET_READ_MAX_S
    save("aggregates_growth", {"two_months_s": two, "with_history_s": full, "ratio": growth})
    print("targets:")
    print(
        f"  whole run ≤ {TARGET_RUN_S:.0f} s with the stand-in CMDB: {s(measured['wall_s'])} s; "
        f"≤ {TARGET_RUN_WITH_CMDB_S:.0f} s with the CMDB mapping at scale instead of its step: "
        f"{s(estimate)} s "
        f"— {'met' if met_run else 'NOT met'}"
    )
    print(
        f"  peak memory < {TARGET_PEAK_MIB:.0f} MiB: {mib(peak)} MiB — {'met' if met_peak else 'NOT met'} "
        "(compare --scale 0.1 and 1 for growth with the line items)"
    )
    print(
        f"  aggregates step (the run's 2 months, {len(AGGREGATES)} aggregates) ≤ {TARGET_AGGREGATES_S:.0f} s "
        f"and history growth ≤ {TARGET_HISTORY_GROWTH}: {s(two)} s with 2 months in the mart, {s(full)} s "
        f"with {scale.history_months} more, ratio {growth:.2f} — {'met' if met_aggregates else 'NOT met'}"
    )
    for name in AGGREGATES:
        print(
            f"    {name}: {s((setup.aggregates_2_months or {}).get(name, 0.0))} s → "
            f"{s((setup.aggregates_with_history or {}).get(name, 0.0))} s"
        )
    print(
        f"  reads during the run max ≤ {TARGET_READ_MAX_S * 1000:.0f} ms: {reads['max_s'] * 1000:.1f} ms — "
        f"{'met' if met_read_max else 'NOT met'}"
    )
    print(
        f"  no read blocked over {TARGET_READ_S:.0f} s: max {reads['max_s'] * 1000:.0f} ms, "
        f"{reads['over_1s']} over — {'met' if met_reads else 'NOT met'}"
    )
    print_pricing_targets(steps, peak, fold)
    print(f"load average now: {load_average()}")
    save(
        "summary",
        {
            "scale": scale.name,
            "steps_s": steps,
            "run_wall_s": measured["wall_s"],
            "run_with_cmdb_mapping_at_scale_s": estimate,
            "native_releves_s": steps.get("native_releves", 0.0),
            "open_legacy_releves_s": steps.get("open_legacy_releves", 0.0),
            "cmdb_mapping_s": None if fold is None else fold["mapping_s"] + fold["pricing_s"],
            "cmdb_mapping_cis": None if fold is None else fold["cis"],
            "aggregates_2_months_s": two,
            "aggregates_with_history_s": full,
            "aggregates_growth": growth,
            "peak_mib": peak,
            "reads_max_s": reads["max_s"],
            "reads_p99_s": reads["p99_s"],
            "reads_over_1s": reads["over_1s"],
            "load_average_end": load_average(),
        },
    )


def print_pricing_targets(steps: dict[str, float], peak: float, fold: dict[str, Any] | None) -> None:
    """The metered domains' pricing: native_releves at the reference scale (scaled down with
    --scale), the CMDB mapping of the scale's CIs, and the run's peak memory."""
    native = steps.get("native_releves", 0.0)
    print(
        f"  native_releves <= {TARGET_NATIVE_S:.0f} s: {s(native)} s — "
        f"{'met' if native <= TARGET_NATIVE_S else 'NOT met'}"
    )
    if fold is not None:
        mapping = fold["mapping_s"] + fold["pricing_s"]
        print(
            f"  CMDB mapping of {n(fold['cis'])} CIs <= {TARGET_CMDB_MAPPING_S:.0f} s: {s(mapping)} s — "
            f"{'met' if mapping <= TARGET_CMDB_MAPPING_S else 'NOT met'}"
        )
    print(
        f"  peak memory <= {TARGET_PRICING_PEAK_MIB:.0f} MiB: {mib(peak)} MiB — "
        f"{'met' if peak <= TARGET_PRICING_PEAK_MIB else 'NOT met'}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
