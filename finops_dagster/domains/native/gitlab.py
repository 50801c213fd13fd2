"""GitLab (REST v4): storage per project tonight, and CI/CD compute minutes per namespace this month.

`GET /projects?statistics=true` with keyset pagination (`pagination=keyset`, `Link rel="next"`;
offset pagination stops at 50,000 projects) gives each project's sizes in bytes: repository, LFS,
job and pipeline artifacts, packages, container registry, wiki, snippets, uploads — gauges in GB
(10^9 bytes). `GET /namespaces` (page numbers) then `GET /namespaces/:id` gives `ci_minutes_usage`
(month-to-date, `total_minutes_used`, purchased minutes included: a counter) for each top-level
namespace, where the instance reports it
(FINOPS_GITLAB_CI_MINUTES=namespaces, the default, or none).
A project's application: its namespace path, then an `app:<CODE>` topic, then the mapping rules
(all as rules of the native domain), else unallocated.
Settings: FINOPS_GITLAB_URL (…/api/v4), FINOPS_GITLAB_AUTH (token by default) with FINOPS_GITLAB_TOKEN
and FINOPS_GITLAB_TOKEN_HEADER (PRIVATE-TOKEN, or Authorization for a Bearer token), FINOPS_GITLAB_PER_PAGE.
"""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal
from typing import Any

from finops_dagster.domains.native.gitlab_payloads import (
    NamespaceMinutes,
    ProjectStorage,
    parse_namespace,
    parse_projects,
)
from finops_dagster.domains.native.snapshots import Problem, Reading, Snapshot
from finops_dagster.http.auth import auth_from_env
from finops_dagster.http.client import HttpSource
from finops_dagster.http.errors import SourceError
from finops_dagster.http.pagination import by_link_header, by_page_number
from finops_dagster.http.settings import http_settings
from finops_dagster.releve import month_start
from finops_dagster.settings import SettingError, env_int

SOURCE = "gitlab"
PREFIX = "FINOPS_GITLAB"
BYTES_PER_GB = Decimal(10**9)
SIZE_PRODUCTS = {
    "repository": "NT_GITLAB_REPOSITORY_GB",
    "lfs_objects": "NT_GITLAB_LFS_GB",
    "job_artifacts": "NT_GITLAB_JOB_ARTIFACTS_GB",
    "pipeline_artifacts": "NT_GITLAB_PIPELINE_ARTIFACTS_GB",
    "packages": "NT_GITLAB_PACKAGES_GB",
    "container_registry": "NT_GITLAB_REGISTRY_GB",
    "wiki": "NT_GITLAB_WIKI_GB",
    "snippets": "NT_GITLAB_SNIPPETS_GB",
    "uploads": "NT_GITLAB_UPLOADS_GB",
}


class GitLab:
    def __init__(self, client: HttpSource, per_page: int, ci_minutes: bool) -> None:
        self.client = client
        self.per_page = per_page
        self.ci_minutes = ci_minutes

    @classmethod
    def from_env(cls) -> GitLab:
        minutes = (os.environ.get(f"{PREFIX}_CI_MINUTES") or "namespaces").strip().lower()
        if minutes not in ("namespaces", "none"):
            raise SettingError(f"{PREFIX}_CI_MINUTES must be namespaces or none, got {minutes!r}")
        return cls(
            HttpSource(http_settings(SOURCE, PREFIX), auth_from_env(PREFIX, default="token")),
            env_int(f"{PREFIX}_PER_PAGE", 100, minimum=1),
            minutes == "namespaces",
        )

    def snapshot(self, night: dt.date) -> list[Snapshot]:
        """Tonight's storage per project and minutes per top-level namespace, with the records the
        answers held: one per size a project listing entry reports (`SIZE_PRODUCTS`), one per
        namespace answer, counted as they arrive."""
        readings: list[Reading] = []
        problems: list[Problem] = []
        received = [0]

        def projects_page(body: Any) -> list[Any]:
            received[0] += len(body) * len(SIZE_PRODUCTS) if isinstance(body, list) else 0
            return _projects_page(body)

        params = {
            "statistics": "true",
            "pagination": "keyset",
            "order_by": "id",
            "sort": "asc",
            "per_page": self.per_page,
        }
        for item in by_link_header(self.client, "/projects", params, projects_page):
            if isinstance(item, ProjectStorage):
                readings.extend(_project_readings(item))
            else:
                problems.append(Problem(item.ref, item.reason, item.raw, records=len(SIZE_PRODUCTS)))
        if self.ci_minutes:
            minutes, minute_problems, answers = self._namespace_minutes()
            readings.extend(minutes)
            problems.extend(minute_problems)
            received[0] += answers
        return [Snapshot(SOURCE, month_start(night), night, readings, problems, records_received=received[0])]

    def _namespace_minutes(self) -> tuple[list[Reading], list[Problem], int]:
        """Minutes of every top-level namespace, its problems, and how many namespace answers came
        (subgroups and other kinds are not asked: their minutes are their top-level namespace's)."""
        readings: list[Reading] = []
        problems: list[Problem] = []
        answers = 0
        namespaces = by_page_number(
            self.client,
            "/namespaces",
            {"per_page": self.per_page},
            "page",
            _namespaces_page,
        )
        for namespace in namespaces:
            if (
                not isinstance(namespace, dict)
                or namespace.get("parent_id")
                or namespace.get("kind") not in ("group", "user")
            ):
                continue
            body = self.client.get(f"/namespaces/{int(namespace['id'])}").body
            answers += 1
            parsed = parse_namespace(body)
            if isinstance(parsed, NamespaceMinutes):
                readings.append(
                    Reading(
                        f"namespace/{parsed.namespace_id}",
                        "NT_GITLAB_CI_MINUTES",
                        "counter",
                        _minutes_used(parsed),
                        attributes={"namespace": parsed.full_path.lower()},
                    )
                )
            else:
                problems.append(Problem(parsed.ref, parsed.reason, parsed.raw))
        return readings, problems, answers

    def close(self) -> None:
        self.client.close()


def _minutes_used(minutes: NamespaceMinutes) -> Decimal:
    """All minutes consumed this month: GitLab's `monthly_minutes_used` leaves out purchased minutes."""
    return (
        minutes.total_minutes_used if minutes.total_minutes_used is not None else minutes.monthly_minutes_used
    )


def _namespaces_page(body: Any) -> list[Any]:
    if not isinstance(body, list):
        raise SourceError(SOURCE, "unexpected answer: /namespaces did not return a list", path="/namespaces")
    return body


def _projects_page(body: Any) -> list[Any]:
    projects, problems = parse_projects(body)
    return [*projects, *problems]


def _project_readings(project: ProjectStorage) -> list[Reading]:
    attributes = {"project": project.path_with_namespace.lower()}
    if project.namespace_full_path:
        attributes["namespace"] = project.namespace_full_path.lower()
    app_topics = [
        topic.split(":", 1)[1].strip() for topic in project.topics if topic.lower().startswith("app:")
    ]
    if app_topics:
        attributes["topic_app"] = app_topics[0]
    consumer = f"project/{project.project_id}"
    return [
        Reading(
            consumer,
            product_id,
            "gauge",
            Decimal(project.sizes.get(field, 0)) / BYTES_PER_GB,
            attributes=attributes,
        )
        for field, product_id in SIZE_PRODUCTS.items()
    ]
