"""Artifactory (`GET /artifactory/api/storageinfo`): used space per repository tonight.

`usedSpaceInBytes` when present, else the human-readable `usedSpace` ("59.77 GB", 1 KB = 1024
bytes); the `TOTAL` summary row is not a repository. Gauges in GB (10^9 bytes). A repository's
application: its `projectKey`, then the repository naming rules (`<app>-<type>-local`), else
unallocated. Settings: FINOPS_ARTIFACTORY_URL (…/artifactory), FINOPS_ARTIFACTORY_AUTH (token by
default, Bearer) with FINOPS_ARTIFACTORY_TOKEN.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from finops_dagster.domains.native.artifactory_payloads import parse_storage_info
from finops_dagster.domains.native.snapshots import Problem, Reading, Snapshot
from finops_dagster.http.auth import auth_from_env
from finops_dagster.http.client import HttpSource
from finops_dagster.http.errors import SourceError
from finops_dagster.http.settings import http_settings
from finops_dagster.releve import month_start

SOURCE = "artifactory"
PREFIX = "FINOPS_ARTIFACTORY"
BYTES_PER_GB = Decimal(10**9)
PATH = "/api/storageinfo"


class Artifactory:
    def __init__(self, client: HttpSource) -> None:
        self.client = client

    @classmethod
    def from_env(cls) -> Artifactory:
        return cls(HttpSource(http_settings(SOURCE, PREFIX), auth_from_env(PREFIX, default="token")))

    def snapshot(self, night: dt.date) -> list[Snapshot]:
        body = self.client.get(PATH).body
        received = repository_rows(body)
        try:
            info = parse_storage_info(body)
        except ValueError as error:
            raise SourceError(SOURCE, f"unexpected answer: {error}", path=PATH) from None
        readings = []
        for repo in info.repositories:
            attributes = {"repository": repo.repo_key.lower(), "repo_type": repo.repo_type}
            if repo.package_type:
                attributes["package_type"] = repo.package_type
            if repo.project_key and repo.project_key != "default":
                attributes["project_key"] = repo.project_key.lower()
            readings.append(
                Reading(
                    f"repository/{repo.repo_key}",
                    "NT_ARTIFACTORY_STORAGE_GB",
                    "gauge",
                    Decimal(repo.used_bytes) / BYTES_PER_GB,
                    attributes=attributes,
                )
            )
        problems = [Problem(p.ref, p.reason, p.raw) for p in info.problems]
        return [Snapshot(SOURCE, month_start(night), night, readings, problems, records_received=received)]

    def close(self) -> None:
        self.client.close()


def repository_rows(body: Any) -> int:
    """The records the answer holds, counted before parsing: the rows of `repositoriesSummaryList`
    but its first `TOTAL` summary row (repoKey TOTAL, no repository type), which is no repository."""
    rows = body.get("repositoriesSummaryList") if isinstance(body, dict) else None
    if not isinstance(rows, list):
        return 0
    summary = any(
        isinstance(row, dict) and row.get("repoKey") == "TOTAL" and row.get("repoType") in (None, "NA")
        for row in rows
    )
    return len(rows) - int(summary)
