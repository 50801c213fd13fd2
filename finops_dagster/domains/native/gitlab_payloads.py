"""GitLab REST and GraphQL bodies turned into typed storage and CI-minutes usage.

Four shapes are read, one function each:

- `parse_projects`: one page of `GET /projects?statistics=true` — the storage of each project, by
  kind (repository, LFS, job artifacts, …), in bytes. GitLab includes the `statistics` block only
  when the token has at least Reporter access to the project; without it the project becomes a
  `UsageProblem` rather than a project of size 0.
- `parse_groups`: one page of `GET /groups?statistics=true` (or the object of `GET /groups/:id`) —
  the group's own `statistics` and the namespace-wide `root_storage_statistics`, which alone carries
  `dependency_proxy_size` (a group-level store no project reports).
- `parse_namespace`: `GET /namespaces/:id` with its `ci_minutes_usage` block (recent GitLab, MR
  247465) — the CI minutes of the *current* month only, so it cannot rebuild a past month.
- `parse_ci_minutes_month` / `parse_ci_minutes_usage_graphql`: the GraphQL `ciMinutesUsage`
  connection — minutes per month, and per project within each month: the only source that can
  rebuild a past month.

Pure parsing: no HTTP, no Dagster. A body that is not the expected listing raises `ValueError` (the
client reports a broken source); one malformed entry becomes a `UsageProblem` and the rest of the
page is kept. Sizes are exact `int` bytes, minutes are `Decimal`; no float anywhere.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from finops_dagster.domains.native.problems import (
    UsageProblem,
    ValueProblem,
    as_raw,
    byte_count,
    identifier,
    quantity,
    text_field,
)

__all__ = [
    "GROUP_ROOT_SIZE_FIELDS",
    "GROUP_SIZE_FIELDS",
    "NO_CI_MINUTES_USAGE",
    "NO_STATISTICS",
    "PROJECT_SIZE_FIELDS",
    "CiMinutesMonth",
    "GroupStorage",
    "NamespaceMinutes",
    "ProjectMinutes",
    "ProjectStorage",
    "UsageProblem",
    "parse_ci_minutes_month",
    "parse_ci_minutes_usage_graphql",
    "parse_groups",
    "parse_namespace",
    "parse_projects",
]

NO_STATISTICS = "no statistics (the token needs at least Reporter access)"
NO_CI_MINUTES_USAGE = "instance does not report ci_minutes_usage"

# Storage kind (the key of `sizes`) → the statistics field(s) GitLab writes it in, first found wins.
# `build_artifacts_size` is the pre-API-v4 name of `job_artifacts_size`, still used in the root
# storage statistics. `storage_size` is deliberately not read: it is GitLab's own total, whose set of
# components changed between versions (container registry, pipeline artifacts), so the kinds are
# summed by the caller instead.
PROJECT_SIZE_FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("repository", ("repository_size",)),
    ("lfs_objects", ("lfs_objects_size",)),
    ("job_artifacts", ("job_artifacts_size", "build_artifacts_size")),
    ("pipeline_artifacts", ("pipeline_artifacts_size",)),
    ("packages", ("packages_size",)),
    ("container_registry", ("container_registry_size",)),
    ("wiki", ("wiki_size",)),
    ("snippets", ("snippets_size",)),
    ("uploads", ("uploads_size",)),
)
GROUP_SIZE_FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = tuple(
    item for item in PROJECT_SIZE_FIELDS if item[0] != "container_registry"
)
GROUP_ROOT_SIZE_FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    *PROJECT_SIZE_FIELDS,
    ("dependency_proxy", ("dependency_proxy_size",)),
)


# --- shared readers ------------------------------------------------------------------------------


def _sizes(
    block: dict[str, Any], fields: tuple[tuple[str, tuple[str, ...]], ...], prefix: str, reasons: list[str]
) -> tuple[dict[str, int], tuple[str, ...]]:
    """The sizes of a statistics block by kind; an absent (or null) field counts 0 and is listed.

    A present but unusable field (negative, not a number…) is appended to `reasons`, named with its
    place in the body (`statistics.repository_size`), and counts 0 in the returned dict.
    """
    sizes: dict[str, int] = {}
    missing: list[str] = []
    for kind, names in fields:
        name = next((candidate for candidate in names if block.get(candidate) is not None), None)
        if name is None:
            sizes[kind] = 0
            missing.append(kind)
            continue
        try:
            sizes[kind] = byte_count(block[name], f"{prefix}.{name}")
        except ValueProblem as problem:
            sizes[kind] = 0
            reasons.append(str(problem))
    return sizes, tuple(missing)


def _id(raw: Any, name: str, reasons: list[str]) -> int | None:
    try:
        return identifier(raw, name)
    except ValueProblem as problem:
        reasons.append(str(problem))
        return None


def _listing(body: Any, what: str) -> list[Any]:
    if not isinstance(body, list):
        raise ValueError(f"{what}: expected a JSON list, got {type(body).__name__}")
    return body


# --- projects ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProjectStorage:
    """One project's storage, in bytes by kind, as `GET /projects?statistics=true` reports it.

    `sizes` always has every key of `PROJECT_SIZE_FIELDS` (repository, lfs_objects, job_artifacts,
    pipeline_artifacts, packages, container_registry, wiki, snippets, uploads). A kind the
    statistics block does not carry (older GitLab, or a trimmed response) counts 0 and is named in
    `missing`, so a mapping can tell "0 bytes" from "not reported".

    `namespace_full_path`/`namespace_kind` are None for a project GitLab listed without a namespace:
    it is kept, and the mapping decides it is unallocated. Archived projects are kept too — their
    storage still costs.
    """

    project_id: int
    path_with_namespace: str
    namespace_full_path: str | None
    namespace_kind: str | None
    topics: tuple[str, ...]
    archived: bool
    sizes: dict[str, int] = field(hash=False)
    missing: tuple[str, ...] = ()

    @property
    def total_bytes(self) -> int:
        """The sum of the kinds (not GitLab's `storage_size`, whose components vary by version)."""
        return sum(self.sizes.values())


def parse_projects(body: Any) -> tuple[list[ProjectStorage], list[UsageProblem]]:
    """Every project of one page, as a `ProjectStorage` or, when unusable, a `UsageProblem`.

    All the reasons of an entry are reported together; entries keep the body's order.
    """
    projects: list[ProjectStorage] = []
    problems: list[UsageProblem] = []
    for index, entry in enumerate(_listing(body, "GET /projects?statistics=true")):
        parsed = _parse_project(entry)
        if isinstance(parsed, ProjectStorage):
            projects.append(parsed)
        else:
            ref = _project_ref(entry, index)
            problems.append(UsageProblem(ref=ref, reason="; ".join(parsed), raw=as_raw(entry)))
    return projects, problems


def _project_ref(entry: Any, index: int) -> str:
    if isinstance(entry, dict):
        path = entry.get("path_with_namespace")
        if isinstance(path, str) and path.strip():
            return path.strip()
        project_id = entry.get("id")
        if isinstance(project_id, int | str) and not isinstance(project_id, bool) and str(project_id).strip():
            return f"project {str(project_id).strip()}"
    return f"projects[{index}]"


def _parse_project(entry: Any) -> ProjectStorage | list[str]:
    if not isinstance(entry, dict):
        return [f"project entry is not an object ({type(entry).__name__})"]
    reasons: list[str] = []
    project_id = _id(entry.get("id"), "id", reasons)
    path = text_field(entry.get("path_with_namespace"), "path_with_namespace", reasons, required=True)

    namespace_path: str | None = None
    namespace_kind: str | None = None
    namespace = entry.get("namespace")
    if isinstance(namespace, dict):
        namespace_path = text_field(namespace.get("full_path"), "namespace.full_path", reasons, required=True)
        namespace_kind = text_field(namespace.get("kind"), "namespace.kind", reasons, required=False)
    elif namespace is not None:
        reasons.append(f"namespace: not an object ({type(namespace).__name__})")

    topics = _topics(entry, reasons)
    archived = entry.get("archived", False)
    if not isinstance(archived, bool):
        reasons.append(f"archived: not a boolean ({archived!r:.40})")

    statistics = entry.get("statistics")
    sizes: dict[str, int] = {}
    missing: tuple[str, ...] = ()
    if statistics is None:
        reasons.append(NO_STATISTICS)
    elif not isinstance(statistics, dict):
        reasons.append(f"statistics: not an object ({type(statistics).__name__})")
    else:
        sizes, missing = _sizes(statistics, PROJECT_SIZE_FIELDS, "statistics", reasons)

    if reasons or project_id is None or path is None or not isinstance(archived, bool):
        return reasons
    return ProjectStorage(
        project_id=project_id,
        path_with_namespace=path,
        namespace_full_path=namespace_path,
        namespace_kind=namespace_kind,
        topics=topics,
        archived=archived,
        sizes=sizes,
        missing=missing,
    )


def _topics(entry: dict[str, Any], reasons: list[str]) -> tuple[str, ...]:
    """`topics` (GitLab ≥ 14.0), else the deprecated `tag_list` it replaced; blanks are dropped."""
    name = "topics" if "topics" in entry else "tag_list"
    raw = entry.get(name)
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(topic, str) for topic in raw):
        reasons.append(f"{name}: not a list of strings ({raw!r:.60})")
        return ()
    return tuple(topic.strip() for topic in raw if topic.strip())


# --- groups --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupStorage:
    """One group's storage as `GET /groups?statistics=true` reports it, in bytes by kind.

    `sizes` comes from `statistics` (the projects directly in the group; administrators only) and
    `root_sizes` from `root_storage_statistics` (the whole namespace tree, plus the group-level
    `dependency_proxy`); either is None when the body does not carry it. Kinds absent from a present
    block count 0 and are listed in `missing` as `statistics.<kind>` / `root_storage_statistics.<kind>`.
    """

    group_id: int
    full_path: str
    parent_id: int | None
    sizes: dict[str, int] | None = field(hash=False)
    root_sizes: dict[str, int] | None = field(hash=False)
    missing: tuple[str, ...] = ()


def parse_groups(body: Any) -> tuple[list[GroupStorage], list[UsageProblem]]:
    """Every group of one page (a single `GET /groups/:id` object is read as a page of one)."""
    entries = [body] if isinstance(body, dict) else _listing(body, "GET /groups?statistics=true")
    groups: list[GroupStorage] = []
    problems: list[UsageProblem] = []
    for index, entry in enumerate(entries):
        parsed = _parse_group(entry)
        if isinstance(parsed, GroupStorage):
            groups.append(parsed)
            continue
        full_path = entry.get("full_path") if isinstance(entry, dict) else None
        ref = full_path.strip() if isinstance(full_path, str) and full_path.strip() else f"groups[{index}]"
        problems.append(UsageProblem(ref=ref, reason="; ".join(parsed), raw=as_raw(entry)))
    return groups, problems


def _parse_group(entry: Any) -> GroupStorage | list[str]:
    if not isinstance(entry, dict):
        return [f"group entry is not an object ({type(entry).__name__})"]
    reasons: list[str] = []
    group_id = _id(entry.get("id"), "id", reasons)
    full_path = text_field(entry.get("full_path"), "full_path", reasons, required=True)
    parent_id = None if entry.get("parent_id") is None else _id(entry.get("parent_id"), "parent_id", reasons)
    blocks: dict[str, dict[str, int] | None] = {}
    missing: list[str] = []
    kinds = (("statistics", GROUP_SIZE_FIELDS), ("root_storage_statistics", GROUP_ROOT_SIZE_FIELDS))
    for name, fields in kinds:
        block = entry.get(name)
        blocks[name] = None
        if block is None:
            continue
        if not isinstance(block, dict):
            reasons.append(f"{name}: not an object ({type(block).__name__})")
            continue
        sizes, absent = _sizes(block, fields, name, reasons)
        blocks[name] = sizes
        missing.extend(f"{name}.{kind}" for kind in absent)
    if blocks["statistics"] is None and blocks["root_storage_statistics"] is None and not reasons:
        reasons.append(
            "no statistics nor root_storage_statistics (group statistics need an administrator token)"
        )
    if reasons or group_id is None or full_path is None:
        return reasons
    return GroupStorage(
        group_id=group_id,
        full_path=full_path,
        parent_id=parent_id,
        sizes=blocks["statistics"],
        root_sizes=blocks["root_storage_statistics"],
        missing=tuple(missing),
    )


# --- namespace CI minutes (REST) -----------------------------------------------------------------


@dataclass(frozen=True)
class NamespaceMinutes:
    """The current month's CI minutes of one namespace, from `GET /namespaces/:id`.

    GitLab computes `monthly_minutes_used = total_minutes_used - purchased_minutes_used`:
    `total_minutes_used` is everything the namespace consumed this month, of which
    `purchased_minutes_used` was drawn from purchased packs once the monthly quota ran out. The
    month's consumption is therefore `total_minutes_used`; `monthly_minutes_used` alone undercounts a
    namespace that went over its quota. The two extra fields are None on a body that lacks them.
    The block always describes the month in progress: it cannot be used for a past month.
    """

    namespace_id: int
    full_path: str
    kind: str
    monthly_minutes_used: Decimal
    purchased_minutes_used: Decimal | None = None
    total_minutes_used: Decimal | None = None


def parse_namespace(body: Any) -> NamespaceMinutes | UsageProblem:
    """The namespace's CI minutes, or a `UsageProblem` saying why they cannot be read.

    A body that is not a JSON object raises `ValueError` (broken source). A namespace without the
    `ci_minutes_usage` block (an instance older than MR 247465) is a problem, not 0 minutes.
    """
    if not isinstance(body, dict):
        raise ValueError(f"GET /namespaces/:id: expected a JSON object, got {type(body).__name__}")
    reasons: list[str] = []
    namespace_id = _id(body.get("id"), "id", reasons)
    full_path = text_field(body.get("full_path"), "full_path", reasons, required=True)
    kind = text_field(body.get("kind"), "kind", reasons, required=True)
    minutes: dict[str, Decimal | None] = {}
    block = body.get("ci_minutes_usage")
    if block is None:
        reasons.append(NO_CI_MINUTES_USAGE)
    elif not isinstance(block, dict):
        reasons.append(f"ci_minutes_usage: not an object ({type(block).__name__})")
    else:
        for name in ("monthly_minutes_used", "purchased_minutes_used", "total_minutes_used"):
            if name != "monthly_minutes_used" and block.get(name) is None:
                minutes[name] = None
                continue
            try:
                minutes[name] = quantity(block.get(name), f"ci_minutes_usage.{name}")
            except ValueProblem as problem:
                reasons.append(str(problem))
        monthly = minutes.get("monthly_minutes_used")
        purchased = minutes.get("purchased_minutes_used")
        total = minutes.get("total_minutes_used")
        consistent = monthly is None or purchased is None or total is None or monthly + purchased == total
        if not consistent:
            reasons.append(
                f"ci_minutes_usage: monthly_minutes_used ({monthly}) + purchased_minutes_used ({purchased}) "
                f"!= total_minutes_used ({total})"
            )
    monthly_used = minutes.get("monthly_minutes_used")
    if reasons or namespace_id is None or full_path is None or kind is None or monthly_used is None:
        ref = full_path or (f"namespace {namespace_id}" if namespace_id is not None else "namespace")
        return UsageProblem(ref=ref, reason="; ".join(reasons), raw=body)
    return NamespaceMinutes(
        namespace_id=namespace_id,
        full_path=full_path,
        kind=kind,
        monthly_minutes_used=monthly_used,
        purchased_minutes_used=minutes["purchased_minutes_used"],
        total_minutes_used=minutes["total_minutes_used"],
    )


# --- CI minutes per month and project (GraphQL) --------------------------------------------------


@dataclass(frozen=True)
class ProjectMinutes:
    """One project's CI minutes in one month (a `ciMinutesUsage` month node's `projects` node).

    The sample (and older GitLab) carries only the project's display `name`, which is not unique;
    `full_path` is read from `project { fullPath }` when the query asks for it (newer GitLab), and
    is what a mapping should key on. `shared_runners_seconds` is `sharedRunnersDuration` (seconds of
    shared-runner time, before the cost factor that turns it into minutes), None when not asked for.
    """

    project_name: str
    full_path: str | None
    minutes: Decimal
    shared_runners_seconds: Decimal | None = None


@dataclass(frozen=True)
class CiMinutesMonth:
    """One month of a namespace's `ciMinutesUsage`: the namespace total and its per-project split.

    `namespace_minutes` is the month node's own `minutes` — it can exceed the sum of the projects
    (minutes of since-deleted projects stay on the namespace), so a caller keeps the difference as
    unallocated rather than losing it. It is 0 with no projects when the body has no node for the
    month (GitLab creates a monthly record only once minutes are used) and None when the node's own
    `minutes` is unusable (then a problem says why). `projects_after` is the end cursor to fetch the
    rest of the projects when the node's `projects` connection says `hasNextPage`, else None.
    """

    month: dt.date
    namespace_minutes: Decimal | None
    namespace_shared_runners_seconds: Decimal | None
    projects: list[ProjectMinutes]
    problems: list[UsageProblem]
    projects_after: str | None = None


def parse_ci_minutes_usage_graphql(
    body: Any, month: dt.date
) -> tuple[list[ProjectMinutes], list[UsageProblem]]:
    """The per-project minutes of `month` (see `parse_ci_minutes_month` for the namespace total)."""
    parsed = parse_ci_minutes_month(body, month)
    return parsed.projects, parsed.problems


def parse_ci_minutes_month(body: Any, month: dt.date) -> CiMinutesMonth:
    """The node of `month` in a `{"data": {"ciMinutesUsage": {"nodes": [...]}}}` GraphQL response.

    Nodes are matched on `monthIso8601` (the first day of the month; `month` may be any day of it).
    A response carrying GraphQL `errors`, or without the connection, raises `ValueError`. So does a
    response that lacks the month while its `pageInfo` says more months follow: answering "no usage"
    would silently drop them. A node whose month cannot be read, a second node for the same month,
    and a malformed project become problems.
    """
    first_day = dt.date(month.year, month.month, 1)
    label = f"ciMinutesUsage {first_day.isoformat()}"
    connection = _graphql_connection(body)
    nodes = connection.get("nodes")
    if not isinstance(nodes, list):
        raise ValueError(f"GraphQL ciMinutesUsage: 'nodes' is not a list ({type(nodes).__name__})")

    problems: list[UsageProblem] = []
    chosen: dict[str, Any] | None = None
    for index, node in enumerate(nodes):
        ref = f"ciMinutesUsage.nodes[{index}]"
        if not isinstance(node, dict):
            reason = f"month node is not an object ({type(node).__name__})"
            problems.append(UsageProblem(ref, reason, as_raw(node)))
            continue
        node_month = _node_month(node)
        if isinstance(node_month, str):
            problems.append(UsageProblem(ref, node_month, node))
        elif node_month == first_day and chosen is None:
            chosen = node
        elif node_month == first_day:
            problems.append(UsageProblem(ref, f"a second node for {first_day.isoformat()}", node))

    if chosen is None:
        if _has_next_page(connection):
            raise ValueError(
                f"GraphQL ciMinutesUsage: no node for {first_day.isoformat()} on this page and more pages "
                "follow (pageInfo.hasNextPage); query the month with `date:` or follow the cursor"
            )
        return CiMinutesMonth(first_day, Decimal(0), None, [], problems)

    namespace_minutes: Decimal | None = None
    namespace_seconds: Decimal | None = None
    try:
        namespace_minutes = quantity(chosen.get("minutes"), "minutes")
    except ValueProblem as problem:
        problems.append(UsageProblem(label, str(problem), _without_projects(chosen)))
    if chosen.get("sharedRunnersDuration") is not None:
        try:
            namespace_seconds = quantity(chosen.get("sharedRunnersDuration"), "sharedRunnersDuration")
        except ValueProblem as problem:
            problems.append(UsageProblem(label, str(problem), _without_projects(chosen)))

    projects: list[ProjectMinutes] = []
    projects_after: str | None = None
    project_connection = chosen.get("projects")
    if project_connection is None:
        pass  # the query did not ask for the split: the namespace total is all there is.
    elif not isinstance(project_connection, dict) or not isinstance(project_connection.get("nodes"), list):
        problems.append(
            UsageProblem(label, "projects: not a connection with a 'nodes' list", as_raw(project_connection))
        )
    else:
        for index, node in enumerate(project_connection["nodes"]):
            parsed = _parse_project_minutes(node)
            if isinstance(parsed, ProjectMinutes):
                projects.append(parsed)
            else:
                ref = f"{label} projects.nodes[{index}]"
                problems.append(UsageProblem(ref, "; ".join(parsed), as_raw(node)))
        if _has_next_page(project_connection):
            cursor = project_connection["pageInfo"].get("endCursor")
            if not isinstance(cursor, str) or not cursor:
                raise ValueError(f"GraphQL {label}: projects has a next page but no endCursor")
            projects_after = cursor
    return CiMinutesMonth(first_day, namespace_minutes, namespace_seconds, projects, problems, projects_after)


def _graphql_connection(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValueError(f"GraphQL ciMinutesUsage: expected a JSON object, got {type(body).__name__}")
    errors = body.get("errors")
    if errors:
        messages = [
            str(error.get("message", error)) if isinstance(error, dict) else str(error)
            for error in (errors if isinstance(errors, list) else [errors])
        ]
        raise ValueError(f"GraphQL ciMinutesUsage: the server answered errors: {'; '.join(messages)[:300]}")
    data = body.get("data")
    connection = data.get("ciMinutesUsage") if isinstance(data, dict) else None
    if not isinstance(connection, dict):
        raise ValueError(
            "GraphQL ciMinutesUsage: no data.ciMinutesUsage object (GitLab EE only; "
            f"got {type(connection).__name__})"
        )
    return connection


def _has_next_page(connection: dict[str, Any]) -> bool:
    page_info = connection.get("pageInfo")
    return isinstance(page_info, dict) and page_info.get("hasNextPage") is True


def _node_month(node: dict[str, Any]) -> dt.date | str:
    """The first day of the node's month, or the reason it cannot be known."""
    raw = node.get("monthIso8601")
    if raw is None:
        # `month` alone is a month name ("May") without a year: not enough to place the node.
        return f"monthIso8601: missing (month {node.get('month')!r:.20} has no year)"
    if not isinstance(raw, str):
        return f"monthIso8601: not a date ({type(raw).__name__})"
    try:
        day = dt.date.fromisoformat(raw.strip())
    except ValueError:
        return f"monthIso8601: not an ISO 8601 date ({raw[:40]!r})"
    if day.day != 1:
        return f"monthIso8601: not the first day of a month ({raw[:40]})"
    return day


def _without_projects(node: dict[str, Any]) -> dict[str, Any]:
    """The month node for a namespace-level problem's raw payload; projects are reported apart."""
    return {key: value for key, value in node.items() if key != "projects"}


def _parse_project_minutes(node: Any) -> ProjectMinutes | list[str]:
    if not isinstance(node, dict):
        return [f"project node is not an object ({type(node).__name__})"]
    reasons: list[str] = []
    project = node.get("project")
    full_path: str | None = None
    project_name: str | None = None
    if isinstance(project, dict):
        full_path = text_field(project.get("fullPath"), "project.fullPath", reasons, required=False)
        project_name = text_field(project.get("name"), "project.name", reasons, required=False)
    elif project is not None:
        reasons.append(f"project: not an object ({type(project).__name__})")
    name = text_field(node.get("name"), "name", reasons, required=False) or project_name or full_path
    if name is None:
        reasons.append("name: missing (and no project.fullPath)")
    minutes: Decimal | None = None
    try:
        minutes = quantity(node.get("minutes"), "minutes")
    except ValueProblem as problem:
        reasons.append(str(problem))
    seconds: Decimal | None = None
    if node.get("sharedRunnersDuration") is not None:
        try:
            seconds = quantity(node.get("sharedRunnersDuration"), "sharedRunnersDuration")
        except ValueProblem as problem:
            reasons.append(str(problem))
    if reasons or name is None or minutes is None:
        return reasons
    return ProjectMinutes(
        project_name=name, full_path=full_path, minutes=minutes, shared_runners_seconds=seconds
    )
