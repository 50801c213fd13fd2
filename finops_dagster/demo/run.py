"""`finops-dagster demo`: the whole pipeline on generated data, with no configuration at all.

PostgreSQL: POSTGRES_URL when set, else an embedded server (database `finops`).
MongoDB: MONGO_URL when set, else the generated stand-in (`demo://`, clearly not a real MongoDB).
Dagster: runs are recorded in a Dagster instance stored in the same server (database `dagster`),
so `finops-dagster dev` shows the demo's runs, checks and metadata.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg

from finops_dagster.demo.embedded_postgres import ensure_database, start_embedded
from finops_dagster.demo.ledger_summary import close_first_month, print_allocation
from finops_dagster.demo.months import demo_months
from finops_dagster.demo.native_services import NativeServicesSimulator
from finops_dagster.demo.native_services import RunningServer as NativeServer
from finops_dagster.demo.native_services import serve as serve_native
from finops_dagster.demo.private_cloud import (
    PrivateCloudSimulator,
    RunningServer,
    private_cloud_tenants,
    serve,
)
from finops_dagster.demo.public_cloud import DEMO_PROVIDERS, write_focus_exports
from finops_dagster.demo.scale import Scale
from finops_dagster.domains.native import DOMAIN_ID as NATIVE
from finops_dagster.domains.private_cloud import DOMAIN_ID as PRIVATE_CLOUD
from finops_dagster.domains.public_cloud import DOMAIN_ID as PUBLIC_CLOUD
from finops_dagster.mart.etl_runs import RANGE_END_TAG, RANGE_START_TAG
from finops_dagster.nightly import print_run_summary
from finops_dagster.releve import month_start
from finops_dagster.settings import enabled_domains

REPO_INSTANCE_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "dagster.yaml"


PRIVATE_CLOUD_URLS = ("FINOPS_OPENSTACK_URL", "FINOPS_OPENCOST_URL", "FINOPS_USAGE_API_URL")
NATIVE_URLS = ("FINOPS_GITLAB_URL", "FINOPS_ARTIFACTORY_URL", "FINOPS_NATIVE_SERVICES")
PUBLIC_CLOUD_SETTINGS = ("FINOPS_PUBLIC_CLOUD_SOURCES", "FINOPS_FOCUS_PATHS")
FOCUS_LINE_ITEMS_PER_MONTH = Scale.demo().focus_line_items
"""Per provider and month: enough for every service, tag spelling and charge category to show."""


@dataclass(frozen=True)
class DemoEnvironment:
    postgres_url: str
    mongo_url: str
    dagster_home: Path
    embedded: bool
    private_cloud: RunningServer | None
    native: SimulatedNative | None
    focus_exports: Path | None


@dataclass(frozen=True)
class SimulatedNative:
    simulator: NativeServicesSimulator
    server: NativeServer


def demo_dir() -> Path:
    return Path(os.environ.get("FINOPS_DEMO_DIR", ".finops-demo")).resolve()


def demo_scale(cis: int) -> Scale:
    """The demo's estate with the CMDB size asked for on the command line."""
    return replace(Scale.demo(), cis=cis)


def cmdb_standin_url(scale: Scale, months: int, today: dt.date) -> str:
    """MONGO_URL of the generated CMDB stand-in of this scale (its CIs: ``scale.cis``)."""
    return (
        f"demo://?cis={scale.cis}&months={months}&today={today.isoformat()}&applications={scale.applications}"
    )


DEMO_ALLOCATION_RULES = Path(__file__).resolve().parent / "allocation_rules.csv"
"""The demo's allocation rules: each domain's unallocated cost spread in proportion to each
application's own cost in the domain, the monitoring platform split evenly over the IT operations
group, the backup service by fixed shares (FINOPS_ALLOCATION_RULES, unless set)."""


def prepare_environment(
    *, cis: int, months: int, today: dt.date, scale: Scale | None = None, keep_postgres: bool = False
) -> DemoEnvironment:
    """Resolve (and export) POSTGRES_URL, MONGO_URL, DAGSTER_HOME and DAGSTER_POSTGRES_URL.

    Every generated source has the sizes of ``scale`` (default: the demo's, with ``cis`` CIs). An
    embedded server started here stops when this process exits, unless ``keep_postgres``.
    """
    scale = scale or demo_scale(cis)
    base = demo_dir()
    embedded = not os.environ.get("POSTGRES_URL")
    if embedded:
        server = start_embedded(base / "pgdata", keep=keep_postgres)
        os.environ["POSTGRES_URL"] = ensure_database(server, "finops")
    postgres_url = os.environ["POSTGRES_URL"]
    os.environ.setdefault("MONGO_URL", cmdb_standin_url(scale, months, today))
    os.environ.setdefault("FINOPS_ALLOCATION_RULES", str(DEMO_ALLOCATION_RULES))
    if not os.environ.get("DAGSTER_HOME"):
        home = base / "dagster_home"
        home.mkdir(parents=True, exist_ok=True)
        (home / "dagster.yaml").write_text(REPO_INSTANCE_CONFIG.read_text(encoding="utf-8"), encoding="utf-8")
        os.environ["DAGSTER_HOME"] = str(home)
    if not os.environ.get("DAGSTER_POSTGRES_URL"):
        os.environ["DAGSTER_POSTGRES_URL"] = ensure_database(postgres_url, "dagster")
    simulated = start_simulated_private_cloud(today, scale)
    native = start_simulated_native(today, scale)
    focus = write_demo_focus_exports(base, months, today, scale)
    return DemoEnvironment(
        postgres_url,
        os.environ["MONGO_URL"],
        Path(os.environ["DAGSTER_HOME"]),
        embedded,
        simulated,
        native,
        focus,
    )


def write_demo_focus_exports(
    base: Path, months: int, today: dt.date, scale: Scale | None = None, *, fmt: str = "csv"
) -> Path | None:
    """Generated FOCUS exports of two providers (one billing in USD) for the demo's months, unless the
    domain is disabled or real public-cloud sources are configured. ``scale.focus_line_items`` per
    provider and complete month; the current month has its elapsed share of them."""
    if PUBLIC_CLOUD not in enabled_domains() or any(os.environ.get(name) for name in PUBLIC_CLOUD_SETTINGS):
        return None
    scale = scale or Scale.demo()
    directory = base / "focus"
    shutil.rmtree(directory, ignore_errors=True)
    estate = scale.estate()
    per_month = scale.focus_line_items
    first, current = (dt.date.fromisoformat(key) for key in demo_months(today, months))
    past = [first]
    while past[-1] < current:
        past.append(month_start(past[-1] + dt.timedelta(days=32)))
    past.pop()
    write_focus_exports(estate, directory, past, line_items_per_month=per_month, fmt=fmt)
    elapsed = (today - current).days / (month_start(current + dt.timedelta(days=32)) - current).days
    write_focus_exports(
        estate,
        directory,
        [current],
        line_items_per_month=max(1, round(per_month * elapsed)),
        fmt=fmt,
        today=today,
    )
    os.environ["FINOPS_FOCUS_PATHS"] = focus_location(directory)
    return directory


def focus_location(directory: Path) -> str:
    """The demo's exports as FINOPS_FOCUS_PATHS: `<provider>/<month>/part-N` files, so a month reads
    its own folder only."""
    return str(directory / "*" / "{month}" / "*")


def start_simulated_native(today: dt.date, scale: Scale | None = None) -> SimulatedNative | None:
    """Serve simulated GitLab, Artifactory and Cube on localhost, unless the domain is disabled or real
    services are configured."""
    if NATIVE not in enabled_domains() or any(os.environ.get(name) for name in NATIVE_URLS):
        return None
    scale = scale or Scale.demo()
    simulator = NativeServicesSimulator(
        scale.estate(),
        today=today,
        seed=scale.seed,
        projects=scale.gitlab_projects,
        repos=scale.artifactory_repos,
        consumers=scale.cube_consumers,
    )
    server = serve_native(simulator)
    os.environ.update(server.environment())
    return SimulatedNative(simulator, server)


def replay_native_nights(env: DemoEnvironment, first: dt.date, today: dt.date) -> int:
    """Persist the snapshots the nightly runs would have taken since `first` (the services only know
    today, so a demo needs past nights to average): what `native_snapshots` does, night by night."""
    if env.native is None:
        return 0
    from finops_dagster.domains.native.resource import native_from_env
    from finops_dagster.domains.native.snapshots import save_snapshot
    from finops_dagster.resources.postgres import PostgresResource

    nights = [first + dt.timedelta(days=offset) for offset in range((today - first).days)]
    with PostgresResource(url=env.postgres_url).connect() as conn, native_from_env().connected() as sources:
        for night in nights:
            env.native.simulator.night = night
            for source in sources:
                for snapshot in source.snapshot(night):
                    save_snapshot(conn, snapshot, "demo-replay")
    env.native.simulator.night = today
    return len(nights)


def start_simulated_private_cloud(today: dt.date, scale: Scale | None = None) -> RunningServer | None:
    """Serve the generated private cloud on localhost and point the domain's settings at it, unless
    the domain is disabled or real private-cloud APIs are configured."""
    if PRIVATE_CLOUD not in enabled_domains() or any(os.environ.get(name) for name in PRIVATE_CLOUD_URLS):
        return None
    scale = scale or Scale.demo()
    simulator = PrivateCloudSimulator(
        private_cloud_tenants(scale.estate(), tenants=scale.tenants, seed=scale.seed), today=today
    )
    server = serve(simulator)
    os.environ.update(server.environment())
    return server


def run_demo(*, cis: int, months: int, today: dt.date, keep_postgres: bool = False) -> int:
    warnings.filterwarnings("ignore", message=".*no-op in mongomock.*")
    env = prepare_environment(cis=cis, months=months, today=today, keep_postgres=keep_postgres)
    from dagster import DagsterInstance

    from finops_dagster.pipeline import build_definitions

    first, last = demo_months(today, months)
    print("PostgreSQL: " + (f"embedded server ({demo_dir() / 'pgdata'})" if env.embedded else "POSTGRES_URL"))
    if env.private_cloud is not None:
        print(f"Private cloud: simulated OpenStack, OpenCost and usage API on {env.private_cloud.url}")
    if env.native is not None:
        print(f"Native:     simulated GitLab, Artifactory and Cube on {env.native.server.url}")
    if env.focus_exports is not None:
        providers = ", ".join(f"{p.name} ({p.currency})" for p in DEMO_PROVIDERS)
        print(f"Public cloud: generated FOCUS exports of {providers} in {env.focus_exports}")
    print(
        "MongoDB:    "
        + (
            "generated stand-in (in-memory, NOT a real MongoDB)"
            if env.mongo_url.startswith("demo://")
            else "MONGO_URL"
        )
    )
    print(f"Months:     {first[:7]} … {last[:7]} in one run\n")
    replayed = replay_native_nights(env, dt.date.fromisoformat(first), today)
    if replayed:
        print(f"Native services: replayed {replayed} past nights of snapshots from the simulated services")
    defs = build_definitions()
    job = defs.resolve_job_def("finops_nightly")
    print("Running the nightly job (generating the CMDB stand-in first; events go to the Dagster instance)…")
    started = time.perf_counter()
    with DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance,
            tags={RANGE_START_TAG: first, RANGE_END_TAG: last},
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            raise_on_error=False,
        )
    print(f"Done in {time.perf_counter() - started:.0f} s.\n")
    with psycopg.connect(env.postgres_url) as conn:
        print_run_summary(conn, result.run_id)
        if result.success:
            print_allocation(conn, dt.date.fromisoformat(first), dt.date.fromisoformat(last))
            close_first_month(conn, dt.date.fromisoformat(first), command("finops-dagster"))
    print_next_steps(env, keep_postgres=keep_postgres)
    return 0 if result.success else 1


def command(name: str) -> str:
    """How to run one of the project's commands from here: the path of this environment's script,
    relative to the current folder when it is below it (`.venv/bin/finops-dagster`)."""
    script = Path(sys.executable).parent / name
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def print_next_steps(env: DemoEnvironment, *, keep_postgres: bool) -> None:
    cli = command("finops-dagster")
    print("\nOpen the same data in the Dagster UI:")
    print(f"  {cli} dev --port 3000   # then http://127.0.0.1:3000")
    print("or by hand (the simulated services live only as long as the demo or `finops-dagster dev`,")
    print("so by hand the CMDB and the public cloud's generated exports alone are enabled):")
    print("  export FINOPS_DOMAINS_ENABLED=open_legacy" + (",public_cloud" if env.focus_exports else ""))
    if env.focus_exports is not None:
        print(f"  export FINOPS_FOCUS_PATHS='{focus_location(env.focus_exports)}'")
    print(f"  export POSTGRES_URL='{env.postgres_url}'")
    print(f"  export MONGO_URL='{env.mongo_url}'")
    print(
        f"  export DAGSTER_HOME='{env.dagster_home}'"
        f" DAGSTER_POSTGRES_URL='{os.environ['DAGSTER_POSTGRES_URL']}'"
    )
    print(f"  export FINOPS_FIRST_MONTH={os.environ.get('FINOPS_FIRST_MONTH', '2020-01')}")
    print(f"  {command('dagster')} dev -m finops_dagster.definitions")
    print("Serve the read API on the same data (authentication off, demo only):")
    print(f"  {cli} api --demo   # then http://127.0.0.1:8000/openapi.json")
    if not env.embedded:
        print("Read the mart:  psql \"$POSTGRES_URL\" -c 'SELECT * FROM finops.mv_cost_domain_month'")
    elif keep_postgres:
        print(f"Read the mart:  psql '{env.postgres_url}' -c 'SELECT * FROM finops.mv_cost_domain_month'")
        print(f"The embedded PostgreSQL keeps running; stop it with:  {cli} demo --stop")
    else:
        print("The embedded PostgreSQL stops now; the commands above start it again on the same data")
        print(f"({cli} demo --keep-postgres leaves it running, for psql).")
