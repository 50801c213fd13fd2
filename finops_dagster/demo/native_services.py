"""Synthetic internal shared services served over real HTTP: GitLab, Artifactory and Cube.

The ``native`` domain reads services that only know *today's state*: GitLab and Artifactory
report what they store right now, GitLab's CI minutes and Cube's usage report are month-to-date
counters. The pipeline therefore persists a snapshot every night, and the demo must be able to
replay several nights. This simulator shows the state *as of any night* (:attr:`night`, settable)
and is built from the demo :class:`~finops_dagster.demo.estate.Estate`, so the applications are
the same as in every other domain:

- GitLab REST v4: ``/projects?statistics=true`` with keyset pagination (``Link rel="next"``),
  ``/namespaces`` with page numbers (``X-Next-Page``) and ``/namespaces/:id`` with the
  ``ci_minutes_usage`` block of root namespaces; ``PRIVATE-TOKEN`` or Bearer, optional rate limit;
- Artifactory ``/api/storageinfo``: human-readable sizes, ``usedSpaceInBytes`` on about half of
  the repositories, a ``TOTAL`` summary row last, one size nobody can parse;
- Cube, a generic internal service exposing ``domains/native/usage_report.openapi.yaml`` behind
  OIDC client credentials.

The clock convention is the private cloud's: the night's snapshot is taken at midnight UTC at the
start of :attr:`night`, so that day is not measured yet. Month-to-date counters therefore read 0 on
the night of the 1st (they reset) and the last day of a month is only ever seen by the report of a
past period (Cube), never by GitLab's current-month counter: exactly the loss a nightly snapshot
of a real GitLab suffers.

Everything stored or counted was created ``age`` before ``today`` and grows linearly since, so a
night before ``today`` shows smaller sizes and the average over a month differs from its last
night. Bodies are pure functions of (estate, seed, today, night, request): two simulators built
alike answer byte-identical JSON. Only OIDC tokens differ between runs (random, real-clock expiry).
"""

from __future__ import annotations

import datetime as dt
import math
import random
import re
import statistics
import threading
import time
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from itertools import accumulate
from typing import Any
from urllib.parse import unquote, urlencode

from finops_dagster.demo.estate import Estate
from finops_dagster.demo.simulated_http import PERIOD_PATTERN as PERIOD_PATTERN
from finops_dagster.demo.simulated_http import (
    BackgroundServer,
    Reply,
    Route,
    SimulatedApiError,
    SimulatedHandler,
    SimulatedServer,
    TokenStore,
    bearer_refusal,
    bearer_token,
    decimal_text,
    month_period,
    oidc_token_reply,
    same_secret,
    start_thread,
    token_page,
    totals_by_measure,
    usage_page_reply,
)

# --- GitLab ---------------------------------------------------------------------------------------

GITLAB_WEB_URL = "https://gitlab.demo.internal"
"""GitLab's configured external URL: ``web_url`` fields use it whatever host serves the API."""
GITLAB_DEFAULT_PER_PAGE = 20
GITLAB_MAX_PER_PAGE = 100
"""GitLab silently caps ``per_page`` at 100."""
KEYSET_UNAVAILABLE = "Keyset pagination is not yet available for this type of request"

STATISTICS_FIELDS: tuple[str, ...] = (
    "repository_size",
    "wiki_size",
    "lfs_objects_size",
    "job_artifacts_size",
    "pipeline_artifacts_size",
    "packages_size",
    "snippets_size",
    "uploads_size",
    "container_registry_size",
)
"""Size fields of a project's ``statistics`` block, in bytes."""
STORAGE_SIZE_FIELDS: tuple[str, ...] = STATISTICS_FIELDS[:-1]
"""What ``storage_size`` adds up: GitLab has long left the container registry out of it (and the
set changed between versions), which is why a client should sum the fields it bills itself."""

SIZE_PROFILE: tuple[tuple[str, float, float], ...] = (
    ("repository_size", 0.0, 30e6),
    ("wiki_size", 0.70, 2e6),
    ("lfs_objects_size", 0.75, 400e6),
    ("job_artifacts_size", 0.25, 350e6),
    ("pipeline_artifacts_size", 0.50, 5e6),
    ("packages_size", 0.70, 200e6),
    ("snippets_size", 0.90, 60e3),
    ("uploads_size", 0.40, 3e6),
    ("container_registry_size", 0.50, 1.5e9),
)
"""(field, share of projects where it is 0, median size in bytes for a typical project)."""
MIN_REPOSITORY_BYTES = 50_000
"""Small enough to be a real repository, large enough to grow by at least a byte every night."""
SIZE_WEIGHT_EXPONENT = 0.35
"""Dampens application weights: a 100 times heavier application has projects about 5 times larger."""

GITLAB_SUBGROUPS = ("backend", "frontend", "infra", "libs", "data", "mobile")
SUBGROUP_MIN_PROJECTS = 4
"""An application with at least this many projects splits some of them into subgroups."""
PROJECT_WORDS = (
    "api",
    "service",
    "batch",
    "web",
    "lib",
    "deploy",
    "docs",
    "worker",
    "gateway",
    "config",
    "tests",
    "etl",
    "helm-charts",
    "sdk",
    "scheduler",
    "adapter",
)
PERSONAL_PROJECTS = ("scratch", "dotfiles", "poc-kafka", "notes", "playground", "spike-graphql", "benchmarks")
GIVEN_NAMES = (
    "Alice",
    "Bruno",
    "Chloé",
    "David",
    "Emma",
    "Farid",
    "Giulia",
    "Hugo",
    "Inès",
    "Jonas",
    "Karin",
)
FAMILY_NAMES = ("Martin", "Bernard", "Dubois", "Moreau", "Laurent", "Garcia", "Roux", "Fontaine", "Meyer")
ORPHAN_GROUPS = ("sandbox", "archive-2019")
"""Top-level groups nobody owns; ``archive-2019`` holds archived projects."""
NON_APPLICATION_SHARE = 0.08
"""Share of projects in personal namespaces or orphan groups (no application by namespace)."""
PERSONAL_SHARE = 0.6
"""Of those, the share in personal (user) namespaces; the rest go to the orphan groups."""
TOPIC_SHARE = 0.30
"""Share of application projects carrying an ``app:<CODE>`` topic."""
PERSONAL_TOPIC_SHARE = 0.25
"""Share of personal projects carrying an ``app:<CODE>`` topic: the topic alone maps them."""
USERS = 14
MALFORMED_NEGATIVE = 2
MALFORMED_MISSING = 2
"""Projects with a negative ``job_artifacts_size`` (a drifted counter) or no ``statistics`` block."""
MIN_PROJECT_AGE_DAYS = 400
MAX_PROJECT_AGE_DAYS = 2500
"""Every project exists on any night a demo replays (up to 400 days back)."""

CI_MINUTES_PER_PROJECT_DAY = 25.0
"""CI minutes a typical active project uses on a working day."""
WEEKEND_CI_FACTOR = 0.25
QUOTA_NAMESPACES = 3
"""Root groups on a monthly quota (the others are unlimited, as on most self-managed instances)."""

# --- Artifactory ----------------------------------------------------------------------------------

PACKAGE_TYPES: tuple[tuple[str, str, float, float], ...] = (
    ("maven", "Maven", 3e6, 0.30),
    ("npm", "npm", 2e5, 0.20),
    ("docker", "Docker", 2.5e7, 0.20),
    ("pypi", "Pypi", 1e6, 0.10),
    ("generic", "Generic", 5e7, 0.10),
    ("helm", "Helm", 3e4, 0.05),
    ("nuget", "NuGet", 2e6, 0.05),
)
"""(key word, Artifactory packageType, average file size in bytes, draw weight)."""
REPO_TYPES: tuple[tuple[str, str, float, float], ...] = (
    ("LOCAL", "local", 0.60, 4e9),
    ("REMOTE", "remote", 0.15, 1.5e9),
    ("VIRTUAL", "virtual", 0.15, 0.0),
    ("FEDERATED", "fed", 0.10, 3e9),
)
"""(repoType, key suffix, draw weight, median used bytes): virtual repositories store nothing."""
REPO_KEY_PATTERN = re.compile(
    r"^(?P<application>[a-z][a-z0-9]*(?:-[0-9]+)?)-(?P<package>maven|npm|docker|pypi|generic|helm|nuget)"
    r"-(?P<kind>local|remote|virtual|fed)$"
)
"""Naming convention of application repositories (``pay-012-maven-local``)."""
SHARED_REPOSITORIES: tuple[tuple[str, str, str], ...] = (
    ("maven-central-remote", "REMOTE", "maven"),
    ("npmjs-remote", "REMOTE", "npm"),
    ("docker-hub-remote", "REMOTE", "docker"),
    ("pypi-org-remote", "REMOTE", "pypi"),
    ("libs-release", "VIRTUAL", "maven"),
    ("libs-snapshot", "VIRTUAL", "maven"),
    ("plugins-release", "VIRTUAL", "maven"),
    ("release-tools", "LOCAL", "generic"),
)
"""Repositories of the platform itself: no application, whatever their ``projectKey`` says."""
PROJECT_KEY_SHARE = 0.55
"""Share of conventionally named application repositories that carry ``projectKey``."""
LEGACY_SHARE = 0.08
"""Share of application repositories named before the convention (``pay-012-releases``): only
their ``projectKey`` tells the application."""
BYTES_SHARE = 0.5
"""Share of repositories that also report ``usedSpaceInBytes`` (newer Artifactory versions)."""
UNPARSEABLE_SIZE = "N/A"
FILESTORE_TOTAL_BYTES = 40 * 1024**4
FILESTORE_DIRECTORY = "/var/opt/jfrog/artifactory/data/artifactory/filestore"
DEDUPLICATION = 0.62
"""Binaries (deduplicated checksums) relative to artifacts: what ``optimization`` reports."""
MIN_REPOSITORY_AGE_DAYS = 300
MAX_REPOSITORY_AGE_DAYS = 2500

# --- Cube (generic usage report) ------------------------------------------------------------------

CUBE_SERVICE = "cube"
CUBE_PRODUCTS: tuple[tuple[str, str], ...] = (
    ("cube_query_hours", "hour"),
    ("cube_storage_gb_month", "GB-month"),
)
"""(product, unit) Cube reports, as listed in ``domains/native/usage_report_products.csv``."""
CUBE_TEAMS = ("dashboards", "reporting", "analytics", "exports")
CONSUMER_NAME_PATTERN = re.compile(
    r"^(?P<application>[a-z][a-z0-9]*(?:-[0-9]+)?)-(?P<team>dashboards|reporting|analytics|exports)$"
)
"""Naming convention of Cube consumers (``pay-012-dashboards``)."""
CUBE_ORPHANS = ("adhoc-analysts", "data-science-lab", "cube-sandbox", "training")
CUBE_ORPHAN_SHARE = 0.10
CUBE_UNTAGGED_SHARE = 0.15
"""Share of application consumers whose items do not carry the application code."""
QUERY_HOURS_PER_DAY = 6.0
STORAGE_GB = 150.0
HOURS_QUANTUM = Decimal("0.01")
GB_MONTH_QUANTUM = Decimal("0.000001")
REPORT_DEFAULT_PAGE_SIZE = 100
REPORT_MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class Credentials:
    """What the simulated services accept; the defaults are the demo's (not secret) values."""

    gitlab_token: str = field(default="glpat-demo-finops-reader", repr=False)
    artifactory_token: str = field(default="demo-artifactory-access-token", repr=False)
    oidc_client_id: str = "finops-dagster"
    oidc_client_secret: str = field(default="demo-oidc-client-secret", repr=False)
    token_ttl_seconds: int = 3600


def midnight(night: dt.date) -> dt.datetime:
    """The instant a night's snapshot is taken: midnight UTC at the start of that date."""
    return dt.datetime.combine(night, dt.time(), tzinfo=dt.UTC)


def _grown(value_today: int, age: dt.timedelta, today: dt.date, night: dt.date) -> int:
    """A quantity that grew linearly from 0 at creation (``age`` before today) to its value today."""
    alive = (midnight(night) - (midnight(today) - age)).total_seconds()
    return math.floor(value_today * alive / age.total_seconds())


# --- GitLab data ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GitlabNamespace:
    """A GitLab namespace: a group, a subgroup (``parent``) or a user's personal namespace.

    ``application`` is the truth the tests compare against (None for users and orphan groups); the
    API only exposes the path. ``quota`` is the monthly CI minutes limit of a root group, if any.
    """

    id: int
    name: str
    path: str
    kind: str
    parent: GitlabNamespace | None
    application: str | None
    quota: int | None = None

    @property
    def full_path(self) -> str:
        """``pay-012/backend``: the parents' paths and this one."""
        return self.path if self.parent is None else f"{self.parent.full_path}/{self.path}"

    @property
    def full_name(self) -> str:
        """``PAY-012 / backend``, as GitLab shows it."""
        return self.name if self.parent is None else f"{self.parent.full_name} / {self.name}"

    @property
    def root(self) -> GitlabNamespace:
        """The top-level namespace, which carries the CI minutes of its whole tree."""
        return self if self.parent is None else self.parent.root


@dataclass(frozen=True)
class GitlabProject:
    """A GitLab project created ``age`` before the simulator's ``today``.

    ``sizes`` are its statistics fields in bytes as of today (aligned with :data:`STATISTICS_FIELDS`);
    a night before today shows them prorated on the time elapsed since creation. ``malformed`` is
    None, ``"negative_size"`` or ``"missing_statistics"``. ``application`` is the truth: the
    namespace's application, or the topic's for a personal project that carries one.
    """

    id: int
    name: str
    path: str
    namespace: GitlabNamespace
    topics: tuple[str, ...]
    application: str | None
    age: dt.timedelta
    sizes: tuple[int, ...]
    commits: int
    ci_minutes_per_day: float
    archived: bool = False
    malformed: str | None = None

    @property
    def path_with_namespace(self) -> str:
        return f"{self.namespace.full_path}/{self.path}"

    def created_at(self, today: dt.date) -> dt.datetime:
        return midnight(today) - self.age

    def exists(self, today: dt.date, night: dt.date) -> bool:
        """Whether the project was already created at the night's snapshot."""
        return self.created_at(today) < midnight(night)

    def statistics(self, today: dt.date, night: dt.date) -> dict[str, int]:
        """The ``statistics`` block as of ``night`` (even for a malformed project: the truth)."""
        sizes = {
            name: _grown(value, self.age, today, night)
            for name, value in zip(STATISTICS_FIELDS, self.sizes, strict=True)
        }
        if self.malformed == "negative_size":  # a drifted counter: constant, whatever the night
            today_value = self.sizes[STATISTICS_FIELDS.index("job_artifacts_size")]
            sizes["job_artifacts_size"] = -(today_value or 987_654_321)
        return {
            "commit_count": max(1, _grown(self.commits, self.age, today, night)),
            "storage_size": sum(sizes[name] for name in STORAGE_SIZE_FIELDS),
            **sizes,
        }


def gitlab_projects(estate: Estate, *, projects: int = 400, seed: int = 42) -> list[GitlabProject]:
    """Draw the demo's GitLab projects, sorted by id (creation order).

    About 92% live under a group named after their application (``pay-012``, or a subgroup
    ``pay-012/backend`` for applications with several projects), drawn by application weight so
    heavy applications own many and larger projects; the rest live in personal namespaces or in the
    orphan groups ``sandbox`` and ``archive-2019``. Some carry an ``app:<CODE>`` topic; a few are
    malformed (a negative size, no statistics block), as real instances have.
    """
    if projects < MALFORMED_NEGATIVE + MALFORMED_MISSING + 1:
        raise ValueError(f"projects must be at least {MALFORMED_NEGATIVE + MALFORMED_MISSING + 1}")
    rng = random.Random(f"native-gitlab:{seed}")
    by_code = estate.by_code()
    typical = statistics.median(estate.weights)
    orphans = max(1, round(projects * NON_APPLICATION_SHARE))
    cum_weights = list(accumulate(estate.weights))
    drawn = rng.choices(estate.codes, cum_weights=cum_weights, k=projects - orphans)
    per_application = Counter(drawn)

    # (namespace spec, owner code or None, kind): ids are given once every namespace is known.
    specs: list[tuple[str, str, str | None, str | None]] = []  # (path, name, parent path, application)
    homes: dict[str, list[str]] = {}
    for code in sorted(per_application):
        path = code.lower()
        specs.append((path, code, None, code))
        homes[code] = [path]
        count = per_application[code]
        if count >= SUBGROUP_MIN_PROJECTS:
            subgroups = rng.sample(GITLAB_SUBGROUPS, k=min(3, count // SUBGROUP_MIN_PROJECTS))
            for subgroup in sorted(subgroups):
                specs.append((subgroup, subgroup, path, code))
                homes[code].append(f"{path}/{subgroup}")
    for group in ORPHAN_GROUPS:
        specs.append((group, group, None, None))
    users: list[str] = []
    while len(users) < USERS:
        given, family = rng.choice(GIVEN_NAMES), rng.choice(FAMILY_NAMES)
        user = f"{given} {family}"
        if user not in users:
            users.append(user)
            specs.append((_user_path(given, family), user, None, None))
    namespaces = _namespaces(specs, rng)
    by_path = {namespace.full_path: namespace for namespace in namespaces}
    quota_roots = rng.sample(
        sorted(code.lower() for code in per_application), k=min(QUOTA_NAMESPACES, len(per_application))
    )

    drafts: list[dict[str, Any]] = []
    used_paths: set[str] = set()
    for code in drawn:
        weight = by_code[code].weight
        home = homes[code][0] if len(homes[code]) == 1 or rng.random() < 0.4 else rng.choice(homes[code][1:])
        topics: tuple[str, ...] = (f"app:{code}",) if rng.random() < TOPIC_SHARE else ()
        drafts.append(_project_draft(by_path[home], code, topics, weight / typical, used_paths, rng))
    personal = [namespace for namespace in namespaces if namespace.kind == "user"]
    for _ in range(orphans):
        if rng.random() < PERSONAL_SHARE:
            home_namespace = rng.choice(personal)
            code = rng.choices(estate.codes, cum_weights=cum_weights)[0]
            tagged = rng.random() < PERSONAL_TOPIC_SHARE
            draft = _project_draft(
                home_namespace,
                code if tagged else None,
                (f"app:{code}", "poc") if tagged else (),
                0.3,
                used_paths,
                rng,
                PERSONAL_PROJECTS,
            )
        else:
            home_namespace = by_path[rng.choice(ORPHAN_GROUPS)]
            draft = _project_draft(home_namespace, None, (), 0.5, used_paths, rng)
            draft["archived"] = home_namespace.path == "archive-2019"
        drafts.append(draft)

    drafts.sort(key=lambda draft: draft["age"], reverse=True)  # ids follow creation
    for draft in drafts:
        if draft.get("archived"):
            draft["ci_minutes"] = 0.0
    with_quota = _with_quotas(namespaces, _quotas(drafts, quota_roots))
    malformed = rng.sample(range(len(drafts)), k=MALFORMED_NEGATIVE + MALFORMED_MISSING)
    result = []
    project_id = 100
    for index, draft in enumerate(drafts):
        project_id += rng.randint(1, 25)
        kind = None
        if index in malformed:
            kind = "negative_size" if malformed.index(index) < MALFORMED_NEGATIVE else "missing_statistics"
        namespace = with_quota[draft["namespace"].full_path]
        result.append(
            GitlabProject(
                id=project_id,
                name=draft["path"].replace("-", " ").title() if namespace.kind == "group" else draft["path"],
                path=draft["path"],
                namespace=namespace,
                topics=draft["topics"],
                application=draft["application"],
                age=draft["age"],
                sizes=draft["sizes"],
                commits=draft["commits"],
                ci_minutes_per_day=draft["ci_minutes"],
                archived=bool(draft.get("archived")),
                malformed=kind,
            )
        )
    return result


def _user_path(given: str, family: str) -> str:
    plain = given.lower().translate(str.maketrans("éèàç", "eeac"))
    return f"{plain[0]}{family.lower()}"


def _unique(base: str, namespace_path: str, used: set[str]) -> str:
    """A project path not yet used in the namespace (``api``, ``api-2``...)."""
    path, generation = base, 1
    while f"{namespace_path}/{path}" in used:
        generation += 1
        path = f"{base}-{generation}"
    used.add(f"{namespace_path}/{path}")
    return path


def _namespaces(
    specs: list[tuple[str, str, str | None, str | None]], rng: random.Random
) -> list[GitlabNamespace]:
    """Give ids to the namespace specs: roots first, in a shuffled order, with gaps, as on a real
    instance where groups and users were created over the years; subgroups after their parents."""
    roots = [spec for spec in specs if spec[2] is None]
    children = [spec for spec in specs if spec[2] is not None]
    rng.shuffle(roots)
    rng.shuffle(children)
    users = {spec[0] for spec in specs if spec[3] is None and spec[0] not in ORPHAN_GROUPS}
    result: dict[str, GitlabNamespace] = {}
    namespace_id = 10
    for path, name, parent, application in [*roots, *children]:
        namespace_id += rng.randint(1, 12)
        parent_namespace = result[parent] if parent is not None else None
        kind = "user" if path in users and parent is None else "group"
        namespace = GitlabNamespace(namespace_id, name, path, kind, parent_namespace, application)
        result[namespace.full_path] = namespace
    return sorted(result.values(), key=lambda namespace: namespace.id)


def _project_draft(
    namespace: GitlabNamespace,
    application: str | None,
    topics: tuple[str, ...],
    relative_weight: float,
    used_paths: set[str],
    rng: random.Random,
    words: Sequence[str] = PROJECT_WORDS,
) -> dict[str, Any]:
    """Everything a project needs but its id: sizes skewed by its application's weight."""
    factor = relative_weight**SIZE_WEIGHT_EXPONENT
    sizes = []
    for name, zero_share, median in SIZE_PROFILE:
        if name != "repository_size" and rng.random() < zero_share:
            sizes.append(0)
            continue
        value = round(median * factor * rng.lognormvariate(0, 0.9))
        sizes.append(max(MIN_REPOSITORY_BYTES, value) if name == "repository_size" else max(1, value))
    age = dt.timedelta(
        days=rng.randint(MIN_PROJECT_AGE_DAYS, MAX_PROJECT_AGE_DAYS - 1), seconds=rng.randrange(86400)
    )
    return {
        "namespace": namespace,
        "application": application,
        "topics": topics,
        "path": _unique(rng.choice(words), namespace.full_path, used_paths),
        "age": age,
        "sizes": tuple(sizes),
        "commits": max(1, round(age.days * factor * rng.uniform(0.2, 3.0))),
        "ci_minutes": CI_MINUTES_PER_PROJECT_DAY * factor * rng.lognormvariate(0, 0.7),
    }


def _quotas(drafts: list[dict[str, Any]], roots: list[str]) -> dict[str, int]:
    """A monthly quota for a few root groups, below their usual month so purchased minutes show."""
    per_root: dict[str, float] = {}
    for draft in drafts:
        root = draft["namespace"].root.full_path
        per_root[root] = per_root.get(root, 0.0) + draft["ci_minutes"]
    return {root: max(100, round(per_root.get(root, 0.0) * 12 / 100) * 100) for root in roots}


def _with_quotas(namespaces: list[GitlabNamespace], quotas: dict[str, int]) -> dict[str, GitlabNamespace]:
    """The namespaces by full path, roots carrying their quota (parents rebuilt before children)."""
    result: dict[str, GitlabNamespace] = {}
    for namespace in sorted(namespaces, key=lambda item: item.full_path.count("/")):
        parent = result[namespace.parent.full_path] if namespace.parent is not None else None
        quota = quotas.get(namespace.full_path) if parent is None else None
        result[namespace.full_path] = replace(namespace, parent=parent, quota=quota)
    return result


def gitlab_namespaces(projects: Sequence[GitlabProject]) -> list[GitlabNamespace]:
    """Every namespace holding a project, and their parents, sorted by id."""
    found: dict[int, GitlabNamespace] = {}
    for project in projects:
        namespace: GitlabNamespace | None = project.namespace
        while namespace is not None:
            found[namespace.id] = namespace
            namespace = namespace.parent
    return [found[key] for key in sorted(found)]


# --- Artifactory data -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ArtifactoryRepository:
    """One repository, created ``age`` before today; sizes and counts as of today.

    ``application`` is the truth; the API shows ``projectKey`` (None: the field is absent) and the
    key. ``reports_bytes`` says whether the row carries ``usedSpaceInBytes``; ``unparseable`` makes
    its ``usedSpace`` a value no client can read (its bytes still count in the TOTAL row).
    """

    key: str
    repo_type: str
    package_type: str
    application: str | None
    project_key: str | None
    age: dt.timedelta
    used_bytes: int
    files: int
    folders: int
    reports_bytes: bool
    unparseable: bool = False

    def used_bytes_at(self, today: dt.date, night: dt.date) -> int:
        return max(0, _grown(self.used_bytes, self.age, today, night))

    def counts_at(self, today: dt.date, night: dt.date) -> tuple[int, int]:
        """(files, folders) as of the night."""
        return (
            max(0, _grown(self.files, self.age, today, night)),
            max(0, _grown(self.folders, self.age, today, night)),
        )


def artifactory_repositories(
    estate: Estate, *, repos: int = 120, seed: int = 42
) -> list[ArtifactoryRepository]:
    """Draw the demo's Artifactory repositories, sorted by key.

    The platform's shared repositories (remotes of public registries, virtual aggregates) first,
    then application repositories drawn by weight: ``<lower code>-<package>-<local|remote|virtual|fed>``,
    a few with a pre-convention name. Some carry ``projectKey`` (the lower application code), the
    others rely on the naming rules. Exactly one LOCAL repository reports an unparseable size.
    """
    if repos <= len(SHARED_REPOSITORIES):
        raise ValueError(f"repos must be more than the {len(SHARED_REPOSITORIES)} shared repositories")
    rng = random.Random(f"native-artifactory:{seed}")
    typical = statistics.median(estate.weights)
    packages = {word: (label, average) for word, label, average, _ in PACKAGE_TYPES}
    result: list[ArtifactoryRepository] = []
    for key, repo_type, package in SHARED_REPOSITORIES:
        project_key = "default" if rng.random() < 0.5 else None
        result.append(_repository(key, repo_type, package, None, project_key, 1.0, packages, rng))
    cum_weights = list(accumulate(estate.weights))
    package_weights = [weight for *_, weight in PACKAGE_TYPES]
    type_weights = [weight for _, _, weight, _ in REPO_TYPES]
    used = {repo.key for repo in result}
    by_code = estate.by_code()
    while len(result) < repos:
        code = rng.choices(estate.codes, cum_weights=cum_weights)[0]
        package = rng.choices([word for word, *_ in PACKAGE_TYPES], weights=package_weights)[0]
        repo_type, suffix = rng.choices(
            [(name, suffix) for name, suffix, _, _ in REPO_TYPES], weights=type_weights
        )[0]
        legacy = repo_type == "LOCAL" and rng.random() < LEGACY_SHARE
        key = (
            f"{code.lower()}-{rng.choice(('releases', 'snapshots'))}"
            if legacy
            else f"{code.lower()}-{package}-{suffix}"
        )
        if key in used:
            continue
        used.add(key)
        project_key = code.lower() if legacy or rng.random() < PROJECT_KEY_SHARE else None
        relative = by_code[code].weight / typical
        result.append(_repository(key, repo_type, package, code, project_key, relative, packages, rng))
    result.sort(key=lambda repo: repo.key)
    candidates = [
        index for index, repo in enumerate(result) if repo.repo_type == "LOCAL" and repo.application
    ]
    broken = rng.choice(candidates)
    result[broken] = replace(result[broken], reports_bytes=False, unparseable=True)
    return result


def _repository(
    key: str,
    repo_type: str,
    package: str,
    application: str | None,
    project_key: str | None,
    relative_weight: float,
    packages: dict[str, tuple[str, float]],
    rng: random.Random,
) -> ArtifactoryRepository:
    label, average_file = packages[package]
    median = next(bytes_ for name, _, _, bytes_ in REPO_TYPES if name == repo_type)
    used = round(median * relative_weight**SIZE_WEIGHT_EXPONENT * rng.lognormvariate(0, 1.0)) if median else 0
    files = max(1, round(used / average_file * rng.uniform(0.7, 1.3))) if used else 0
    folders = round(files * rng.uniform(0.2, 0.6)) if used else 0
    age = dt.timedelta(
        days=rng.randint(MIN_REPOSITORY_AGE_DAYS, MAX_REPOSITORY_AGE_DAYS - 1), seconds=rng.randrange(86400)
    )
    return ArtifactoryRepository(
        key=key,
        repo_type=repo_type,
        package_type=label,
        application=application,
        project_key=project_key,
        age=age,
        used_bytes=used,
        files=files,
        folders=folders,
        reports_bytes=rng.random() < BYTES_SHARE,
    )


def readable_size(size: int) -> str:
    """Artifactory's human-readable size: ``"512 bytes"``, ``"34.46 MB"`` (1 KB = 1024 bytes)."""
    if size < 1024:
        return f"{size} bytes"
    value = float(size)
    for unit in ("KB", "MB", "GB"):
        value /= 1024
        if value < 1024:
            return f"{value:.2f} {unit}"
    return f"{value / 1024:.2f} TB"


def _thousands(count: int) -> str:
    return f"{count:,}"


def _percentage(part: int, whole: int) -> str:
    return f"{part * 100 / whole:.2f}%" if part and whole else "0%"


# --- Cube data ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CubeConsumer:
    """A team or project querying Cube; ``application`` is the truth, ``reports_application`` says
    whether Cube's items carry it (else the consumer key must be resolved by the naming rules)."""

    key: str
    application: str | None
    reports_application: bool
    query_hours_per_day: float
    storage_gb: float


def cube_consumers(estate: Estate, *, consumers: int = 60, seed: int = 42) -> list[CubeConsumer]:
    """Draw Cube's consumers, sorted by key: ``<lower code>-<team>`` for applications (by weight),
    a few orphans (``adhoc-analysts``) that belong to nobody."""
    if consumers < 1:
        raise ValueError("consumers must be at least 1")
    rng = random.Random(f"native-cube:{seed}")
    typical = statistics.median(estate.weights)
    by_code = estate.by_code()
    orphans = round(consumers * CUBE_ORPHAN_SHARE)
    if consumers - orphans > len(estate.applications) * len(CUBE_TEAMS):
        raise ValueError("more application consumers than applications × teams")
    cum_weights = list(accumulate(estate.weights))
    result: dict[str, CubeConsumer] = {}
    while len(result) < consumers - orphans:
        code = rng.choices(estate.codes, cum_weights=cum_weights)[0]
        key = f"{code.lower()}-{rng.choice(CUBE_TEAMS)}"
        if key in result:
            continue
        factor = (by_code[code].weight / typical) ** SIZE_WEIGHT_EXPONENT
        result[key] = CubeConsumer(
            key=key,
            application=code,
            reports_application=rng.random() >= CUBE_UNTAGGED_SHARE,
            query_hours_per_day=QUERY_HOURS_PER_DAY * factor * rng.lognormvariate(0, 0.5),
            storage_gb=round(STORAGE_GB * factor * rng.lognormvariate(0, 0.8), 1),
        )
    for index in range(orphans):
        base = CUBE_ORPHANS[index % len(CUBE_ORPHANS)]
        key = base if index < len(CUBE_ORPHANS) else f"{base}-{index // len(CUBE_ORPHANS) + 1}"
        result[key] = CubeConsumer(
            key, None, False, QUERY_HOURS_PER_DAY * rng.uniform(0.2, 1.0), round(rng.uniform(5, 80), 1)
        )
    return [result[key] for key in sorted(result)]


# --- the simulator --------------------------------------------------------------------------------


class NativeServicesSimulator:
    """The three services' data, the demo's ``today`` and the settable :attr:`night`.

    Every method builds an API body as of :attr:`night` and raises :class:`SimulatedApiError` for a
    request the real service refuses; the HTTP layer (:func:`serve`) adds authentication, rate
    limiting, pagination headers and each service's error format. ``gitlab_rate_limit`` (requests
    per second over all GitLab routes, None: unlimited) may be changed at any time.
    """

    def __init__(
        self,
        estate: Estate,
        *,
        today: dt.date,
        seed: int = 42,
        projects: int = 400,
        repos: int = 120,
        consumers: int = 60,
        credentials: Credentials | None = None,
        gitlab_rate_limit: int | None = None,
    ) -> None:
        self.today = today
        self._night = today
        self.credentials = credentials or Credentials()
        self.gitlab_rate_limit = gitlab_rate_limit
        self.projects: tuple[GitlabProject, ...] = tuple(
            gitlab_projects(estate, projects=projects, seed=seed)
        )
        self.namespaces: tuple[GitlabNamespace, ...] = tuple(gitlab_namespaces(self.projects))
        self.repositories: tuple[ArtifactoryRepository, ...] = tuple(
            artifactory_repositories(estate, repos=repos, seed=seed)
        )
        self.consumers: tuple[CubeConsumer, ...] = tuple(
            cube_consumers(estate, consumers=consumers, seed=seed)
        )
        self._namespace_by_id = {namespace.id: namespace for namespace in self.namespaces}
        self._namespace_by_path = {namespace.full_path: namespace for namespace in self.namespaces}
        self._minutes_base: dict[int, float] = {}
        for project in self.projects:
            root = project.namespace.root.id
            self._minutes_base[root] = self._minutes_base.get(root, 0.0) + project.ci_minutes_per_day
        self._daily_minutes: dict[tuple[int, dt.date], int] = {}
        self._daily_hours: dict[tuple[str, dt.date], Decimal] = {}
        self._visible: dict[dt.date, tuple[list[GitlabProject], list[int]]] = {}
        self._lock = threading.Lock()

    @property
    def night(self) -> dt.date:
        """The night every body describes (default: ``today``); set it to replay another night."""
        return self._night

    @night.setter
    def night(self, value: dt.date) -> None:
        if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
            raise TypeError("night must be a datetime.date")
        self._night = value

    # --- GitLab projects ------------------------------------------------------------------------

    def gitlab_project(self, project: GitlabProject, *, statistics: bool = True) -> dict[str, Any]:
        """One entry of ``GET /projects`` as of the night (fields trimmed to what the samples show)."""
        namespace = project.namespace
        body: dict[str, Any] = {
            "id": project.id,
            "description": None,
            "name": project.name,
            "name_with_namespace": f"{namespace.full_name} / {project.name}",
            "path": project.path,
            "path_with_namespace": project.path_with_namespace,
            "created_at": _gitlab_time(project.created_at(self.today)),
            "default_branch": "main",
            "topics": list(project.topics),
            "web_url": f"{GITLAB_WEB_URL}/{project.path_with_namespace}",
            "last_activity_at": _gitlab_time(self._last_activity(project)),
            "namespace": _namespace_reference(namespace),
            "archived": project.archived,
            "visibility": "internal" if namespace.kind == "group" else "private",
        }
        if statistics and project.malformed != "missing_statistics":
            body["statistics"] = project.statistics(self.today, self.night)
        body["container_registry_image_prefix"] = f"registry.demo.internal/{project.path_with_namespace}"
        return body

    def _last_activity(self, project: GitlabProject) -> dt.datetime:
        """Some time the day before the night (or long ago for an archived project)."""
        rng = random.Random(f"activity:{project.id}:{self.night.isoformat()}")
        back = dt.timedelta(days=rng.randint(200, 400)) if project.archived else dt.timedelta(0)
        moment = midnight(self.night) - back - dt.timedelta(seconds=rng.randrange(1, 86400))
        return max(moment, project.created_at(self.today))

    def _visible_projects(self) -> list[GitlabProject]:
        return list(self._visible_at(self.night)[0])

    def _visible_at(self, night: dt.date) -> tuple[list[GitlabProject], list[int]]:
        """The projects existing at the night's snapshot, by id, and their ids (for bisection):
        computed once per night, so paging through a large instance stays linear."""
        with self._lock:
            cached = self._visible.get(night)
        if cached is None:
            projects = [project for project in self.projects if project.exists(self.today, night)]
            cached = (projects, [project.id for project in projects])
            with self._lock:
                self._visible[night] = cached
        return cached

    def gitlab_projects_keyset(
        self,
        *,
        id_after: int | None = None,
        id_before: int | None = None,
        sort: str = "desc",
        per_page: int = GITLAB_DEFAULT_PER_PAGE,
        statistics: bool = True,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """A keyset page ordered by id: (projects, the id the next page starts after/before, or None).

        As GitLab, the cursor is the last id of the page and a next page exists only if more
        projects follow; ``per_page`` is capped at 100.
        """
        if sort not in ("asc", "desc"):
            raise SimulatedApiError("invalid_sort", "sort does not have a valid value")
        per_page = _gitlab_per_page(per_page)
        visible, ids = self._visible_at(self.night)
        low = bisect_right(ids, id_after) if id_after is not None else 0
        high = bisect_left(ids, id_before) if id_before is not None else len(ids)
        if sort == "asc":
            page = visible[low : min(high, low + per_page)]
        else:
            page = visible[max(low, high - per_page) : high][::-1]
        following = page[-1].id if high - low > per_page else None
        return [self.gitlab_project(project, statistics=statistics) for project in page], following

    def gitlab_projects_offset(
        self,
        *,
        page: int = 1,
        per_page: int = GITLAB_DEFAULT_PER_PAGE,
        sort: str = "desc",
        statistics: bool = True,
    ) -> tuple[list[dict[str, Any]], int]:
        """An offset page (GitLab's default pagination, newest first): (projects, total count)."""
        if sort not in ("asc", "desc"):
            raise SimulatedApiError("invalid_sort", "sort does not have a valid value")
        candidates = self._visible_projects()
        if sort == "desc":
            candidates.reverse()
        items = _offset_slice(candidates, page, _gitlab_per_page(per_page))
        return [self.gitlab_project(project, statistics=statistics) for project in items], len(candidates)

    # --- GitLab namespaces and CI minutes -------------------------------------------------------

    def daily_ci_minutes(self, namespace: GitlabNamespace, day: dt.date) -> int:
        """CI minutes a root namespace's tree used on ``day`` (fewer on weekends), seeded by the day."""
        root = namespace.root
        key = (root.id, day)
        with self._lock:
            cached = self._daily_minutes.get(key)
        if cached is not None:
            return cached
        base = self._minutes_base.get(root.id, 0.0)
        rng = random.Random(f"ci-minutes:{root.id}:{day.isoformat()}")
        level = rng.uniform(0.6, 1.4) * (WEEKEND_CI_FACTOR if day.weekday() >= 5 else 1.0)
        minutes = round(base * level)
        with self._lock:
            self._daily_minutes[key] = minutes
        return minutes

    def ci_minutes_month_to_date(self, namespace: GitlabNamespace) -> int:
        """Minutes of the night's month used before the night: 0 on the night of the 1st (reset)."""
        first = self.night.replace(day=1)
        return sum(
            self.daily_ci_minutes(namespace, first + dt.timedelta(days=offset))
            for offset in range((self.night - first).days)
        )

    def gitlab_namespace(self, namespace: GitlabNamespace) -> dict[str, Any]:
        """``GET /namespaces/:id`` as of the night.

        Root namespaces (groups and users) carry ``ci_minutes_usage`` for the whole tree, month to
        date; subgroups do not (the quota lives on the root). ``total_minutes_used`` is everything
        used this month, ``monthly_minutes_used`` what the monthly quota covered and
        ``purchased_minutes_used`` the rest, so monthly + purchased = total, as GitLab computes it.
        """
        body: dict[str, Any] = {
            "id": namespace.id,
            "name": namespace.name,
            "path": namespace.path,
            "kind": namespace.kind,
            "full_path": namespace.full_path,
            "parent_id": namespace.parent.id if namespace.parent is not None else None,
            "avatar_url": None,
            "web_url": f"{GITLAB_WEB_URL}/{_web_prefix(namespace)}{namespace.full_path}",
        }
        if namespace.parent is not None:
            return body
        total = self.ci_minutes_month_to_date(namespace)
        purchased = max(0, total - namespace.quota) if namespace.quota is not None else 0
        body.update(
            {
                "shared_runners_minutes_limit": namespace.quota,
                "ci_minutes_usage": {
                    "total_minutes_used": total,
                    "monthly_minutes_used": total - purchased,
                    "purchased_minutes_used": purchased,
                },
                "extra_shared_runners_minutes_limit": namespace.quota,
                "additional_purchased_storage_size": 0,
                "additional_purchased_storage_ends_on": None,
                "billable_members_count": 1 + namespace.id % 17,
                "seats_in_use": 0,
                "max_seats_used": 0,
                "max_seats_used_changed_at": None,
                "end_date": None,
            }
        )
        return body

    def find_namespace(self, reference: str) -> GitlabNamespace:
        """A namespace by id or URL-decoded full path, as ``/namespaces/:id`` accepts; else a 404."""
        namespace = (
            self._namespace_by_id.get(int(reference))
            if reference.isdigit()
            else self._namespace_by_path.get(reference)
        )
        if namespace is None:
            raise SimulatedApiError("not_found", "404 Namespace Not Found", status=404)
        return namespace

    def gitlab_namespaces_page(
        self, *, page: int = 1, per_page: int = GITLAB_DEFAULT_PER_PAGE
    ) -> tuple[list[dict[str, Any]], int]:
        """``GET /namespaces``: (one page ordered by id, total count); past the end an empty page."""
        items = _offset_slice(list(self.namespaces), page, _gitlab_per_page(per_page))
        return [self.gitlab_namespace(namespace) for namespace in items], len(self.namespaces)

    # --- Artifactory ----------------------------------------------------------------------------

    def artifactory_storageinfo(self) -> dict[str, Any]:
        """``GET /api/storageinfo`` as of the night: one row per repository by key, then ``TOTAL``."""
        rows = []
        total_bytes = sum(repo.used_bytes_at(self.today, self.night) for repo in self.repositories)
        total_files = total_folders = 0
        for repo in self.repositories:
            used = repo.used_bytes_at(self.today, self.night)
            files, folders = repo.counts_at(self.today, self.night)
            total_files += files
            total_folders += folders
            row: dict[str, Any] = {
                "repoKey": repo.key,
                "repoType": repo.repo_type,
                "foldersCount": folders,
                "filesCount": files,
                "usedSpace": UNPARSEABLE_SIZE if repo.unparseable else readable_size(used),
            }
            if repo.reports_bytes:
                row["usedSpaceInBytes"] = used
            row.update({"itemsCount": files + folders, "packageType": repo.package_type})
            if repo.project_key is not None:
                row["projectKey"] = repo.project_key
            row["percentage"] = _percentage(used, total_bytes)
            rows.append(row)
        rows.append(
            {
                "repoKey": "TOTAL",
                "repoType": "NA",
                "foldersCount": total_folders,
                "filesCount": total_files,
                "usedSpace": readable_size(total_bytes),
                "itemsCount": total_files + total_folders,
            }
        )
        binaries = round(total_bytes * DEDUPLICATION)
        return {
            "binariesSummary": {
                "binariesCount": _thousands(round(total_files * DEDUPLICATION)),
                "binariesSize": readable_size(binaries),
                "artifactsSize": readable_size(total_bytes),
                "optimization": _percentage(binaries, total_bytes),
                "itemsCount": _thousands(total_files + total_folders),
                "artifactsCount": _thousands(total_files),
            },
            "fileStoreSummary": {
                "storageType": "filesystem",
                "storageDirectory": FILESTORE_DIRECTORY,
                "totalSpace": readable_size(FILESTORE_TOTAL_BYTES),
                "usedSpace": f"{readable_size(binaries)} ({_percentage(binaries, FILESTORE_TOTAL_BYTES)})",
                "freeSpace": (
                    f"{readable_size(FILESTORE_TOTAL_BYTES - binaries)} "
                    f"({_percentage(FILESTORE_TOTAL_BYTES - binaries, FILESTORE_TOTAL_BYTES)})"
                ),
            },
            "repositoriesSummaryList": rows,
        }

    # --- Cube usage report ----------------------------------------------------------------------

    def _daily_query_hours(self, consumer: CubeConsumer, day: dt.date) -> Decimal:
        key = (consumer.key, day)
        with self._lock:
            cached = self._daily_hours.get(key)
        if cached is not None:
            return cached
        rng = random.Random(f"cube:{consumer.key}:{day.isoformat()}")
        level = rng.uniform(0.5, 1.5) * (0.3 if day.weekday() >= 5 else 1.0)
        hours = Decimal(consumer.query_hours_per_day * level).quantize(HOURS_QUANTUM)
        with self._lock:
            self._daily_hours[key] = hours
        return hours

    def cube_quantities(self, period: str) -> list[tuple[CubeConsumer, str, str, Decimal]]:
        """(consumer, product, unit, exact quantity) of every non-zero measure of ``YYYY-MM``.

        Measured over the period's days before the night: month-to-date for the night's month,
        final for a past month, nothing for a month not started (nor on the night of its 1st).
        Storage is GB-month: the consumer's GB prorated on the days measured (6 decimals).
        """
        first, days_in_month = month_period(period)
        end = min(self.night, first + dt.timedelta(days=days_in_month))
        measured = max(0, (end - first).days)
        quantities = []
        for consumer in self.consumers:
            hours = sum(
                (
                    self._daily_query_hours(consumer, first + dt.timedelta(days=offset))
                    for offset in range(measured)
                ),
                Decimal(0),
            )
            storage = (Decimal(str(consumer.storage_gb)) * measured / days_in_month).quantize(
                GB_MONTH_QUANTUM
            )
            values = {"cube_query_hours": hours, "cube_storage_gb_month": storage}
            for product, unit in CUBE_PRODUCTS:
                if values[product]:
                    quantities.append((consumer, product, unit, values[product]))
        return quantities

    def cube_items(self, period: str) -> list[dict[str, Any]]:
        """Every item of the period in page order, ``quantity`` as an exact decimal string."""
        return [
            {
                "application": consumer.application if consumer.reports_application else None,
                "consumer": consumer.key,
                "product": product,
                "unit": unit,
                "quantity": decimal_text(quantity),
            }
            for consumer, product, unit, quantity in self.cube_quantities(period)
        ]

    def cube_totals(self, period: str) -> dict[str, Decimal]:
        """Exact total per product of the period, what the pages must add up to."""
        return totals_by_measure(self.cube_quantities(period))

    def cube_usage_report(
        self, period: str, *, page_token: str | None = None, page_size: int = REPORT_DEFAULT_PAGE_SIZE
    ) -> dict[str, Any]:
        """``GET /v1/usage-report``: one page; the token is opaque and bound to its period."""
        items, next_page_token = token_page(
            self.cube_items,
            period,
            page_token=page_token,
            page_size=page_size,
            max_page_size=REPORT_MAX_PAGE_SIZE,
        )
        return {"service": CUBE_SERVICE, "period": period, "items": items, "next_page_token": next_page_token}


def _namespace_reference(namespace: GitlabNamespace) -> dict[str, Any]:
    """The ``namespace`` object embedded in a project."""
    return {
        "id": namespace.id,
        "name": namespace.name,
        "path": namespace.path,
        "kind": namespace.kind,
        "full_path": namespace.full_path,
        "parent_id": namespace.parent.id if namespace.parent is not None else None,
    }


def _web_prefix(namespace: GitlabNamespace) -> str:
    """Group pages live under ``/groups/``; a user's namespace page is the user's profile."""
    return "groups/" if namespace.kind == "group" else ""


def _gitlab_time(moment: dt.datetime) -> str:
    """GitLab's timestamps: UTC, milliseconds, ``Z``."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _gitlab_per_page(per_page: int) -> int:
    if per_page < 1:
        raise SimulatedApiError("invalid_per_page", "per_page does not have a valid value")
    return min(per_page, GITLAB_MAX_PER_PAGE)


def _offset_slice(items: list[Any], page: int, per_page: int) -> list[Any]:
    if page < 1:
        raise SimulatedApiError("invalid_page", "page does not have a valid value")
    return items[(page - 1) * per_page : page * per_page]


# --- HTTP -----------------------------------------------------------------------------------------


class _RateLimiter:
    """Fixed one-second windows on the real clock, as Rack::Attack counts GitLab's requests."""

    def __init__(self) -> None:
        self._window = 0
        self._count = 0
        self._lock = threading.Lock()

    def over(self, limit: int | None) -> tuple[int, float] | None:
        """None when the request may pass, else (requests seen this window, window end)."""
        if limit is None:
            return None
        now = time.time()
        with self._lock:
            window = int(now)
            if window != self._window:
                self._window, self._count = window, 0
            self._count += 1
            if self._count <= limit:
                return None
            return self._count, float(window + 1)


class _Server(SimulatedServer[NativeServicesSimulator]):
    def __init__(self, address: tuple[str, int], simulator: NativeServicesSimulator) -> None:
        super().__init__(address, _Handler, simulator)
        self.oidc_tokens = TokenStore(simulator.credentials.token_ttl_seconds)
        self.gitlab_limiter = _RateLimiter()


NAMESPACE_ROUTE = re.compile(r"^/gitlab/api/v4/namespaces/(?P<reference>[^/]+)$")


class _Handler(SimulatedHandler):
    """Routes requests to the simulator; every answer has a Content-Length (keep-alive)."""

    server: _Server

    def route(self, path: str) -> tuple[str, Route] | None:
        routes: dict[str, tuple[str, Route]] = {
            "/gitlab/api/v4/projects": ("GET", self._gitlab_projects),
            "/gitlab/api/v4/namespaces": ("GET", self._gitlab_namespaces),
            "/artifactory/api/storageinfo": ("GET", self._artifactory_storageinfo),
            "/oidc/token": ("POST", self._oidc_token),
            "/cube/v1/usage-report": ("GET", self._cube_usage_report),
        }
        route = routes.get(path)
        match = NAMESPACE_ROUTE.match(path)
        if route is None and match is not None:
            reference = unquote(match["reference"])
            route = ("GET", lambda query, body: self._gitlab_namespace(reference))
        return route

    def error_body(self, status: int, code: str, message: str) -> Any:
        return {"error": {"code": code, "message": message}}

    def not_found_body(self, path: str, requested: str) -> Any:
        """GitLab's own 404 under ``/gitlab/``."""
        if path.startswith("/gitlab/"):
            return {"error": "404 Not Found"}
        return super().not_found_body(path, requested)

    # --- GitLab ---

    def _gitlab_gate(self) -> Reply | None:
        """Rate limit first (Rack::Attack runs before authentication), then the token."""
        limit = self.server.simulator.gitlab_rate_limit
        over = self.server.gitlab_limiter.over(limit)
        if over is not None:
            observed, reset = over
            return Reply(
                429,
                "Retry later\n",
                {
                    "Retry-After": str(max(1, math.ceil(reset - time.time()))),
                    "RateLimit-Name": "throttle_authenticated_api",
                    "RateLimit-Limit": str(limit),
                    "RateLimit-Observed": str(observed),
                    "RateLimit-Remaining": "0",
                    "RateLimit-Reset": str(int(reset)),
                },
            )
        expected = self.server.simulator.credentials.gitlab_token
        given = self.headers.get("PRIVATE-TOKEN")
        if given is None:
            given = bearer_token(self.headers.get("Authorization"))
        if same_secret(given, expected):
            return None
        return Reply(401, {"message": "401 Unauthorized"})

    def _gitlab_projects(self, query: dict[str, str], body: bytes) -> Reply:
        refused = self._gitlab_gate()
        if refused is not None:
            return refused
        simulator = self.server.simulator
        statistics = query.get("statistics", "").lower() in ("true", "1")
        sort = query.get("sort") or "desc"
        try:
            per_page = _query_int(query, "per_page", GITLAB_DEFAULT_PER_PAGE)
            if query.get("pagination") == "keyset":
                if query.get("order_by") != "id":
                    return Reply(405, {"error": KEYSET_UNAVAILABLE})
                id_after = _query_int(query, "id_after", None) if query.get("id_after") else None
                id_before = _query_int(query, "id_before", None) if query.get("id_before") else None
                items, following = simulator.gitlab_projects_keyset(
                    id_after=id_after,
                    id_before=id_before,
                    sort=sort,
                    per_page=per_page,
                    statistics=statistics,
                )
                headers = {}
                if following is not None:
                    cursor = "id_after" if sort == "asc" else "id_before"
                    params = {
                        key: value for key, value in query.items() if key not in ("id_after", "id_before")
                    }
                    params[cursor] = str(following)
                    link = f"{self.base_url()}/gitlab/api/v4/projects?{urlencode(params)}"
                    headers["Link"] = f'<{link}>; rel="next"'
                return Reply(200, items, headers)
            if query.get("order_by", "created_at") not in ("id", "created_at"):
                raise SimulatedApiError("invalid_order_by", "order_by does not have a valid value")
            page = _query_int(query, "page", 1)
            items, total = simulator.gitlab_projects_offset(
                page=page, per_page=per_page, sort=sort, statistics=statistics
            )
        except SimulatedApiError as error:
            return Reply(error.status, {"error": error.message})
        return Reply(
            200, items, self._offset_headers("/gitlab/api/v4/projects", query, page, per_page, total)
        )

    def _offset_headers(
        self, path: str, query: dict[str, str], page: int, per_page: int, total: int
    ) -> dict[str, str]:
        """GitLab's offset pagination headers; ``X-Next-Page`` is empty on the last page."""
        per_page = min(per_page, GITLAB_MAX_PER_PAGE)
        pages = max(1, math.ceil(total / per_page))
        following = page + 1 if page < pages else None

        def link(number: int) -> str:
            params = {**query, "page": str(number), "per_page": str(per_page)}
            return f"{self.base_url()}{path}?{urlencode(params)}"

        links = []
        if following is not None:
            links.append(f'<{link(following)}>; rel="next"')
        links += [f'<{link(1)}>; rel="first"', f'<{link(pages)}>; rel="last"']
        return {
            "X-Page": str(page),
            "X-Per-Page": str(per_page),
            "X-Next-Page": str(following) if following is not None else "",
            "X-Prev-Page": str(page - 1) if page > 1 else "",
            "X-Total": str(total),
            "X-Total-Pages": str(pages),
            "Link": ", ".join(links),
        }

    def _gitlab_namespaces(self, query: dict[str, str], body: bytes) -> Reply:
        refused = self._gitlab_gate()
        if refused is not None:
            return refused
        try:
            page = _query_int(query, "page", 1)
            per_page = _query_int(query, "per_page", GITLAB_DEFAULT_PER_PAGE)
            items, total = self.server.simulator.gitlab_namespaces_page(page=page, per_page=per_page)
        except SimulatedApiError as error:
            return Reply(error.status, {"error": error.message})
        return Reply(
            200, items, self._offset_headers("/gitlab/api/v4/namespaces", query, page, per_page, total)
        )

    def _gitlab_namespace(self, reference: str) -> Reply:
        refused = self._gitlab_gate()
        if refused is not None:
            return refused
        simulator = self.server.simulator
        try:
            return Reply(200, simulator.gitlab_namespace(simulator.find_namespace(reference)))
        except SimulatedApiError as error:
            return Reply(error.status, {"message": error.message})

    # --- Artifactory ---

    def _artifactory_storageinfo(self, query: dict[str, str], body: bytes) -> Reply:
        expected = self.server.simulator.credentials.artifactory_token
        if not same_secret(bearer_token(self.headers.get("Authorization")), expected):
            return Reply(
                401,
                {"errors": [{"status": 401, "message": "Bad credentials"}]},
                {"WWW-Authenticate": 'Basic realm="Artifactory Realm"'},
            )
        return Reply(200, self.server.simulator.artifactory_storageinfo())

    # --- OIDC and Cube ---

    def _oidc_token(self, query: dict[str, str], body: bytes) -> Reply:
        return oidc_token_reply(
            body,
            self.headers.get("Authorization"),
            self.server.oidc_tokens,
            self.server.simulator.credentials,
        )

    def _cube_usage_report(self, query: dict[str, str], body: bytes) -> Reply:
        refused = bearer_refusal(self.headers.get("Authorization"), self.server.oidc_tokens, "usage-report")
        if refused is not None:
            return refused
        return usage_page_reply(query, self.server.simulator.cube_usage_report, REPORT_DEFAULT_PAGE_SIZE)


def _query_int(query: dict[str, str], name: str, default: int | None) -> int:
    """An integer query parameter (GitLab answers 400 ``<name> is invalid`` otherwise)."""
    text = query.get(name)
    if not text:
        if default is None:
            raise SimulatedApiError(f"invalid_{name}", f"{name} is invalid")
        return default
    if not re.fullmatch(r"[0-9]+", text):
        raise SimulatedApiError(f"invalid_{name}", f"{name} is invalid")
    return int(text)


class RunningServer(BackgroundServer[_Server]):
    """A simulator served on a background thread; ``close()`` (or ``with``) stops it."""

    @property
    def simulator(self) -> NativeServicesSimulator:
        """The simulator served: set its ``night`` to replay another night."""
        return self._server.simulator

    @property
    def gitlab_url(self) -> str:
        """GitLab's REST v4 base (``…/projects``, ``…/namespaces``)."""
        return f"{self.url}/gitlab/api/v4"

    @property
    def artifactory_url(self) -> str:
        """Artifactory's base (``…/api/storageinfo``)."""
        return f"{self.url}/artifactory"

    @property
    def cube_url(self) -> str:
        """Cube's base (``…/v1/usage-report``)."""
        return f"{self.url}/cube"

    @property
    def oidc_token_url(self) -> str:
        """The OIDC token endpoint (client credentials grant) Cube's tokens come from."""
        return f"{self.url}/oidc/token"

    def environment(self) -> dict[str, str]:
        """The pipeline settings that point the native domain's sources at this server."""
        credentials = self._server.simulator.credentials
        return {
            "FINOPS_GITLAB_URL": self.gitlab_url,
            "FINOPS_GITLAB_AUTH": "token",
            "FINOPS_GITLAB_TOKEN": credentials.gitlab_token,
            "FINOPS_GITLAB_TOKEN_HEADER": "PRIVATE-TOKEN",
            "FINOPS_ARTIFACTORY_URL": self.artifactory_url,
            "FINOPS_ARTIFACTORY_AUTH": "token",
            "FINOPS_ARTIFACTORY_TOKEN": credentials.artifactory_token,
            "FINOPS_NATIVE_SERVICES": CUBE_SERVICE,
            "FINOPS_SERVICE_CUBE_URL": self.cube_url,
            "FINOPS_SERVICE_CUBE_AUTH": "oidc",
            "FINOPS_SERVICE_CUBE_OIDC_TOKEN_URL": self.oidc_token_url,
            "FINOPS_SERVICE_CUBE_OIDC_CLIENT_ID": credentials.oidc_client_id,
            "FINOPS_SERVICE_CUBE_OIDC_CLIENT_SECRET": credentials.oidc_client_secret,
        }

    def revoke_tokens(self) -> None:
        """Forget every issued OIDC token, as a rotated identity provider would: clients get 401 next."""
        self._server.oidc_tokens.revoke_all()


def serve(simulator: NativeServicesSimulator, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Serve the simulator over HTTP on a daemon thread (port 0: any free port, see ``.url``).

    Standard library only (``ThreadingHTTPServer``), so the demo needs no test dependency.
    """
    server = _Server((host, port), simulator)
    return RunningServer(server, start_thread(server, "native-services-simulator"))
