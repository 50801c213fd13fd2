"""The scale knob of the demo generators: the demo's sizes unchanged, the reference scale as
specified, and one estate shared by every domain's generator at any scale."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import statistics
from pathlib import Path
from typing import Any

import duckdb
import mongomock_ng
import pytest

from finops_dagster.demo.cmdb import APPLICATION_CLASS, CI_COLLECTION, generate_cmdb
from finops_dagster.demo.estate import FIXED_APPLICATIONS, build_estate
from finops_dagster.demo.native_services import (
    NativeServicesSimulator,
    artifactory_repositories,
    gitlab_projects,
)
from finops_dagster.demo.private_cloud import private_cloud_tenants
from finops_dagster.demo.public_cloud import DEMO_PROVIDERS, write_focus_exports
from finops_dagster.demo.run import FOCUS_LINE_ITEMS_PER_MONTH, cmdb_standin_url
from finops_dagster.demo.scale import Scale

TODAY = dt.date(2026, 11, 1)
"""The first of a month: the CMDB stand-in then holds one dump, which keeps mongomock fast."""
MONTH = dt.date(2026, 10, 1)


def test_demo_scale_is_what_the_demo_always_generated() -> None:
    demo = Scale.demo()
    assert (demo.applications, demo.cis, demo.tenants) == (300, 3_000, 120)
    assert demo.focus_line_items == FOCUS_LINE_ITEMS_PER_MONTH == 20_000
    assert (demo.gitlab_projects, demo.artifactory_repos, demo.cube_consumers) == (400, 120, 60)
    assert demo.history_months == 0
    assert demo.estate() == build_estate()
    assert cmdb_standin_url(demo, 3, TODAY) == "demo://?cis=3000&months=3&today=2026-11-01&applications=300"


def test_reference_scale_has_the_specified_sizes() -> None:
    reference = Scale.reference()
    assert reference.applications == 5_000
    assert reference.cis == 1_000_000
    assert reference.tenants == 2_000
    assert reference.focus_line_items * len(DEMO_PROVIDERS) == 10_000_000
    assert reference.gitlab_projects == 50_000
    assert reference.artifactory_repos == 5_000
    assert reference.history_months == 24
    assert len(reference.estate().applications) == 5_000


def test_the_factor_scales_the_sources_not_the_estate() -> None:
    tenth = Scale.reference(0.1)
    assert tenth.applications == 5_000
    assert tenth.history_months == 24
    assert (tenth.cis, tenth.tenants, tenth.focus_line_items) == (100_000, 200, 500_000)
    assert (tenth.gitlab_projects, tenth.artifactory_repos) == (5_000, 500)
    tiny = Scale.reference(1e-7)
    assert tiny.cis == tiny.focus_line_items == 1
    assert tiny.tenants >= 20 and tiny.gitlab_projects >= 50 and tiny.artifactory_repos >= 50
    for factor in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="factor"):
            Scale.reference(factor)


@pytest.fixture(scope="module")
def small() -> Scale:
    """The reference estate (5,000 applications) with a few hundred records per source."""
    return dataclasses.replace(
        Scale.reference(0.0004), cis=400, focus_line_items=4_000, gitlab_projects=300, tenants=60
    )


def _codes_in_focus(directory: Path) -> tuple[set[str], int, int]:
    """Application codes named by the exports' tags, the line items, and those without a tag."""
    with duckdb.connect() as conn:
        rows = conn.execute(
            f"SELECT Tags FROM read_parquet('{directory}/**/*.parquet', union_by_name = true)"
        ).fetchall()
    codes: set[str] = set()
    untagged = 0
    for (tags,) in rows:
        values = json.loads(tags) if tags else {}
        named = [str(value).strip().upper() for key, value in values.items() if "app" in key.lower()]
        codes.update(named)
        untagged += not named
    return codes, len(rows), untagged


def test_every_domain_draws_from_the_same_applications(small: Scale, tmp_path: Path) -> None:
    estate = small.estate()
    codes = set(estate.codes)
    heavy = {code for code, _, _ in FIXED_APPLICATIONS}

    db: Any = mongomock_ng.MongoClient()["raw"]
    generate_cmdb(db, estate, today=TODAY, months=1, cis=small.cis, seed=small.seed)
    records = {doc["u_code"] for doc in db[CI_COLLECTION].find({"sys_class_name": APPLICATION_CLASS})}
    assert records == codes  # every application has its CMDB record

    tenants = private_cloud_tenants(estate, tenants=small.tenants, seed=small.seed)
    tenant_apps = {tenant.application for tenant in tenants}
    assert None in tenant_apps  # orphan tenants: unallocated
    assert tenant_apps - {None} <= codes

    projects = gitlab_projects(estate, projects=small.gitlab_projects, seed=small.seed)
    project_apps = {project.application for project in projects}
    assert None in project_apps and project_apps - {None} <= codes
    repos = artifactory_repositories(estate, repos=small.artifactory_repos, seed=small.seed)
    assert {repo.application for repo in repos} - {None} <= codes

    paths = write_focus_exports(
        estate, tmp_path, [MONTH], line_items_per_month=small.focus_line_items, fmt="parquet"
    )
    assert len(paths) == len(DEMO_PROVIDERS)
    focus_codes, line_items, untagged = _codes_in_focus(tmp_path)
    assert line_items == small.focus_line_items * len(DEMO_PROVIDERS)
    assert 0 < untagged < line_items / 2  # some resources are untagged
    assert len(focus_codes & codes) > 100

    # The heavy applications show up everywhere: one code per application across the domains.
    for domain in (tenant_apps, project_apps, focus_codes):
        assert heavy <= domain


def test_a_few_applications_carry_most_of_the_weight(small: Scale) -> None:
    weights = sorted(small.estate().weights, reverse=True)
    top = weights[: len(weights) // 20]  # the top 5%
    assert sum(top) > 0.5
    assert statistics.median(weights) < 1 / len(weights)


def test_the_native_simulator_takes_the_scale(small: Scale) -> None:
    simulator = NativeServicesSimulator(
        small.estate(),
        today=TODAY,
        projects=small.gitlab_projects,
        repos=small.artifactory_repos,
        consumers=small.cube_consumers,
    )
    assert len(simulator.projects) == small.gitlab_projects
    assert len(simulator.repositories) == small.artifactory_repos
    # Keyset pages walk every visible project once, in both directions.
    for sort in ("asc", "desc"):
        seen: list[int] = []
        cursor: int | None = None
        while True:
            after, before = (cursor, None) if sort == "asc" else (None, cursor)
            page, cursor = simulator.gitlab_projects_keyset(
                id_after=after, id_before=before, sort=sort, per_page=100
            )
            seen += [project["id"] for project in page]
            if cursor is None:
                break
        visible = [project.id for project in simulator.projects if project.exists(TODAY, TODAY)]
        assert seen == (visible if sort == "asc" else visible[::-1])
