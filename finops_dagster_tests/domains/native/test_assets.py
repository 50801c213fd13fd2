"""The native domain end to end: simulated GitLab, Artifactory and Cube on real sockets, a real mart,
real Dagster runs.

GitLab and Artifactory only know today's sizes and month-to-date counters, so a month is whatever
the nightly snapshots persisted for it. These tests replay the nights of a month against the
simulator (finops_dagster/demo/native_services.py) and run the `finops_nightly` job in process
against a PostgreSQL database of their own. Expected relevés are recomputed here from the
simulator's own truth (each project's statistics per night, the storage summary of each night, the
namespaces' CI minutes, Cube's quantities) and the rate card's prices, not with the pipeline's code.

The native assets' clock (`utc_now`) follows the simulator's night, so "tonight" is the same night
on both sides of the socket.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any

import httpx
import psycopg
import pytest
from dagster import ExecuteInProcessResult
from pytest_httpserver import HTTPServer

import finops_dagster.domains.native.assets as native_assets
from finops_dagster.demo.estate import Estate, build_estate
from finops_dagster.demo.native_services import (
    Credentials,
    GitlabNamespace,
    NativeServicesSimulator,
    RunningServer,
    serve,
)
from finops_dagster.domains.native.resource import native_from_env
from finops_dagster.domains.native.snapshots import save_snapshot
from finops_dagster.http.auth import OidcClientCredentials
from finops_dagster.http.client import HttpSource
from finops_dagster.pipeline import build_definitions
from finops_dagster.settings import SettingError
from finops_dagster_tests.support.domain_runs import (
    SHARED_SOURCE_SETTINGS,
    SIX_DECIMALS,
    UNALLOCATED,
    DomainRun,
    Key,
    assert_no_secret,
    check_evaluations,
    domain_loads,
    etl_run,
    fact_rows,
    fact_run_ids,
    failures,
    open_domain_run,
    priced,
    record_issued_tokens,
    releves,
)

TODAY = dt.date(2025, 10, 10)
"""The simulator's day (past, so its months are partitions whatever the real date)."""
AUGUST = dt.date(2025, 8, 1)
SEPTEMBER = dt.date(2025, 9, 1)
OCTOBER = dt.date(2025, 10, 1)
SEPTEMBER_NIGHTS = [SEPTEMBER + dt.timedelta(days=offset) for offset in range(30)]
DOMAIN = "native"
GB = Decimal(10**9)
RELEVES_AND_PUBLISH = ("native_releves", "fact_releve")

# GitLab's statistics fields and what they are billed as (domains/native/gitlab.py's contract)
GITLAB_SIZE_PRODUCTS = {
    "repository_size": "NT_GITLAB_REPOSITORY_GB",
    "lfs_objects_size": "NT_GITLAB_LFS_GB",
    "job_artifacts_size": "NT_GITLAB_JOB_ARTIFACTS_GB",
    "pipeline_artifacts_size": "NT_GITLAB_PIPELINE_ARTIFACTS_GB",
    "packages_size": "NT_GITLAB_PACKAGES_GB",
    "container_registry_size": "NT_GITLAB_REGISTRY_GB",
    "wiki_size": "NT_GITLAB_WIKI_GB",
    "snippets_size": "NT_GITLAB_SNIPPETS_GB",
    "uploads_size": "NT_GITLAB_UPLOADS_GB",
}
CUBE_PRODUCTS = {"cube_query_hours": "NT_CUBE_QUERY_HOURS", "cube_storage_gb_month": "NT_CUBE_STORAGE_GB"}
# reference/data/rate_cards.csv (RC-2024.1, EUR), written out independently
RATES: dict[str, Decimal] = {
    "NT_GITLAB_REPOSITORY_GB": Decimal("0.25"),
    "NT_GITLAB_LFS_GB": Decimal("0.12"),
    "NT_GITLAB_JOB_ARTIFACTS_GB": Decimal("0.10"),
    "NT_GITLAB_PIPELINE_ARTIFACTS_GB": Decimal("0.10"),
    "NT_GITLAB_PACKAGES_GB": Decimal("0.12"),
    "NT_GITLAB_REGISTRY_GB": Decimal("0.08"),
    "NT_GITLAB_WIKI_GB": Decimal("0.25"),
    "NT_GITLAB_SNIPPETS_GB": Decimal("0.25"),
    "NT_GITLAB_UPLOADS_GB": Decimal("0.12"),
    "NT_GITLAB_CI_MINUTES": Decimal("0.008"),
    "NT_ARTIFACTORY_STORAGE_GB": Decimal("0.09"),
    "NT_CUBE_QUERY_HOURS": Decimal("0.45"),
    "NT_CUBE_STORAGE_GB": Decimal("0.11"),
}
FAMILIES = {"gitlab": "NT_SCM", "artifactory": "NT_ARTIFACTS", "cube": "NT_DATA"}
HUMAN_UNITS = {"bytes": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
SOURCE_SETTINGS = (
    "FINOPS_GITLAB_", "FINOPS_ARTIFACTORY_", "FINOPS_NATIVE_", "FINOPS_SERVICE_", *SHARED_SOURCE_SETTINGS,
)
REJECT_COLUMNS = "period_month, source, source_ref, reason, usage_unit, usage_quantity, raw_payload"


# --------------------------------------------------------------------------------------------
# The estate, the simulator, the pipeline harness
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def estate() -> Estate:
    return build_estate(applications=40)


def simulator_for(
    estate: Estate, *, seed: int = 42, credentials: Credentials | None = None
) -> NativeServicesSimulator:
    """A small instance: 60 projects (4 malformed), 30 repositories (one unparseable), 12 Cube teams."""
    return NativeServicesSimulator(
        estate, today=TODAY, seed=seed, projects=60, repos=30, consumers=12, credentials=credentials
    )


def nightly_clock(night: dt.date) -> dt.datetime:
    """When the nightly run of `night` reads the services (the snapshot is of that night)."""
    return dt.datetime.combine(night, dt.time(2, 0), tzinfo=dt.UTC)


class Pipeline(DomainRun):
    """The nightly job against this test's mart, pointed at simulated native services."""

    asset_nodes = ("native_snapshots", "native_releves", "fact_releve")

    def domain_resources(self) -> dict[str, Any]:
        return {"native": native_from_env()}

    def start(self, simulator: NativeServicesSimulator) -> RunningServer:
        """Serve the simulator; point the sources and the native assets' clock at it."""
        return self.serve(serve(simulator), native_assets, lambda: nightly_clock(simulator.night))

    def persist_nights(self, simulator: NativeServicesSimulator, nights: Iterable[dt.date]) -> None:
        """What the nightly runs of those nights persisted: every source's snapshot of each night."""
        with self.resources["postgres"].connect() as conn, native_from_env().connected() as sources:
            for night in nights:
                simulator.night = night
                for source in sources:
                    for snapshot in source.snapshot(night):
                        save_snapshot(conn, snapshot, f"replay-{night}")
        simulator.night = TODAY


@pytest.fixture
def pipeline(
    monkeypatch: pytest.MonkeyPatch, resources: dict[str, Any], mart: psycopg.Connection, estate: Estate
) -> Iterator[Pipeline]:
    with open_domain_run(Pipeline, domain=DOMAIN, source_settings=SOURCE_SETTINGS, estate=estate, day=TODAY,
                         monkeypatch=monkeypatch, resources=resources, mart=mart) as pipeline:
        yield pipeline


# --------------------------------------------------------------------------------------------
# What the simulator says, and the relevés that follow from it
# --------------------------------------------------------------------------------------------


def owner(application_code: str | None) -> str:
    return application_code or UNALLOCATED


def human_bytes(text: str) -> int:
    """Artifactory's human size ("34.46 MB", binary units) as the nearest whole byte."""
    number, unit = text.split()
    return int((Decimal(number.replace(",", "")) * HUMAN_UNITS[unit]).to_integral_value(ROUND_HALF_EVEN))


def gitlab_storage_bytes(simulator: NativeServicesSimulator, nights: list[dt.date]) -> dict[Key, int]:
    """Bytes per (application, product) summed over the nights, from each project's statistics."""
    totals: dict[Key, int] = defaultdict(int)
    for night in nights:
        for project in simulator.projects:
            if project.malformed or not project.exists(simulator.today, night):
                continue
            statistics = project.statistics(simulator.today, night)
            for name, product in GITLAB_SIZE_PRODUCTS.items():
                totals[(owner(project.application), product, "gitlab")] += statistics[name]
    return dict(totals)


def root_namespaces(simulator: NativeServicesSimulator) -> list[GitlabNamespace]:
    return [namespace for namespace in simulator.namespaces if namespace.parent is None]


def ci_minutes(simulator: NativeServicesSimulator, night: dt.date) -> dict[Key, Decimal]:
    """Month-to-date `total_minutes_used` of every top-level namespace on the night, by owner."""
    simulator.night = night
    try:
        totals: dict[Key, Decimal] = defaultdict(Decimal)
        for namespace in root_namespaces(simulator):
            usage = simulator.gitlab_namespace(namespace)["ci_minutes_usage"]
            key = (owner(namespace.application), "NT_GITLAB_CI_MINUTES", "gitlab")
            totals[key] += usage["total_minutes_used"]
        return dict(totals)
    finally:
        simulator.night = TODAY


def artifactory_bytes(simulator: NativeServicesSimulator, nights: list[dt.date]) -> dict[Key, int]:
    """Bytes per application summed over the nights, as each night's storage summary states them
    (`usedSpaceInBytes`, else the human size; a virtual repository stores nothing of its own)."""
    by_key = {repo.key: repo for repo in simulator.repositories}
    totals: dict[Key, int] = defaultdict(int)
    try:
        for night in nights:
            simulator.night = night
            for row in simulator.artifactory_storageinfo()["repositoriesSummaryList"]:
                repo = by_key.get(row["repoKey"])
                if repo is None or repo.unparseable:  # TOTAL, and the size nobody can read
                    continue
                used = 0 if repo.repo_type == "VIRTUAL" else row.get("usedSpaceInBytes")
                if used is None:
                    used = human_bytes(row["usedSpace"])
                totals[(owner(repo.application), "NT_ARTIFACTORY_STORAGE_GB", "artifactory")] += used
    finally:
        simulator.night = TODAY
    return dict(totals)


def cube_report(simulator: NativeServicesSimulator, month: dt.date, night: dt.date) -> dict[Key, Decimal]:
    """The report of `month` Cube gives on `night`, by owner. No mapping rule names Cube consumers,
    so an item without its application is unallocated."""
    simulator.night = night
    try:
        totals: dict[Key, Decimal] = defaultdict(Decimal)
        for consumer, product, _unit, quantity in simulator.cube_quantities(f"{month:%Y-%m}"):
            code = consumer.application if consumer.reports_application else None
            totals[(owner(code), CUBE_PRODUCTS[product], "cube")] += quantity
        return dict(totals)
    finally:
        simulator.night = TODAY


def month_quantities(
    simulator: NativeServicesSimulator, nights: list[dt.date], cube_night: dt.date
) -> dict[Key, Decimal]:
    """(application, product, source) → the month's quantity: storage averaged over the persisted
    nights in GB (10^9 bytes), CI minutes of the last night, Cube's latest report of the month."""
    month = nights[0].replace(day=1)
    with localcontext() as ctx:
        ctx.prec = 60
        quantities: dict[Key, Decimal] = {}
        for key, total in gitlab_storage_bytes(simulator, nights).items():
            quantities[key] = Decimal(total) / GB / len(nights)
        for key, total in artifactory_bytes(simulator, nights).items():
            quantities[key] = Decimal(total) / GB / len(nights)
        quantities.update(ci_minutes(simulator, nights[-1]))
        quantities.update(cube_report(simulator, month, cube_night))
    return quantities


# --------------------------------------------------------------------------------------------
# What the mart holds
# --------------------------------------------------------------------------------------------


def reject_rows(mart: psycopg.Connection, run_id: str) -> list[tuple[Any, ...]]:
    return mart.execute(
        f"SELECT {REJECT_COLUMNS} FROM finops.releve_reject WHERE run_id = %s ORDER BY 2, 3, 4",
        (run_id,)).fetchall()


def snapshot_nights(mart: psycopg.Connection) -> dict[tuple[str, dt.date], int]:
    """How many nights each source has per month in the mart."""
    return dict(((source, month), nights) for source, month, nights in mart.execute(
        "SELECT source, period_month, count(*) FROM finops.native_snapshot_night GROUP BY 1, 2").fetchall())


def step_errors(result: ExecuteInProcessResult) -> str:
    """The errors of the failed steps, causes included (what a person reads in the UI)."""
    texts = []
    for event in result.all_events:
        error = event.step_failure_data.error if event.is_step_failure else None
        while error is not None:
            texts.append(error.message.strip())
            error = error.cause
    return "\n".join(texts)


# --------------------------------------------------------------------------------------------
# 1. a month from its persisted nights
# --------------------------------------------------------------------------------------------


def test_a_month_is_computed_from_its_persisted_nights_and_published(
    pipeline: Pipeline, estate: Estate
) -> None:
    mart = pipeline.mart
    simulator = simulator_for(estate)
    pipeline.start(simulator)
    # the nights of September: all but the last replayed as the nightly runs would have persisted
    # them, the last one by the snapshot asset itself on its night
    pipeline.persist_nights(simulator, SEPTEMBER_NIGHTS[:-1])
    simulator.night = SEPTEMBER_NIGHTS[-1]
    last_night = pipeline.run(SEPTEMBER, only=["native_snapshots"])
    assert last_night.success, failures(last_night)
    assert last_night.asset_materializations_for_node("native_snapshots")[0].metadata[
        "night"].value == "2025-09-30"
    simulator.night = TODAY

    result = pipeline.run(SEPTEMBER)  # on 10 October: tonight's snapshot, then September

    assert result.success, failures(result)
    evaluations = check_evaluations(result)
    assert evaluations[("native_releves", "reconciliation")].passed
    assert all(evaluation.passed for evaluation in evaluations.values()), evaluations
    # GitLab and Artifactory: the 30 nights of September; Cube's September: its 30 nights and the
    # report of the previous period read on 10 October (final, so the one kept)
    assert snapshot_nights(mart) == {
        ("gitlab", SEPTEMBER): 30, ("artifactory", SEPTEMBER): 30, ("cube", AUGUST): 30,
        ("cube", SEPTEMBER): 31, ("gitlab", OCTOBER): 1, ("artifactory", OCTOBER): 1, ("cube", OCTOBER): 1}

    expected = priced(month_quantities(simulator, SEPTEMBER_NIGHTS, cube_night=TODAY), RATES)
    found = releves(mart, SEPTEMBER)
    assert found == expected
    assert {product for _, product, _ in found} == set(RATES)
    assert {source for _, _, source in found} == {"gitlab", "artifactory", "cube"}
    total = sum((total for _, _, total in expected.values()), Decimal(0))
    assert total > 0
    assert mart.execute("SELECT sum(total_cost) FROM finops.fact_releve WHERE period_month = %s",
                        (SEPTEMBER,)).fetchone() == (total,)
    for row in mart.execute("SELECT product_id, source, family_id, domain_id, currency, rate_card_version, "
                            "run_id FROM finops.fact_releve"):
        assert row[2:] == (FAMILIES[row[1]], DOMAIN, "EUR", "RC-2024.1", result.run_id)

    # storage is the average of the nights, not the last night: sizes grow every night
    last = month_quantities(simulator, SEPTEMBER_NIGHTS[-1:], cube_night=TODAY)
    repository = ("PAYMENTS", "NT_GITLAB_REPOSITORY_GB", "gitlab")
    assert Decimal(0) < found[repository][0] < last[repository].quantize(SIX_DECIMALS)
    # CI minutes are all the minutes of the month to the last night, purchased ones included
    simulator.night = SEPTEMBER_NIGHTS[-1]
    september_30 = [simulator.gitlab_namespace(namespace)["ci_minutes_usage"]
                    for namespace in root_namespaces(simulator)]
    simulator.night = TODAY
    assert any(usage["purchased_minutes_used"] > 0 for usage in september_30)
    assert mart.execute(
        "SELECT sum(usage_quantity) FROM finops.fact_releve WHERE product_id = 'NT_GITLAB_CI_MINUTES'"
    ).fetchone() == (sum(Decimal(usage["total_minutes_used"]) for usage in september_30),)
    # Cube: the latest report of September, read after the month ended, not the 30 September one
    cube_final, cube_30 = cube_report(simulator, SEPTEMBER, TODAY), cube_report(simulator, SEPTEMBER,
                                                                                SEPTEMBER_NIGHTS[-1])
    hours = [key for key in cube_final if key[1] == "NT_CUBE_QUERY_HOURS"]
    assert sum(cube_final[key] for key in hours) > sum(cube_30.get(key, Decimal(0)) for key in hours)

    # what no application owns lands on UNALLOCATED: personal and orphan projects (and their
    # namespaces' CI minutes), the platform's shared repositories, Cube's orphan teams (and, as no
    # mapping rule reads Cube consumer names, the teams whose items do not carry their application)
    orphan_projects = [p for p in simulator.projects if p.application is None and not p.malformed]
    shared = [r for r in simulator.repositories if r.application is None and r.used_bytes]
    assert orphan_projects and shared
    unallocated = {(product, source) for app, product, source in found if app == UNALLOCATED}
    assert {("NT_GITLAB_REPOSITORY_GB", "gitlab"), ("NT_GITLAB_CI_MINUTES", "gitlab"),
            ("NT_ARTIFACTORY_STORAGE_GB", "artifactory"), ("NT_CUBE_QUERY_HOURS", "cube")} <= unallocated
    assert found[(UNALLOCATED, "NT_ARTIFACTORY_STORAGE_GB", "artifactory")][0] > 0
    owners = {p.application for p in simulator.projects} | {r.application for r in simulator.repositories}
    owners |= {c.application for c in simulator.consumers}
    assert {app for app, _, _ in found} <= {*filter(None, owners), UNALLOCATED}

    # malformed entries are rejects of the month with their reason, once per entry
    negative = {p.path_with_namespace: p for p in simulator.projects if p.malformed == "negative_size"}
    missing = {p.path_with_namespace for p in simulator.projects if p.malformed == "missing_statistics"}
    unreadable = [r.key for r in simulator.repositories if r.unparseable]
    assert len(negative) == 2 and len(missing) == 2 and len(unreadable) == 1
    expected_rejects = sorted(
        [("gitlab", path, "no statistics (the token needs at least Reporter access) (30 night(s))")
         for path in missing]
        + [("gitlab", path, "statistics.job_artifacts_size: negative "
            f"({project.statistics(TODAY, TODAY)['job_artifacts_size']}) (30 night(s))")
           for path, project in negative.items()]
        + [("artifactory", unreadable[0], "usedSpace: not a size: 'N/A' has no number (30 night(s))")])
    rejects = reject_rows(mart, result.run_id)
    assert sorted((source, ref, reason) for _, source, ref, reason, *_ in rejects) == expected_rejects
    assert {(row[0], row[4], row[5]) for row in rejects} == {(SEPTEMBER, None, None)}
    assert all(row[6] for row in rejects)  # the raw entry is kept

    # the nights used, in the load's details and in the views
    assert mart.execute("SELECT details->'nights_gitlab', details->'nights_artifactory', "
                        "details->'nights_cube' FROM finops.domain_load "
                        "WHERE run_id = %s AND published_at IS NOT NULL",
                        (result.run_id,)).fetchall() == [(30, 30, 31)]
    assert mart.execute("SELECT period_month, domain_id, total_cost FROM finops.mv_cost_domain_month"
                        ).fetchall() == [(SEPTEMBER, DOMAIN, total)]
    run = etl_run(mart, result.run_id)
    assert (run["status"], run["periods"], run["errors_count"], run["error_summary"]) == (
        "SUCCESS", [SEPTEMBER.isoformat()], 0, None)
    assert (run["records_inserted"], run["records_rejected"]) == (len(expected), 5)


# --------------------------------------------------------------------------------------------
# 2. reprocessing a past month reads the mart, never the services
# --------------------------------------------------------------------------------------------


def test_a_past_month_reprocessed_after_the_services_changed_gives_the_same_releves(
    pipeline: Pipeline, estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    mart = pipeline.mart
    simulator = simulator_for(estate)
    first_server = pipeline.start(simulator)
    pipeline.persist_nights(simulator, SEPTEMBER_NIGHTS)
    first = pipeline.run(SEPTEMBER)
    assert first.success, failures(first)
    september, rejects = fact_rows(mart, SEPTEMBER), reject_rows(mart, first.run_id)
    assert len(september) > 50 and len(rejects) == 5
    load_first = domain_loads(mart, first.run_id)

    calls: list[str] = []
    request = HttpSource.request

    def counting_request(self: HttpSource, method: str, path: str, **kwargs: Any) -> Any:
        calls.append(f"{self.name} {method} {path}")
        return request(self, method, path, **kwargs)

    monkeypatch.setattr(HttpSource, "request", counting_request)

    # the services now say something else entirely (another instance, other projects and sizes)
    first_server.close()
    other = simulator_for(estate, seed=7)
    assert {p.id for p in other.projects} != {p.id for p in simulator.projects}
    pipeline.start(other)
    changed = pipeline.run(SEPTEMBER, only=RELEVES_AND_PUBLISH)

    assert changed.success, failures(changed)
    assert calls == []
    assert fact_rows(mart, SEPTEMBER) == september
    assert fact_run_ids(mart) == [(changed.run_id,)]
    assert reject_rows(mart, changed.run_id) == rejects
    assert domain_loads(mart, changed.run_id) == load_first

    # and with no service at all
    pipeline.servers.close()
    with pytest.raises(httpx.ConnectError):
        httpx.get(os.environ["FINOPS_GITLAB_URL"] + "/projects", timeout=2)
    gone = pipeline.run(SEPTEMBER, only=RELEVES_AND_PUBLISH)

    assert gone.success, failures(gone)
    assert calls == []
    assert fact_rows(mart, SEPTEMBER) == september
    assert reject_rows(mart, gone.run_id) == rejects
    assert etl_run(mart, gone.run_id)["status"] == "SUCCESS"


# --------------------------------------------------------------------------------------------
# 3. a past month nobody snapshotted cannot be computed
# --------------------------------------------------------------------------------------------


def test_a_past_month_without_snapshots_fails_naming_the_month(pipeline: Pipeline, estate: Estate) -> None:
    mart = pipeline.mart
    pipeline.start(simulator_for(estate))

    # tonight's snapshot holds Cube's September (its previous period), nothing of August
    result = pipeline.run(AUGUST, SEPTEMBER)

    assert not result.success
    assert set(result.get_failed_step_keys()) == {"native_releves"}
    assert result.asset_materializations_for_node("fact_releve") == []
    assert mart.execute("SELECT count(*) FROM finops.fact_releve").fetchone() == (0,)
    assert mart.execute("SELECT count(*) FROM finops.domain_load WHERE run_id = %s",
                        (result.run_id,)).fetchone() == (0,)
    assert ("cube", SEPTEMBER) in snapshot_nights(mart)
    assert not [key for key in snapshot_nights(mart) if key[1] == AUGUST]
    assert "MissingSnapshots: no native-service snapshot was persisted for 2025-08" in step_errors(result)
    run = etl_run(mart, result.run_id)
    assert (run["status"], run["errors_count"], run["records_inserted"]) == ("FAILED", 1, 0)
    summary = run["error_summary"]
    assert summary.startswith("native_releves: ")
    assert "no native-service snapshot was persisted for 2025-08" in summary
    assert "cannot be computed" in summary and "Traceback" not in summary


# --------------------------------------------------------------------------------------------
# 4. HTTP failure paths through the real asset
# --------------------------------------------------------------------------------------------


def gitlab_snapshot(mart: psycopg.Connection, night: dt.date) -> dict[tuple[str, str], Decimal]:
    return dict(((consumer, product), quantity) for consumer, product, quantity in mart.execute(
        "SELECT consumer, product_id, quantity FROM finops.native_snapshot WHERE source = 'gitlab' "
        "AND night = %s", (night,)).fetchall())


def expected_gitlab_snapshot(
    simulator: NativeServicesSimulator, night: dt.date
) -> dict[tuple[str, str], Decimal]:
    """Every readable project's sizes in GB on the night, and every top-level namespace's minutes."""
    expected: dict[tuple[str, str], Decimal] = {}
    for project in simulator.projects:
        if project.malformed:
            continue
        statistics = project.statistics(simulator.today, night)
        for name, product in GITLAB_SIZE_PRODUCTS.items():
            expected[(f"project/{project.id}", product)] = Decimal(statistics[name]) / GB
    simulator.night = night
    for namespace in root_namespaces(simulator):
        expected[(f"namespace/{namespace.id}", "NT_GITLAB_CI_MINUTES")] = Decimal(
            simulator.gitlab_namespace(namespace)["ci_minutes_usage"]["total_minutes_used"])
    simulator.night = TODAY
    return expected


def gitlab_requests(logs: str, path: str) -> list[str]:
    """The httpx log lines of requests to a GitLab path (the query is never logged)."""
    return re.findall(rf'HTTP Request: GET \S+/gitlab/api/v4{path} "HTTP/1.1 (\d+)', logs)


def test_gitlab_rate_limit_is_waited_out_and_the_night_is_complete(
    pipeline: Pipeline, estate: Estate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="httpx")
    simulator = simulator_for(estate)
    pipeline.start(simulator)
    pipeline.setenv(FINOPS_NATIVE_SOURCES="gitlab", FINOPS_NATIVE_SERVICES=None)
    simulator.gitlab_rate_limit = 10  # per second: a night needs about 30 requests

    result = pipeline.run(OCTOBER, only=["native_snapshots"])

    assert result.success, failures(result)
    statuses = re.findall(r'HTTP Request: GET \S+/gitlab/api/v4/\S+ "HTTP/1.1 (\d+)', caplog.text)
    assert "429" in statuses and set(statuses) == {"200", "429"} and statuses[-1] == "200"
    assert gitlab_snapshot(pipeline.mart, TODAY) == expected_gitlab_snapshot(simulator, TODAY)
    assert etl_run(pipeline.mart, result.run_id)["status"] == "SUCCESS"


def test_keyset_pagination_over_many_pages_reads_every_project_once(
    pipeline: Pipeline, estate: Estate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="httpx")
    simulator = simulator_for(estate)
    pipeline.start(simulator)
    pipeline.setenv(FINOPS_NATIVE_SOURCES="gitlab", FINOPS_NATIVE_SERVICES=None, FINOPS_GITLAB_PER_PAGE="7")

    result = pipeline.run(OCTOBER, only=["native_snapshots"])

    assert result.success, failures(result)
    assert len(simulator.projects) == 60
    assert gitlab_requests(caplog.text, "/projects") == ["200"] * 9  # ceil(60 / 7) pages
    snapshot = gitlab_snapshot(pipeline.mart, TODAY)
    # every readable project once (a project read twice would add up to twice its size)
    assert snapshot == expected_gitlab_snapshot(simulator, TODAY)
    problems = pipeline.mart.execute(
        "SELECT items, jsonb_array_length(problems) FROM finops.native_snapshot_night WHERE source = 'gitlab'"
    ).fetchall()
    assert problems == [(56 * len(GITLAB_SIZE_PRODUCTS) + len(root_namespaces(simulator)), 4)]


def test_gitlab_refusing_the_token_fails_the_run_naming_gitlab_the_path_and_the_status(
    pipeline: Pipeline, estate: Estate
) -> None:
    mart = pipeline.mart
    pipeline.start(simulator_for(estate))
    wrong = "glpat-wrong-sentinel-4c1e9a"
    pipeline.setenv(FINOPS_GITLAB_TOKEN=wrong)

    result = pipeline.run(OCTOBER)

    assert not result.success
    assert set(result.get_failed_step_keys()) == {"native_snapshots"}
    assert result.asset_materializations_for_node("fact_releve") == []
    assert mart.execute("SELECT count(*) FROM finops.fact_releve").fetchone() == (0,)
    run = etl_run(mart, result.run_id)
    assert (run["status"], run["errors_count"]) == ("FAILED", 1)
    assert run["error_summary"].startswith("native_snapshots: ")
    assert run["error_summary"].endswith(
        "gitlab: authentication refused; check the source's credentials "
        "(GET /gitlab/api/v4/projects, HTTP 401, after 1 attempt)")
    assert "gitlab: authentication refused" in step_errors(result)
    for where, text in pipeline.run_texts(result).items():
        assert wrong not in text, f"the token in the {where}"


def test_artifactory_persistent_server_errors_fail_naming_the_path_status_and_attempts(
    pipeline: Pipeline, estate: Estate, httpserver: HTTPServer
) -> None:
    mart = pipeline.mart
    pipeline.start(simulator_for(estate))
    httpserver.expect_request("/api/storageinfo").respond_with_json({"errors": [{"status": 503}]}, status=503)
    pipeline.setenv(FINOPS_ARTIFACTORY_URL=httpserver.url_for("/").rstrip("/"),
                    FINOPS_ARTIFACTORY_RETRIES="2")

    result = pipeline.run(OCTOBER)

    assert not result.success
    assert set(result.get_failed_step_keys()) == {"native_snapshots"}
    assert result.asset_materializations_for_node("fact_releve") == []
    assert [request.path for request, _ in httpserver.log] == ["/api/storageinfo"] * 3
    assert mart.execute("SELECT count(*) FROM finops.fact_releve").fetchone() == (0,)
    run = etl_run(mart, result.run_id)
    assert run["status"] == "FAILED"
    assert run["error_summary"].startswith("native_snapshots: ")
    assert run["error_summary"].endswith(
        "artifactory: gave up: server error (GET /api/storageinfo, HTTP 503, after 3 attempts)")


# --------------------------------------------------------------------------------------------
# 5. settings are checked at start
# --------------------------------------------------------------------------------------------


def test_native_settings_are_checked_at_start(pipeline: Pipeline, estate: Estate, mart_url: str) -> None:
    server = pipeline.start(simulator_for(estate))
    pipeline.setenv(POSTGRES_URL=mart_url, MONGO_URL="mongomock://native-settings-test")

    pipeline.setenv(FINOPS_GITLAB_URL=None)
    with pytest.raises(SettingError, match="FINOPS_GITLAB_URL is not set"):
        native_from_env()
    with pytest.raises(SettingError, match="FINOPS_GITLAB_URL is not set"):
        build_definitions()
    pipeline.setenv(FINOPS_GITLAB_URL=server.gitlab_url, FINOPS_SERVICE_CUBE_URL=None)
    with pytest.raises(SettingError, match="FINOPS_SERVICE_CUBE_URL is not set"):
        native_from_env()
    pipeline.setenv(FINOPS_SERVICE_CUBE_URL=server.cube_url, FINOPS_NATIVE_SERVICES="cube,billing",
                    FINOPS_SERVICE_BILLING_URL=server.cube_url)
    with pytest.raises(SettingError, match=re.escape(
            "FINOPS_NATIVE_SERVICES names 'billing', which has no product in usage_report_products.csv")):
        native_from_env()
    pipeline.setenv(FINOPS_NATIVE_SERVICES="cube", FINOPS_NATIVE_SOURCES="gitlab,jira")
    with pytest.raises(SettingError, match="FINOPS_NATIVE_SOURCES: unknown source 'jira'"):
        native_from_env()

    # Artifactory alone needs only the Artifactory settings
    others = [name for name in server.environment() if not name.startswith("FINOPS_ARTIFACTORY_")]
    pipeline.setenv(FINOPS_NATIVE_SOURCES="artifactory", FINOPS_SERVICE_BILLING_URL=None,
                    **dict.fromkeys(others))
    assert not [name for name in os.environ if name.startswith(("FINOPS_GITLAB_", "FINOPS_SERVICE_"))]
    assert (native_from_env().sources, native_from_env().services) == (["artifactory"], [])
    assert build_definitions().resources["native"].sources == ["artifactory"]  # type: ignore[index]
    result = pipeline.run(OCTOBER)

    assert result.success, failures(result)
    assert snapshot_nights(pipeline.mart) == {("artifactory", OCTOBER): 1}
    tonight = artifactory_bytes(server.simulator, [TODAY])
    assert releves(pipeline.mart, OCTOBER) == priced(
        {key: Decimal(total) / GB for key, total in tonight.items()}, RATES)


# --------------------------------------------------------------------------------------------
# 6. no secret anywhere
# --------------------------------------------------------------------------------------------

SECRET_CREDENTIALS = Credentials(
    gitlab_token="glpat-sentinel-3f9b27d1",
    artifactory_token="artifactory-sentinel-8e21c6",
    oidc_client_secret="cube-client-sentinel-5d07aa",
)
WRONG_GITLAB_TOKEN = "glpat-wrong-sentinel-71b0ce"


def test_no_secret_in_logs_events_metadata_or_run_records(
    pipeline: Pipeline, estate: Estate, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)
    mart = pipeline.mart
    pipeline.start(simulator_for(estate, credentials=SECRET_CREDENTIALS))
    assert os.environ["FINOPS_GITLAB_TOKEN"] == SECRET_CREDENTIALS.gitlab_token
    assert os.environ["FINOPS_ARTIFACTORY_TOKEN"] == SECRET_CREDENTIALS.artifactory_token
    assert os.environ["FINOPS_SERVICE_CUBE_OIDC_CLIENT_SECRET"] == SECRET_CREDENTIALS.oidc_client_secret
    tokens = record_issued_tokens(monkeypatch, OidcClientCredentials)
    secrets = [SECRET_CREDENTIALS.gitlab_token, SECRET_CREDENTIALS.artifactory_token,
               SECRET_CREDENTIALS.oidc_client_secret, WRONG_GITLAB_TOKEN]

    succeeded = pipeline.run(OCTOBER)

    assert succeeded.success, failures(succeeded)
    assert len(tokens) == 1  # Cube's OIDC token was issued and used
    stored = mart.execute(
        "SELECT string_agg(attributes::text, ' ') FROM finops.native_snapshot").fetchone()[0]  # type: ignore[index]
    stored += str(mart.execute("SELECT problems::text FROM finops.native_snapshot_night").fetchall())
    texts = {**pipeline.run_texts(succeeded), "logs": caplog.text, "snapshots": stored}
    # the HTTP libraries' log lines were captured (so their absence of secrets means something)
    for path in ("/gitlab/api/v4/projects", "/artifactory/api/storageinfo", "/oidc/token",
                 "/cube/v1/usage-report"):
        assert path in texts["logs"], path
    assert "gitlab_2025_10_readings" in texts["metadata"] and "total_cost_exact" in texts["metadata"]
    assert_no_secret(texts, (*secrets, *tokens))

    # GitLab refuses a wrong token: the run fails, and neither token shows anywhere
    caplog.clear()
    pipeline.setenv(FINOPS_GITLAB_TOKEN=WRONG_GITLAB_TOKEN)
    failed = pipeline.run(OCTOBER)

    assert not failed.success
    summary = etl_run(mart, failed.run_id)["error_summary"]
    assert summary.endswith("gitlab: authentication refused; check the source's credentials "
                            "(GET /gitlab/api/v4/projects, HTTP 401, after 1 attempt)")
    texts = {**pipeline.run_texts(failed), "logs": caplog.text}
    assert "authentication refused" in texts["event log"]
    assert_no_secret(texts, (*secrets, *tokens), " of the failed run")
