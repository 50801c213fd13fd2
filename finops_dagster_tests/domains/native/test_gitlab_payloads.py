"""The GitLab parsers against the real sample bodies and each malformed shape.

Expected values are computed here from the raw JSON by separate plain loops (byte sums of the raw
statistics fields), so a parser bug cannot hide behind its own arithmetic.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from finops_dagster.domains.native.gitlab_payloads import (
    NO_STATISTICS,
    CiMinutesMonth,
    GroupStorage,
    NamespaceMinutes,
    ProjectMinutes,
    ProjectStorage,
    parse_ci_minutes_month,
    parse_ci_minutes_usage_graphql,
    parse_groups,
    parse_namespace,
    parse_projects,
)
from finops_dagster.domains.native.problems import UsageProblem
from finops_dagster_tests.support.samples import SAMPLES

GITLAB = SAMPLES / "gitlab"
PROJECTS = GITLAB / "projects_list_statistics_doc_sample.json"
GROUPS = GITLAB / "group_statistics_root_storage_doc_sample.json"
NAMESPACE = GITLAB / "namespace_ci_minutes_usage_mr247465_sample.json"
GRAPHQL = GITLAB / "graphql_ciMinutesUsage_shape.json"

MAY_2021 = dt.date(2021, 5, 1)
KIND_FIELDS = {
    "repository": "repository_size",
    "lfs_objects": "lfs_objects_size",
    "job_artifacts": "job_artifacts_size",
    "pipeline_artifacts": "pipeline_artifacts_size",
    "packages": "packages_size",
    "container_registry": "container_registry_size",
    "wiki": "wiki_size",
    "snippets": "snippets_size",
    "uploads": "uploads_size",
}
ZERO_SIZES = dict.fromkeys(KIND_FIELDS, 0)


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def project_entry(**overrides: Any) -> dict[str, Any]:
    """The first project of the sample (diaspora/diaspora-client), altered."""
    entry: dict[str, Any] = copy.deepcopy(load(PROJECTS)[0])
    entry.update(overrides)
    return entry


def with_statistics(**sizes: Any) -> dict[str, Any]:
    entry = project_entry()
    entry["statistics"].update(sizes)
    return entry


def graphql_body(*nodes: Any, page_info: dict[str, Any] | None = None) -> dict[str, Any]:
    connection: dict[str, Any] = {"nodes": list(nodes)}
    if page_info is not None:
        connection["pageInfo"] = page_info
    return {"data": {"ciMinutesUsage": connection}}


def month_node(iso: str = "2021-05-01", minutes: Any = 50, projects: Any = None) -> dict[str, Any]:
    node: dict[str, Any] = {"month": "May", "monthIso8601": iso, "minutes": minutes}
    if projects is not None:
        node["projects"] = {"nodes": projects}
    return node


# --- the samples directory -----------------------------------------------------------------------


def test_every_gitlab_sample_is_one_this_module_reads() -> None:
    assert sorted(path.name for path in GITLAB.glob("*.json")) == sorted(
        path.name for path in (PROJECTS, GROUPS, NAMESPACE, GRAPHQL)
    )


# --- GitLab: projects ----------------------------------------------------------------------------


def test_projects_sample_parses_to_its_exact_sizes() -> None:
    body = load(PROJECTS)

    projects, problems = parse_projects(body)

    assert problems == []
    assert projects == [
        ProjectStorage(
            project_id=4,
            path_with_namespace="diaspora/diaspora-client",
            namespace_full_path="diaspora",
            namespace_kind="group",
            topics=("example", "disapora client"),
            archived=False,
            sizes={**ZERO_SIZES, "repository": 1038090},
            missing=("wiki",),
        ),
        ProjectStorage(
            project_id=6,
            path_with_namespace="brightbox/puppet",
            namespace_full_path="brightbox",
            namespace_kind="group",
            topics=("example", "puppet"),
            archived=False,
            sizes={**ZERO_SIZES, "repository": 2066080},
            missing=("wiki",),
        ),
    ]
    # Independently: every *_size field of the raw statistics except GitLab's own storage_size total.
    for project, entry in zip(projects, body, strict=True):
        raw_sum = sum(
            v for k, v in entry["statistics"].items() if k.endswith("_size") and k != "storage_size"
        )
        assert project.total_bytes == raw_sum
        assert project.total_bytes == entry["statistics"]["storage_size"]  # 1038090 and 2066080 here
    assert sum(project.total_bytes for project in projects) == 1038090 + 2066080 == 3104170


def test_a_project_without_statistics_is_a_problem_not_zero_bytes() -> None:
    entry = project_entry()
    del entry["statistics"]

    projects, problems = parse_projects([entry, load(PROJECTS)[1]])

    assert [project.project_id for project in projects] == [6]
    assert problems == [UsageProblem("diaspora/diaspora-client", NO_STATISTICS, entry)]
    assert NO_STATISTICS == "no statistics (the token needs at least Reporter access)"


def test_a_project_without_namespace_is_kept_with_namespace_none() -> None:
    missing = project_entry()
    del missing["namespace"]
    null = project_entry(id=5, path_with_namespace="orphan/null", namespace=None)

    projects, problems = parse_projects([missing, null])

    assert problems == []
    assert [(p.project_id, p.namespace_full_path, p.namespace_kind) for p in projects] == [
        (4, None, None),
        (5, None, None),
    ]
    assert projects[0].sizes["repository"] == 1038090


@pytest.mark.parametrize(
    ("sizes", "reason"),
    [
        ({"repository_size": -5}, "statistics.repository_size: negative (-5)"),
        ({"lfs_objects_size": "abc"}, "statistics.lfs_objects_size: not a number ('abc')"),
        ({"packages_size": True}, "statistics.packages_size: not a number (bool)"),
        ({"uploads_size": 1.5}, "statistics.uploads_size: not a whole number of bytes (1.5)"),
        ({"job_artifacts_size": "NaN"}, "statistics.job_artifacts_size: NaN"),
        (
            {"repository_size": -1, "container_registry_size": "12 MB"},
            "statistics.repository_size: negative (-1); "
            "statistics.container_registry_size: not a number ('12 MB')",
        ),
    ],
)
def test_unusable_sizes_make_a_problem_naming_the_field(sizes: dict[str, Any], reason: str) -> None:
    entry = with_statistics(**sizes)

    projects, problems = parse_projects([entry])

    assert projects == []
    assert problems == [UsageProblem("diaspora/diaspora-client", reason, entry)]


def test_absent_or_null_sizes_count_zero_and_are_listed_as_missing() -> None:
    entry = project_entry(statistics={"repository_size": 10, "packages_size": None, "wiki_size": "7"})

    [project], problems = parse_projects([entry])

    assert problems == []
    assert project.sizes == {**ZERO_SIZES, "repository": 10, "wiki": 7}
    assert project.missing == (
        "lfs_objects",
        "job_artifacts",
        "pipeline_artifacts",
        "packages",
        "container_registry",
        "snippets",
        "uploads",
    )
    assert project.total_bytes == 17


def test_every_size_kind_is_read_including_pipeline_artifacts_and_the_build_artifacts_alias() -> None:
    stats = {name: (index + 1) * 1000 for index, name in enumerate(KIND_FIELDS.values())}
    entry = project_entry(statistics={**stats, "storage_size": 1})
    legacy = project_entry(id=7, path_with_namespace="old/one", statistics={"build_artifacts_size": 99})

    projects, problems = parse_projects([entry, legacy])

    assert problems == []
    assert projects[0].sizes == {kind: stats[name] for kind, name in KIND_FIELDS.items()}
    assert projects[0].sizes["pipeline_artifacts"] == 4000
    assert projects[0].missing == ()
    assert projects[0].total_bytes == 45000  # 1000 + 2000 + … + 9000, not the body's storage_size
    assert projects[1].sizes["job_artifacts"] == 99
    assert "job_artifacts" not in projects[1].missing


def test_topics_archived_and_identity_fields() -> None:
    legacy = project_entry(id=8, path_with_namespace="a/legacy", tag_list=["old", " "])
    del legacy["topics"]
    archived = project_entry(id=9, path_with_namespace="a/archived", archived=True, topics=[" app:billing "])
    no_topics = project_entry(id=10, path_with_namespace="a/none", topics=None, namespace={"full_path": "a"})
    bad_topics = project_entry(topics="billing")
    bad_archived = project_entry(archived="no")
    no_identity = project_entry(id=None, path_with_namespace="  ")
    bad_namespace = project_entry(namespace="diaspora")
    blank_full_path = project_entry(namespace={"kind": "group", "full_path": ""})

    projects, problems = parse_projects(
        [legacy, archived, no_topics, bad_topics, bad_archived, no_identity, bad_namespace, blank_full_path]
    )

    assert [(p.project_id, p.topics, p.archived, p.namespace_kind) for p in projects] == [
        (8, ("old",), False, "group"),
        (9, ("app:billing",), True, "group"),
        (10, (), False, None),
    ]
    assert [(problem.ref, problem.reason) for problem in problems] == [
        ("diaspora/diaspora-client", "topics: not a list of strings ('billing')"),
        ("diaspora/diaspora-client", "archived: not a boolean ('no')"),
        ("projects[5]", "id: missing; path_with_namespace: missing"),
        ("diaspora/diaspora-client", "namespace: not an object (str)"),
        ("diaspora/diaspora-client", "namespace.full_path: missing"),
    ]


def test_a_page_keeps_every_entry_as_a_project_or_a_problem() -> None:
    body = [load(PROJECTS)[0], "not a project", None, project_entry(id="x1", path_with_namespace=None)]

    projects, problems = parse_projects(body)

    assert [project.project_id for project in projects] == [4]
    assert problems == [
        UsageProblem("projects[1]", "project entry is not an object (str)", {"value": "not a project"}),
        UsageProblem("projects[2]", "project entry is not an object (NoneType)", {"value": None}),
        UsageProblem("project x1", "id: not an integer id ('x1'); path_with_namespace: missing", body[3]),
    ]
    assert len(projects) + len(problems) == len(body)
    assert parse_projects([]) == ([], [])


@pytest.mark.parametrize("body", [{"message": "401 Unauthorized"}, None, "[]"])
def test_a_projects_body_that_is_not_a_list_is_a_broken_source(body: Any) -> None:
    with pytest.raises(ValueError, match=r"^GET /projects\?statistics=true: expected a JSON list, got "):
        parse_projects(body)


# --- GitLab: groups ------------------------------------------------------------------------------


def test_groups_sample_parses_both_statistics_blocks() -> None:
    body = load(GROUPS)

    groups, problems = parse_groups(body)

    assert problems == []
    assert groups == [
        GroupStorage(
            group_id=1,
            full_path="foo-bar",
            parent_id=None,
            sizes={
                "repository": 33,
                "lfs_objects": 123,
                "job_artifacts": 57,
                "pipeline_artifacts": 0,
                "packages": 0,
                "wiki": 100,
                "snippets": 50,
                "uploads": 0,
            },
            root_sizes={**ZERO_SIZES, "dependency_proxy": 0},
            missing=(),
        )
    ]
    statistics = body[0]["statistics"]
    raw_sum = sum(v for k, v in statistics.items() if k != "storage_size")
    assert groups[0].sizes is not None
    assert sum(groups[0].sizes.values()) == raw_sum == statistics["storage_size"] == 363
    # The doc sample's root_storage_statistics is all zeros although the group's own statistics are not.
    assert groups[0].root_sizes is not None
    assert sum(groups[0].root_sizes.values()) == body[0]["root_storage_statistics"]["storage_size"] == 0


def test_group_variants_and_problems() -> None:
    single = copy.deepcopy(load(GROUPS)[0])
    only_root = {
        "id": 2,
        "full_path": "foo-bar/sub",
        "parent_id": 1,
        "root_storage_statistics": {"wiki_size": 5},
    }
    neither = {"id": 3, "full_path": "bare"}
    negative = {"id": 4, "full_path": "neg", "statistics": {"repository_size": -2}}

    [group], problems = parse_groups(single)  # GET /groups/:id answers one object
    assert (group.group_id, problems) == (1, [])

    groups, problems = parse_groups([only_root, neither, negative])

    assert groups == [
        GroupStorage(
            group_id=2,
            full_path="foo-bar/sub",
            parent_id=1,
            sizes=None,
            root_sizes={**ZERO_SIZES, "wiki": 5, "dependency_proxy": 0},
            missing=tuple(
                f"root_storage_statistics.{kind}"
                for kind in [*KIND_FIELDS, "dependency_proxy"]
                if kind != "wiki"
            ),
        )
    ]
    assert problems == [
        UsageProblem(
            "bare",
            "no statistics nor root_storage_statistics (group statistics need an administrator token)",
            neither,
        ),
        UsageProblem("neg", "statistics.repository_size: negative (-2)", negative),
    ]


# --- GitLab: namespace CI minutes (REST) ---------------------------------------------------------


def test_namespace_sample_gives_its_minutes() -> None:
    body = load(NAMESPACE)

    parsed = parse_namespace(body)

    assert parsed == NamespaceMinutes(
        namespace_id=125,
        full_path="testuser1",
        kind="user",
        monthly_minutes_used=Decimal(1),
        purchased_minutes_used=Decimal(1),
        total_minutes_used=Decimal(2),
    )
    usage = body["ci_minutes_usage"]
    assert usage["monthly_minutes_used"] + usage["purchased_minutes_used"] == usage["total_minutes_used"]


def test_a_namespace_without_ci_minutes_usage_is_a_problem() -> None:
    body = load(NAMESPACE)
    del body["ci_minutes_usage"]

    assert parse_namespace(body) == UsageProblem(
        "testuser1", "instance does not report ci_minutes_usage", body
    )


def test_namespace_minutes_variants_and_problems() -> None:
    body = load(NAMESPACE)
    body["ci_minutes_usage"] = {"monthly_minutes_used": 12.5}
    assert parse_namespace(body) == NamespaceMinutes(125, "testuser1", "user", Decimal("12.5"), None, None)

    cases = [
        ({"monthly_minutes_used": -1}, "ci_minutes_usage.monthly_minutes_used: negative (-1)"),
        ({"total_minutes_used": 3}, "ci_minutes_usage.monthly_minutes_used: missing"),
        (
            {"monthly_minutes_used": 1, "purchased_minutes_used": 1, "total_minutes_used": 5},
            "ci_minutes_usage: monthly_minutes_used (1) + purchased_minutes_used (1) "
            "!= total_minutes_used (5)",
        ),
        (
            {"monthly_minutes_used": 1, "purchased_minutes_used": "x"},
            "ci_minutes_usage.purchased_minutes_used: not a number ('x')",
        ),
        ([1], "ci_minutes_usage: not an object (list)"),
    ]
    for block, reason in cases:
        body["ci_minutes_usage"] = block
        assert parse_namespace(body) == UsageProblem("testuser1", reason, body)

    anonymous = {"id": "x", "ci_minutes_usage": {"monthly_minutes_used": 1}}
    assert parse_namespace(anonymous) == UsageProblem(
        "namespace", "id: not an integer id ('x'); full_path: missing; kind: missing", anonymous
    )
    with pytest.raises(ValueError, match=r"^GET /namespaces/:id: expected a JSON object, got list$"):
        parse_namespace([body])


# --- GitLab: CI minutes per month and project (GraphQL) ------------------------------------------


def test_graphql_sample_gives_the_project_minutes_of_its_month() -> None:
    body = load(GRAPHQL)

    projects, problems = parse_ci_minutes_usage_graphql(body, MAY_2021)

    assert problems == []
    assert projects == [ProjectMinutes("Project 1", None, Decimal(40), Decimal(80))]
    node = body["data"]["ciMinutesUsage"]["nodes"][0]
    raw_project_sum = sum(Decimal(str(p["minutes"])) for p in node["projects"]["nodes"])
    assert sum((p.minutes for p in projects), Decimal(0)) == raw_project_sum == Decimal(40)


def test_graphql_sample_month_keeps_the_namespace_total_above_the_projects() -> None:
    body = load(GRAPHQL)

    month = parse_ci_minutes_month(body, dt.date(2021, 5, 17))  # any day of the month picks its node

    assert month == CiMinutesMonth(
        month=MAY_2021,
        namespace_minutes=Decimal(50),
        namespace_shared_runners_seconds=Decimal(100),
        projects=[ProjectMinutes("Project 1", None, Decimal(40), Decimal(80))],
        problems=[],
        projects_after=None,
    )
    assert month.namespace_minutes is not None
    assert month.namespace_minutes - sum(p.minutes for p in month.projects) == Decimal(10)


def test_graphql_month_without_a_node_has_no_usage() -> None:
    month = parse_ci_minutes_month(load(GRAPHQL), dt.date(2021, 6, 1))

    assert month == CiMinutesMonth(dt.date(2021, 6, 1), Decimal(0), None, [], [], None)
    assert parse_ci_minutes_usage_graphql(load(GRAPHQL), dt.date(2021, 4, 1)) == ([], [])


def test_graphql_project_nodes_with_full_path_and_problems() -> None:
    good = {"name": "Api", "minutes": 12.5, "project": {"fullPath": "billing/api", "name": "Api"}}
    path_only = {"minutes": 3, "project": {"fullPath": "billing/web"}}
    negative = {"name": "Bad", "minutes": -4}
    anonymous = {"minutes": 1}
    not_object = "Project 9"
    body = graphql_body(month_node(minutes=20, projects=[good, path_only, negative, anonymous, not_object]))

    month = parse_ci_minutes_month(body, MAY_2021)

    assert month.namespace_minutes == Decimal(20)
    assert month.projects == [
        ProjectMinutes("Api", "billing/api", Decimal("12.5"), None),
        ProjectMinutes("billing/web", "billing/web", Decimal(3), None),
    ]
    label = "ciMinutesUsage 2021-05-01 projects.nodes"
    assert month.problems == [
        UsageProblem(f"{label}[2]", "minutes: negative (-4)", negative),
        UsageProblem(f"{label}[3]", "name: missing (and no project.fullPath)", anonymous),
        UsageProblem(f"{label}[4]", "project node is not an object (str)", {"value": "Project 9"}),
    ]


def test_graphql_month_node_problems() -> None:
    no_iso = {"month": "May", "minutes": 1}
    bad_iso = month_node(iso="2021-05-15")
    duplicate = month_node(minutes=7)
    body = graphql_body(month_node(minutes="lots", projects=[]), no_iso, bad_iso, duplicate, 3)

    month = parse_ci_minutes_month(body, MAY_2021)

    assert month.namespace_minutes is None
    assert month.projects == []
    assert [(problem.ref, problem.reason) for problem in month.problems] == [
        ("ciMinutesUsage.nodes[1]", "monthIso8601: missing (month 'May' has no year)"),
        ("ciMinutesUsage.nodes[2]", "monthIso8601: not the first day of a month (2021-05-15)"),
        ("ciMinutesUsage.nodes[3]", "a second node for 2021-05-01"),
        ("ciMinutesUsage.nodes[4]", "month node is not an object (int)"),
        ("ciMinutesUsage 2021-05-01", "minutes: not a number ('lots')"),
    ]
    assert month.problems[4].raw == {"month": "May", "monthIso8601": "2021-05-01", "minutes": "lots"}


def test_graphql_pagination_is_never_silently_truncated() -> None:
    projects = {"nodes": [{"name": "A", "minutes": 1}], "pageInfo": {"hasNextPage": True, "endCursor": "MQ"}}
    node = {**month_node(), "projects": projects}

    month = parse_ci_minutes_month(graphql_body(node), MAY_2021)
    assert (month.projects_after, [p.project_name for p in month.projects]) == ("MQ", ["A"])

    node["projects"] = {**projects, "pageInfo": {"hasNextPage": True}}
    with pytest.raises(ValueError, match="projects has a next page but no endCursor"):
        parse_ci_minutes_month(graphql_body(node), MAY_2021)

    later = graphql_body(month_node(iso="2021-04-01"), page_info={"hasNextPage": True, "endCursor": "Mg"})
    with pytest.raises(ValueError, match=r"no node for 2021-05-01 on this page and more pages follow"):
        parse_ci_minutes_month(later, MAY_2021)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"errors": [{"message": "Field 'ciMinutesUsage' doesn't exist on type 'Query'"}], "data": None},
            "the server answered errors: Field 'ciMinutesUsage' doesn't exist on type 'Query'",
        ),
        ({"data": {"ciMinutesUsage": None}}, "no data.ciMinutesUsage object"),
        ({"data": None}, "no data.ciMinutesUsage object"),
        ({"data": {"ciMinutesUsage": {"nodes": None}}}, "'nodes' is not a list"),
        ([], "expected a JSON object, got list"),
    ],
)
def test_graphql_bodies_that_are_not_a_usage_connection_are_a_broken_source(body: Any, message: str) -> None:
    with pytest.raises(ValueError, match=r"^GraphQL ciMinutesUsage") as caught:
        parse_ci_minutes_usage_graphql(body, MAY_2021)
    assert message in str(caught.value)
