"""The read API under load: main endpoints over views of 24 months × 5,000 applications.

    python -m benchmarks.api [--months 24] [--applications 5000] [--products-per-app 6] [--groups 100]
        [--connections 16] [--duration 10] [--workers 1] [--only TEXT] [--postgres-url URL] [--keep-db]

What is measured, and how:

- A fresh database `finops_bench_api_<pid>` is migrated, the catalog loaded, and filled with SQL
  `generate_series`: applications in groups, `products-per-app` relevés per application and month
  over `months` months (costs vary by month, some months are missing, so rankings and anomalies have
  content), one successful run in `etl_runs` with its published `domain_load` rows, then the views are
  refreshed and analysed. Dropped at the end unless `--keep-db`.
- The API runs in a separate process (`finops-dagster api`, access log off), with OIDC on: the
  benchmark serves the JWKS on a local socket and every request carries a signed token, which the API
  verifies. Its pool has as many connections as there are clients.
- Load: `wrk` (Debian package `wrk`) with `--connections` clients, 2 threads, for `--duration`
  seconds per endpoint after a 2-second warm-up, each request picking the next of 20 variants (other
  applications, groups, months) so no single row is hot. wrk's Lua `done` hook reports requests,
  p50, p99 and non-2xx answers.
- Baseline: the same SQL sent directly to PostgreSQL by `pgbench -M prepared` (the version probe and
  the data query, parameters inlined, as `finops_reader`: what the API runs for a request when its
  version cache is cold; a listing's total is counted once per publish, during the warm-up) with the
  same number of clients and duration; its per-transaction log gives p50 and p99. The ratio
  API/direct says what HTTP, authentication, Python and JSON add on top of the database's own work.
- The API runs twice: without the response cache (FINOPS_API_RESPONSE_CACHE_MB=0: every request reads
  the views), then with it (the default: after the warm-up, every variant is answered from memory).
  The lines print both beside pgbench, and the summary checks the targets: a cached p99 under 10 ms
  and a cached rate of at least half pgbench's, on every endpoint.
- Client, API and PostgreSQL share this machine's cores: the load average is printed on every line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.server
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import jwt
import psycopg
from cryptography.hazmat.primitives.asymmetric import rsa
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from finops_dagster.api import backstage
from finops_dagster.api import listings as L
from finops_dagster.api.db import VERSION_QUERY
from finops_dagster.api.periods import PeriodRange, add_months, month_label, parse_intervals
from finops_dagster.mart.aggregates import rebuild_aggregates
from finops_dagster.mart.migrations import apply_migrations
from finops_dagster.mart.month_partitions import ensure_month_partitions
from finops_dagster.reference.catalog import load_catalog
from finops_dagster.reference.loader import load_catalog_into_mart

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
ISSUER = "https://issuer.bench/"
AUDIENCE = "finops-api"
VARIANTS = 20
RUN_ID = "benchmark-run"

FILL_GROUPS = """
INSERT INTO finops.dim_application_group (group_id, label)
SELECT format('G%%s', lpad(g::text, 3, '0')), format('Group %%s', g)
FROM generate_series(0, %(groups)s - 1) AS g
ON CONFLICT DO NOTHING
"""
FILL_APPLICATIONS = """
INSERT INTO finops.dim_application (application_id, label, group_id, source)
SELECT format('APP%%s', lpad(a::text, 5, '0')), format('Application %%s', a),
       format('G%%s', lpad((a %% %(groups)s)::text, 3, '0')), 'benchmark'
FROM generate_series(0, %(applications)s - 1) AS a
ON CONFLICT DO NOTHING
"""
# Each application has `products` products (distinct: the step 5 is prime with the catalog size in
# practice; duplicates are dropped by the key anyway), a quantity that drifts by month, and no relevé
# in about one month out of 37 (a gap: NEW and DROP anomalies).
FILL_FACTS = """
WITH products AS (
    SELECT row_number() OVER (ORDER BY p.product_id) - 1 AS n,
           p.product_id, p.family_id, f.domain_id, p.usage_unit
    FROM finops.dim_product AS p
    JOIN finops.dim_family AS f USING (family_id)
), catalog AS (SELECT count(*) AS size FROM products)
INSERT INTO finops.fact_releve (period_month, application_id, product_id, family_id, domain_id,
                                usage_quantity, usage_unit, unit_cost, total_cost, currency, source, run_id,
                                rate_card_version, source_record_count, computed_at)
SELECT DISTINCT ON (month, a, pr.product_id)
       (%(first)s::date + make_interval(months => m))::date AS month,
       format('APP%%s', lpad(a::text, 5, '0')), pr.product_id, pr.family_id, pr.domain_id,
       q.quantity, pr.usage_unit, 1.250000, q.quantity * 1.25, 'EUR', 'benchmark', %(run)s, NULL, 1, now()
FROM generate_series(0, %(applications)s - 1) AS a
CROSS JOIN generate_series(0, %(products)s - 1) AS j
CROSS JOIN generate_series(0, %(months)s - 1) AS m
CROSS JOIN catalog
JOIN products AS pr ON pr.n = (a * 7 + j * 5) %% catalog.size
CROSS JOIN LATERAL (
    SELECT greatest(1, ((a * 7919 + j * 104729) %% 997) + 1 + m * ((a %% 13) - 4))::numeric(28, 6) AS quantity
) AS q
WHERE (a + m) %% 37 <> 0
"""
FILL_RUN = """
INSERT INTO finops.etl_runs (run_id, status, trigger_type, job_name, periods, started_at, ended_at,
                             records_inserted, version)
VALUES (%(run)s, 'SUCCESS', 'MANUAL', 'finops_nightly', %(periods)s, now() - interval '5 minutes', now(),
        (SELECT count(*) FROM finops.fact_releve), 'benchmark')
"""
FILL_LOADS = """
INSERT INTO finops.domain_load (domain_id, period_month, run_id, releve_count, reject_count, total_cost,
                                source_record_count, source_totals, published_at)
SELECT domain_id, period_month, %(run)s, count(*), 0, sum(total_cost), count(*), '{}'::jsonb, now()
FROM finops.fact_releve GROUP BY domain_id, period_month
"""


Statement = tuple[sql.Composed | str, Any]


@dataclass(frozen=True)
class Variant:
    """One URL of an endpoint, and the data query the API runs for it."""

    path: str
    data: Statement


@dataclass(frozen=True)
class Endpoint:
    name: str
    variants: list[Variant]

    @property
    def paths(self) -> list[str]:
        return [variant.path for variant in self.variants]


def endpoints(months: list[dt.date], applications: int, groups: int) -> list[Endpoint]:
    last = months[-1]
    year = [m for m in months if m > add_months(last, -12)]

    def app(i: int) -> str:
        return f"APP{(i * 241) % applications:05d}"

    def group(i: int) -> str:
        return f"G{(i * 7) % groups:03d}"

    def listing(name: str, target: L.Listing, variant: Any) -> Endpoint:
        variants = []
        for i in range(VARIANTS):
            path, periods, filters, sort, size = variant(i)
            query = L.build_query(target, L.Request(periods, filters, sort, 1, size))
            variants.append(Variant(path, (query.page, query.page_params)))
        return Endpoint(name, variants)

    def month(i: int) -> dt.date:
        return months[-1 - (i % min(12, len(months)))]

    result = [
        listing(
            "costs/domains 12 months",
            L.DOMAIN_MONTH,
            lambda i: (
                f"/api/v1/costs/domains?from={month_label(year[0])}&to={month_label(last)}&page_size=100",
                PeriodRange(year[0], last),
                {},
                None,
                100,
            ),
        ),
        listing(
            "costs/applications one app, all months",
            L.APPLICATION_MONTH,
            lambda i: (
                f"/api/v1/costs/applications?application={app(i)}",
                PeriodRange(None, None),
                {"application": app(i)},
                None,
                100,
            ),
        ),
        listing(
            "costs/applications group × month",
            L.APPLICATION_MONTH,
            lambda i: (
                f"/api/v1/costs/applications?group={group(i)}&from={month_label(month(i))}&to={month_label(month(i))}",
                PeriodRange(month(i), month(i)),
                {"group": group(i)},
                None,
                100,
            ),
        ),
        listing(
            "rankings top 10 of a month",
            L.RANKING,
            lambda i: (
                f"/api/v1/rankings/applications?from={month_label(month(i))}&to={month_label(month(i))}&page_size=10",
                PeriodRange(month(i), month(i)),
                {},
                None,
                10,
            ),
        ),
        listing(
            "rankings biggest increases",
            L.RANKING,
            lambda i: (
                f"/api/v1/rankings/applications?from={month_label(month(i))}&to={month_label(month(i))}"
                "&sort=-month_over_month_change&page_size=10",
                PeriodRange(month(i), month(i)),
                {},
                L.Sort("month_over_month_change", True),
                10,
            ),
        ),
        listing(
            "application breakdown by product, 3 months",
            L.APP_BY_PRODUCT,
            lambda i: (
                f"/api/v1/applications/{app(i)}/breakdown?by=product&from={month_label(add_months(last, -2))}"
                f"&to={month_label(last)}",
                PeriodRange(add_months(last, -2), last),
                {"application": app(i)},
                None,
                100,
            ),
        ),
        listing(
            "anomalies of a month, 50",
            L.ANOMALIES,
            lambda i: (
                f"/api/v1/anomalies?from={month_label(month(i))}&to={month_label(month(i))}&page_size=50",
                PeriodRange(month(i), month(i)),
                {},
                None,
                50,
            ),
        ),
        listing(
            "costs/groups quarters",
            L.GROUP_QUARTER,
            lambda i: (
                f"/api/v1/costs/groups?grain=quarter&group={group(i)}",
                PeriodRange(None, None),
                {"group": group(i)},
                None,
                100,
            ),
        ),
    ]
    intervals = f"R2/P3M/{add_months(last, 1).isoformat()}"
    parsed = parse_intervals(intervals)
    result.append(
        Endpoint(
            "backstage group cost R2/P3M",
            [
                Variant(
                    f"/api/v1/backstage/groups/{group(i)}/cost?intervals={intervals}",
                    (backstage.GROUP_SERIES, (group(i), "EUR", parsed.months[0], parsed.months[-1])),
                )
                for i in range(VARIANTS)
            ],
        )
    )
    return result


# --------------------------------------------------------------------------------------------
# The database
# --------------------------------------------------------------------------------------------


def with_database(url: str, name: str) -> str:
    params = conninfo_to_dict(url)
    params["dbname"] = name
    return make_conninfo(**params)  # type: ignore[arg-type]


@contextmanager
def bench_database(server: str, keep: bool) -> Iterator[str]:
    name = f"finops_bench_api_{os.getpid()}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(server, name)
    finally:
        if keep:
            print(f"kept database {name}")
        else:
            with psycopg.connect(server, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def fill(url: str, months: list[dt.date], applications: int, products: int, groups: int) -> dict[str, Any]:
    started = time.perf_counter()
    params = {
        "groups": groups,
        "applications": applications,
        "products": products,
        "months": len(months),
        "first": months[0],
        "run": RUN_ID,
        "periods": json.dumps([m.isoformat() for m in months]),
    }
    with psycopg.connect(url, autocommit=True) as conn:
        apply_migrations(conn)
        load_catalog_into_mart(conn, load_catalog())
        ensure_month_partitions(conn, months)
        with conn.transaction():
            conn.execute(FILL_GROUPS, params)
            conn.execute(FILL_APPLICATIONS, params)
            conn.execute(FILL_FACTS, params)
            conn.execute(FILL_RUN, params)
            conn.execute(FILL_LOADS, params)
        filled = time.perf_counter()
        rebuild_aggregates(conn, today=dt.date.today(), min_cost=Decimal(0))
        conn.execute("ANALYZE")
        sizes: dict[str, int] = dict(
            conn.execute(
                "SELECT 'fact_releve', count(*) FROM finops.fact_releve UNION ALL "
                "SELECT 'mv_cost_app_product_month', count(*) FROM finops.mv_cost_app_product_month "
                "UNION ALL SELECT 'mv_cost_application_month', count(*) "
                "FROM finops.mv_cost_application_month "
                "UNION ALL SELECT 'mv_anomalies_month', count(*) FROM finops.mv_anomalies_month"
            ).fetchall()
        )
    return {
        "rows": sizes,
        "fill_s": round(filled - started, 1),
        "refresh_s": round(time.perf_counter() - filled, 1),
    }


# --------------------------------------------------------------------------------------------
# The API process and its issuer
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def jwks_server(key: rsa.RSAPrivateKey) -> Iterator[str]:
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update({"kid": "bench", "use": "sig", "alg": "RS256"})
    body = json.dumps({"keys": [jwk]}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks"
    finally:
        server.shutdown()


@contextmanager
def api_process(url: str, jwks_url: str, connections: int, workers: int, cache: bool) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "FINOPS_API_POSTGRES_URL": url,
        "FINOPS_API_AUTH": "oidc",
        "FINOPS_API_OIDC_ISSUER": ISSUER,
        "FINOPS_API_OIDC_AUDIENCE": AUDIENCE,
        "FINOPS_API_OIDC_JWKS_URL": jwks_url,
        "FINOPS_API_POOL_MIN": str(max(1, connections // workers)),
        "FINOPS_API_POOL_MAX": str(max(1, connections // workers)),
        "FINOPS_API_RESPONSE_CACHE_MB": "64" if cache else "0",
        # the benchmark's server URL is its superuser; sessions still run as finops_reader
        "FINOPS_API_ALLOW_PRIVILEGED_LOGIN": "true",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "finops_dagster.cli",
            "api",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--workers",
            str(workers),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise SystemExit(f"the API did not start:\n{process.stderr.read() if process.stderr else ''}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the API did not start within 60 s")
            time.sleep(0.2)
        yield base
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


# --------------------------------------------------------------------------------------------
# Load
# --------------------------------------------------------------------------------------------

LUA = """
local paths = {%(paths)s}
local i = math.random(#paths)
request = function()
  i = (i %% #paths) + 1
  return wrk.format("GET", paths[i], {["Authorization"] = "Bearer %(token)s"})
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%.1f %%.1f %%d %%d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


@dataclass
class Figures:
    rps: float
    p50_ms: float
    p99_ms: float
    failures: int


def run_wrk(
    base: str, endpoint: Endpoint, token: str, connections: int, duration: int, workdir: Path
) -> Figures:
    script = workdir / "load.lua"
    script.write_text(LUA % {"paths": ", ".join(json.dumps(p) for p in endpoint.paths), "token": token})
    for seconds, keep in ((2, False), (duration, True)):
        output = subprocess.run(
            ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script), base],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        if keep:
            line = next(line for line in output.splitlines() if line.startswith("RESULT "))
            requests, micros, p50, p99, status, errors = line.split()[1:]
            return Figures(
                int(requests) / (int(micros) / 1e6),
                float(p50) / 1000,
                float(p99) / 1000,
                int(status) + int(errors),
            )
    raise AssertionError("unreachable")


def run_pgbench(url: str, endpoint: Endpoint, connections: int, duration: int, workdir: Path) -> Figures:
    """The endpoint's SQL straight to PostgreSQL, as the reader, one script per URL variant."""
    scripts = []
    with psycopg.connect(url) as conn:
        cursor = psycopg.ClientCursor(conn)
        for index, variant in enumerate(endpoint.variants):
            statements: list[Statement] = [(VERSION_QUERY, None), variant.data]
            text = "\n".join(
                " ".join(cursor.mogrify(query, params).split()) + ";" for query, params in statements
            )
            path = workdir / f"variant_{index}.sql"
            path.write_text(text + "\n")
            scripts.append(path)
    logs = workdir / "pgbench_logs"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir()
    params = conninfo_to_dict(url)
    env = {
        **os.environ,
        "PGOPTIONS": "-c role=finops_reader -c default_transaction_read_only=on",
        "PGHOST": str(params.get("host", "127.0.0.1")),
        "PGPORT": str(params.get("port", "5432")),
        "PGUSER": str(params.get("user", "postgres")),
    }
    if params.get("password"):
        env["PGPASSWORD"] = str(params["password"])
    command = [
        pgbench_binary(),
        "-n",
        "-M",
        "prepared",  # the API's statements are prepared too (planned once per connection)
        "-c",
        str(connections),
        "-j",
        "2",
        "-T",
        str(duration),
        "-l",
        f"--log-prefix={logs / 'tx'}",
        *(arg for s in scripts for arg in ("-f", str(s))),
        str(params.get("dbname")),
    ]
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True, cwd=workdir).stdout
    latencies = sorted(
        int(line.split()[2]) for log in logs.iterdir() for line in log.read_text().splitlines()
    )
    tps = next(float(line.split("=")[1].split()[0]) for line in output.splitlines() if line.startswith("tps"))
    return Figures(tps, percentile(latencies, 50) / 1000, percentile(latencies, 99) / 1000, 0)


def percentile(values: list[int], p: float) -> float:
    if not values:
        return float("nan")
    return (
        float(statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]) if p < 100 else values[-1]
    )


def pgbench_binary() -> str:
    found = shutil.which("pgbench")
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"), reverse=True):
        return str(candidate)
    raise SystemExit("pgbench not found (Debian: apt-get install postgresql-client)")


# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.api",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--applications", type=int, default=5000)
    parser.add_argument("--products-per-app", type=int, default=6)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--connections", type=int, default=16, help="concurrent clients (wrk and pgbench)")
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per endpoint")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("FINOPS_BENCH_POSTGRES_URL", DEFAULT_SERVER),
        help="a server where the benchmark may create and drop its database",
    )
    parser.add_argument("--workers", type=int, default=1, help="API worker processes (default 1)")
    parser.add_argument("--only", default="", help="run the endpoints whose name contains this text")
    parser.add_argument("--keep-db", action="store_true", help="keep the filled database")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get update && apt-get install -y wrk", file=sys.stderr)
        return 2

    today = dt.date.today()
    last = add_months(dt.date(today.year, today.month, 1), -1)
    months = [add_months(last, -offset) for offset in reversed(range(args.months))]
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(
        {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "benchmark",
            "exp": int(time.time()) + 86400,
            "roles": ["finops-reader"],
        },
        key,
        algorithm="RS256",
        headers={"kid": "bench"},
    )

    print(
        f"machine: {os.cpu_count()} CPUs, {sys.platform}; load average before: "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    with bench_database(args.postgres_url, args.keep_db) as url, tempfile.TemporaryDirectory() as tmp:
        setup = fill(url, months, args.applications, args.products_per_app, args.groups)
        print(
            f"views filled: {args.months} months × {args.applications} applications × "
            f"{args.products_per_app} products — {setup['rows']} "
            f"(fill {setup['fill_s']} s, refresh {setup['refresh_s']} s)"
        )
        work = Path(tmp)
        selected = [e for e in endpoints(months, args.applications, args.groups) if args.only in e.name]
        uncached: dict[str, Figures] = {}
        results: list[Result] = []
        with jwks_server(key) as jwks_url:
            with api_process(url, jwks_url, args.connections, args.workers, cache=False) as base:
                print("without the response cache (FINOPS_API_RESPONSE_CACHE_MB=0):", flush=True)
                for endpoint in selected:
                    check_endpoint(base, endpoint, token)
                    measured = run_wrk(base, endpoint, token, args.connections, args.duration, work)
                    uncached[endpoint.name] = measured
                    print(f"  {endpoint.name:<44} {figures(measured)} | {load()}", flush=True)
            with api_process(url, jwks_url, args.connections, args.workers, cache=True) as base:
                print("with it (the default), beside pgbench on the same SQL:", flush=True)
                for endpoint in selected:
                    check_endpoint(base, endpoint, token)
                    cached = run_wrk(base, endpoint, token, args.connections, args.duration, work)
                    direct = run_pgbench(url, endpoint, args.connections, args.duration, work)
                    result = Result(endpoint.name, uncached[endpoint.name], cached, direct)
                    results.append(result)
                    print(f"  {result.line()} | {load()}", flush=True)
        print_summary(results, args.connections)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


P99_TARGET_MS = 10.0
RATE_TARGET = 0.5
"""Targets with the response cache: p99 under 10 ms at 16 clients, at least half pgbench's rate."""


@dataclass
class Result:
    name: str
    uncached: Figures
    cached: Figures
    direct: Figures

    def line(self) -> str:
        failures = self.uncached.failures + self.cached.failures
        return (
            f"{self.name:<44} uncached {figures(self.uncached)} | cached {figures(self.cached)} | "
            f"SQL {self.direct.rps:7.0f} tx/s p99 {self.direct.p99_ms:6.2f} ms | "
            f"cached/SQL {self.cached.rps / self.direct.rps:5.2f} uncached/SQL "
            f"{self.uncached.rps / self.direct.rps:5.2f}" + (f" | {failures} FAILED" if failures else "")
        )


def figures(measured: Figures) -> str:
    return f"{measured.rps:7.0f} req/s p50 {measured.p50_ms:6.2f} ms p99 {measured.p99_ms:6.2f} ms"


def load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def check_endpoint(base: str, endpoint: Endpoint, token: str) -> None:
    check = httpx.get(base + endpoint.paths[0], headers={"Authorization": f"Bearer {token}"}, timeout=30)
    if check.status_code != 200:
        raise SystemExit(f"{endpoint.name}: {check.status_code} {check.text[:200]}")


def print_summary(results: list[Result], connections: int) -> None:
    worst = max(results, key=lambda r: r.cached.p99_ms)
    slowest = min(results, key=lambda r: r.cached.rps / r.direct.rps)
    print(
        f"\n{connections} concurrent clients; cached p99 worst {worst.cached.p99_ms:.2f} ms ({worst.name}; "
        f"target < {P99_TARGET_MS:.0f} ms: {'met' if worst.cached.p99_ms < P99_TARGET_MS else 'NOT met'}); "
        f"uncached p99 worst {max(r.uncached.p99_ms for r in results):.2f} ms"
    )
    lowest = slowest.cached.rps / slowest.direct.rps
    print(
        f"cached/SQL rate lowest {lowest:.2f} ({slowest.name}; target >= {RATE_TARGET}: "
        f"{'met' if lowest >= RATE_TARGET else 'NOT met'}); means over endpoints: cached "
        f"{statistics.mean(r.cached.rps for r in results):.0f} req/s, uncached "
        f"{statistics.mean(r.uncached.rps for r in results):.0f} req/s, SQL "
        f"{statistics.mean(r.direct.rps for r in results):.0f} tx/s"
    )
    failures = sum(r.cached.failures + r.uncached.failures for r in results)
    if failures:
        print(f"{failures} requests failed (non-2xx or socket errors)")


if __name__ == "__main__":
    sys.exit(main())
