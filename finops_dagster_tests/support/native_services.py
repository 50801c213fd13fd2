"""The simulated native services (GitLab, Artifactory, Cube) and the nightly job pointed at them.

The end-to-end and ledger tests of the native domain run the same job against the same simulator
on the same day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import finops_dagster.domains.native.assets as native_assets
from finops_dagster.demo.estate import Estate
from finops_dagster.demo.native_services import Credentials, NativeServicesSimulator, RunningServer, serve
from finops_dagster.domains.native.resource import native_from_env
from finops_dagster.domains.native.snapshots import save_snapshot
from finops_dagster_tests.support.domain_runs import SHARED_SOURCE_SETTINGS, DomainRun

TODAY = dt.date(2025, 10, 10)
"""The simulator's day (past, so its months are partitions whatever the real date)."""
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
SOURCE_SETTINGS = (
    "FINOPS_GITLAB_", "FINOPS_ARTIFACTORY_", "FINOPS_NATIVE_", "FINOPS_SERVICE_", *SHARED_SOURCE_SETTINGS,
)


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
