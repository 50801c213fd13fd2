"""The native-domain parsers (GitLab, Artifactory) against the real sample bodies and each malformed shape.

Expected values are computed here from the raw JSON by separate plain loops (byte sums of the raw
statistics fields, `Decimal(text) * 1024**n` for human sizes), so a parser bug cannot hide behind its
own arithmetic.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import pytest

from finops_dagster.domains.native.artifactory_payloads import (
    FileStats,
    RepositoryStorage,
    StorageInfo,
    parse_file_stats,
    parse_size,
    parse_storage_info,
)
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
from finops_dagster.domains.native.problems import (
    UsageProblem,
    ValueProblem,
    byte_count,
    count,
    identifier,
    quantity,
)
from finops_dagster_tests.support.samples import SAMPLES

GITLAB = SAMPLES / "gitlab"
ARTIFACTORY = SAMPLES / "artifactory"
PROJECTS = GITLAB / "projects_list_statistics_doc_sample.json"
GROUPS = GITLAB / "group_statistics_root_storage_doc_sample.json"
NAMESPACE = GITLAB / "namespace_ci_minutes_usage_mr247465_sample.json"
GRAPHQL = GITLAB / "graphql_ciMinutesUsage_shape.json"
STORAGEINFO = ARTIFACTORY / "storageinfo_doc_sample.json"
FILE_STATS = ARTIFACTORY / "file_stats_doc_sample.json"

UTC = dt.UTC
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
BINARY = {"bytes": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def human_bytes(number: str, unit: str) -> int:
    """The independent reference for a human size: the decimal text times the binary unit, rounded."""
    exact = Decimal(number.replace(",", "")) * BINARY[unit]
    return int(exact.to_integral_value(rounding=ROUND_HALF_EVEN))


def project_entry(**overrides: Any) -> dict[str, Any]:
    """The first project of the sample (diaspora/diaspora-client), altered."""
    entry: dict[str, Any] = copy.deepcopy(load(PROJECTS)[0])
    entry.update(overrides)
    return entry


def with_statistics(**sizes: Any) -> dict[str, Any]:
    entry = project_entry()
    entry["statistics"].update(sizes)
    return entry


def storage_body(*rows: Any) -> dict[str, Any]:
    return {"repositoriesSummaryList": list(rows)}


def repo_row(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"repoKey": "libs-release-local", "repoType": "LOCAL", "packageType": "Maven"}
    row.update(overrides)
    return row


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


def test_every_gitlab_and_artifactory_sample_is_one_this_module_reads() -> None:
    assert sorted(path.name for path in GITLAB.glob("*.json")) == sorted(
        path.name for path in (PROJECTS, GROUPS, NAMESPACE, GRAPHQL)
    )
    assert sorted(path.name for path in ARTIFACTORY.glob("*.json")) == sorted(
        path.name for path in (STORAGEINFO, FILE_STATS)
    )


# --- shared readers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (0, 0),
        (1038090, 1038090),
        ("2066080", 2066080),
        (" 42 ", 42),
        (1024.0, 1024),
        (Decimal("7"), 7),
        ("1e3", 1000),
        (-0.0, 0),
        (2**63 - 1, 2**63 - 1),
    ],
)
def test_byte_count_accepts_whole_non_negative_numbers(raw: Any, expected: int) -> None:
    value = byte_count(raw, "size")
    assert value == expected
    assert type(value) is int


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "size: missing"),
        (True, "size: not a number (bool)"),
        (False, "size: not a number (bool)"),
        (-5, "size: negative (-5)"),
        ("-1", "size: negative (-1)"),
        (float("nan"), "size: NaN"),
        ("NaN", "size: NaN"),
        ("inf", "size: infinite (inf)"),
        ("12 MB", "size: not a number ('12 MB')"),
        ("abc", "size: not a number ('abc')"),
        ([1], "size: not a number (list)"),
        ({"bytes": 1}, "size: not a number (dict)"),
        (1.5, "size: not a whole number of bytes (1.5)"),
        (2**63, f"size: too large ({2**63})"),
    ],
)
def test_byte_count_refuses_with_a_reason(raw: Any, reason: str) -> None:
    with pytest.raises(ValueProblem) as caught:
        byte_count(raw, "size")
    assert str(caught.value) == reason


def test_count_quantity_and_identifier_readers() -> None:
    assert count(1337, "downloadCount") == 1337
    with pytest.raises(ValueProblem, match=r"^downloadCount: not a whole number of items \(2\.5\)$"):
        count(2.5, "downloadCount")
    assert quantity(0.1, "minutes") == Decimal("0.1")
    assert quantity(0.1, "minutes") != Decimal.from_float(0.1)
    assert quantity("12.50", "minutes") == Decimal("12.50")
    assert str(quantity(-0.0, "minutes")) == "0.0"
    with pytest.raises(ValueProblem, match=r"^minutes: negative \(-1\.5\)$"):
        quantity(-1.5, "minutes")
    assert identifier(4, "id") == 4
    assert identifier("125", "id") == 125
    for raw, reason in [
        (None, "id: missing"),
        (True, "id: not an integer id (bool)"),
        (4.0, "id: not an integer id (float)"),
        ("abc", "id: not an integer id ('abc')"),
        (-3, "id: not an integer id ('-3')"),
        (0, "id: not a positive id (0)"),
    ]:
        with pytest.raises(ValueProblem) as caught:
            identifier(raw, "id")
        assert str(caught.value) == reason


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


# --- Artifactory: human sizes --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("59.77 GB", human_bytes("59.77", "GB")),
        ("34.46 MB", human_bytes("34.46", "MB")),
        ("0 bytes", 0),
        ("1023 bytes", 1023),
        ("1,024 KB", 1024 * 1024),
        ("1.00 KB", 1024),
        ("32.22 GB (15.77%)", human_bytes("32.22", "GB")),
        ("172.06 GB (84.23%)", human_bytes("172.06", "GB")),
        ("1,536.25 TB", human_bytes("1536.25", "TB")),
        ("  3.48 gb ", human_bytes("3.48", "GB")),
        ("5MB", 5 * 1024**2),
    ],
)
def test_parse_size_reads_every_human_form_in_binary_units(text: str, expected: int) -> None:
    assert parse_size(text) == expected


def test_parse_size_concrete_byte_values() -> None:
    # 59.77 × 1024³ = 64,177,548,820.48 → rounded to the byte; 34.46 × 1024² = 36,133,928.96.
    assert parse_size("59.77 GB") == 64_177_548_820
    assert parse_size("34.46 MB") == 36_133_929
    assert parse_size("32.22 GB (15.77%)") == 34_595_961_569


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("n/a", "not a size: 'n/a' has no number"),
        ("", "not a size: '' has no number"),
        ("GB", "not a size: 'GB' has no number"),
        ("-3 GB", "not a size: '-3 GB' is negative"),
        ("12 XB", "not a size: '12 XB' has an unknown unit 'XB' (expected bytes, KB, MB, GB or TB)"),
        ("12 PB", "not a size: '12 PB' has an unknown unit 'PB' (expected bytes, KB, MB, GB or TB)"),
        ("12", "not a size: '12' has no unit (expected bytes, KB, MB, GB or TB)"),
        ("1,5 GB", "not a size: '1,5 GB' has a malformed number '1,5'"),
        ("1.2.3 MB", "not a size: '1.2.3 MB' has a malformed number '1.2.3'"),
        ("1.5 bytes", "not a size: '1.5 bytes' is a fraction of a byte"),
        ("1 2 GB", "not a size: '1 2 GB' is not '<number> <unit>'"),
    ],
)
def test_parse_size_refuses_with_a_clear_reason(text: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_size(text)
    assert str(caught.value) == reason


def test_parse_size_refuses_what_is_not_a_string() -> None:
    with pytest.raises(ValueError, match=r"^not a size: expected a string like '59.77 GB', got int$"):
        parse_size(12)  # type: ignore[arg-type]


# --- Artifactory: storage info -------------------------------------------------------------------


def test_storageinfo_sample_parses_every_repository_and_sets_total_apart() -> None:
    body = load(STORAGEINFO)

    info = parse_storage_info(body)

    assert info == StorageInfo(
        repositories=[
            RepositoryStorage("plugins-release", "VIRTUAL", "Maven", None, 0),
            RepositoryStorage("repo", "VIRTUAL", "Generic", None, 0),
            RepositoryStorage("npm-fed", "FEDERATED", "npm", "default", 36_138_261),
        ],
        problems=[],
        total_bytes=64_177_548_820,
    )
    # Independently: usedSpaceInBytes when present, else the human usedSpace, over the non-TOTAL rows.
    expected_sum = 0
    for row in body["repositoriesSummaryList"]:
        if row["repoKey"] == "TOTAL":
            continue
        if "usedSpaceInBytes" in row:
            expected_sum += row["usedSpaceInBytes"]
        else:
            number, unit = row["usedSpace"].split()
            expected_sum += human_bytes(number, unit)
    assert sum(repo.used_bytes for repo in info.repositories) == expected_sum == 36_138_261
    # The TOTAL row does NOT equal the sum: the doc sample elides most repositories ("...").
    total_row = body["repositoriesSummaryList"][-1]
    assert info.total_bytes == human_bytes(*total_row["usedSpace"].split())
    assert info.total_bytes != expected_sum
    assert len(info.repositories) + len(info.problems) + 1 == len(body["repositoriesSummaryList"])


def test_storageinfo_sample_shows_artifactory_sizes_are_binary_units() -> None:
    npm_fed = load(STORAGEINFO)["repositoriesSummaryList"][2]
    exact = npm_fed["usedSpaceInBytes"]

    parsed = parse_size(npm_fed["usedSpace"])  # "34.46 MB"

    assert exact == 36_138_261
    assert abs(parsed - exact) == 4_332
    assert abs(parsed - exact) <= Decimal("0.005") * 1024**2  # within the rounding of two decimals in MB
    assert abs(34_460_000 - exact) > 1_000_000  # decimal megabytes would be 1.7 MB off


def test_storageinfo_sample_summaries_are_all_readable_human_sizes() -> None:
    body = load(STORAGEINFO)
    fields = [
        body["binariesSummary"]["binariesSize"],
        body["binariesSummary"]["artifactsSize"],
        body["fileStoreSummary"]["totalSpace"],
        body["fileStoreSummary"]["usedSpace"],
        body["fileStoreSummary"]["freeSpace"],
    ]

    parsed = [parse_size(text) for text in fields]

    assert parsed == [
        human_bytes("3.48", "GB"),
        human_bytes("59.77", "GB"),
        human_bytes("204.28", "GB"),
        human_bytes("32.22", "GB"),
        human_bytes("172.06", "GB"),
    ]
    assert parsed[1] == parse_storage_info(body).total_bytes  # artifactsSize is the TOTAL row's usedSpace
    # used + free is the total within the two-decimal rounding of each figure.
    assert abs(parsed[3] + parsed[4] - parsed[2]) <= Decimal("0.015") * 1024**3
    # Counts are strings with thousands separators; the TOTAL row writes the same count as an integer.
    assert int(body["binariesSummary"]["artifactsCount"].replace(",", "")) == 2_084_408
    assert body["repositoriesSummaryList"][-1]["filesCount"] == 2_084_408


def test_repository_rows_prefer_bytes_and_keep_virtual_repositories_at_zero() -> None:
    rows = [
        repo_row(usedSpace="1.00 KB", usedSpaceInBytes=1000),
        repo_row(repoKey="old", usedSpace="2.50 MB"),
        repo_row(repoKey="as-text", usedSpaceInBytes="123", projectKey="  "),
        repo_row(repoKey="virt", repoType="VIRTUAL", usedSpace="12 XB"),
        repo_row(repoKey="remote-cache", repoType="remote", usedSpace="3 bytes", packageType=None),
        repo_row(repoKey="TOTAL", repoType="LOCAL", usedSpace="4 bytes"),  # a real repository named TOTAL
    ]

    info = parse_storage_info(storage_body(*rows))

    assert info == StorageInfo(
        repositories=[
            RepositoryStorage("libs-release-local", "LOCAL", "Maven", None, 1000, False),
            RepositoryStorage("old", "LOCAL", "Maven", None, 2_621_440, True),
            RepositoryStorage("as-text", "LOCAL", "Maven", None, 123, False),
            RepositoryStorage("virt", "VIRTUAL", "Maven", None, 0, False),
            RepositoryStorage("remote-cache", "REMOTE", None, None, 3, True),
            RepositoryStorage("TOTAL", "LOCAL", "Maven", None, 4, True),
        ],
        problems=[],
        total_bytes=None,
    )


def test_unusable_repository_rows_become_problems() -> None:
    rows = [
        repo_row(repoKey="bad-size", usedSpace="n/a"),
        repo_row(repoKey="neg-bytes", usedSpaceInBytes=-1, usedSpace="1 bytes"),
        repo_row(repoKey="no-size"),
        repo_row(repoKey="no-type", repoType=None, usedSpace="1 bytes"),
        repo_row(repoKey=None, usedSpace="1 bytes"),
        repo_row(repoKey="odd-key", packageType=7, usedSpace="1 bytes"),
        "garbage",
        repo_row(repoKey="fine", usedSpace="8 bytes"),
    ]

    info = parse_storage_info(storage_body(*rows))

    assert info.repositories == [RepositoryStorage("fine", "LOCAL", "Maven", None, 8, True)]
    assert [(problem.ref, problem.reason) for problem in info.problems] == [
        ("bad-size", "usedSpace: not a size: 'n/a' has no number"),
        ("neg-bytes", "usedSpaceInBytes: negative (-1)"),
        ("no-size", "usedSpace: missing (and no usedSpaceInBytes)"),
        ("no-type", "repoType: missing"),
        ("repositoriesSummaryList[4]", "repoKey: missing"),
        ("odd-key", "packageType: not a string (int)"),
        ("repositoriesSummaryList[6]", "repository entry is not an object (str)"),
    ]
    assert info.problems[0].raw == rows[0]
    assert info.problems[6].raw == {"value": "garbage"}
    assert info.total_bytes is None


def test_total_row_variants() -> None:
    total = {"repoKey": "TOTAL", "repoType": "NA", "usedSpace": "2.00 KB"}
    exact_total = {"repoKey": "TOTAL", "usedSpaceInBytes": 2050, "usedSpace": "2.00 KB"}
    bad_total = {"repoKey": "TOTAL", "repoType": "NA", "usedSpace": "lots"}

    assert parse_storage_info(storage_body(repo_row(usedSpace="1 bytes"), total)).total_bytes == 2048
    assert parse_storage_info(storage_body(exact_total)).total_bytes == 2050

    info = parse_storage_info(storage_body(bad_total))
    assert info.total_bytes is None
    assert info.problems == [
        UsageProblem(
            "repositoriesSummaryList[0] (TOTAL)", "usedSpace: not a size: 'lots' has no number", bad_total
        )
    ]

    info = parse_storage_info(storage_body(total, exact_total))
    assert info.total_bytes == 2048
    assert info.problems == [
        UsageProblem("repositoriesSummaryList[1] (TOTAL)", "a second TOTAL row", exact_total)
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "expected a JSON object, got list"),
        ({"binariesSummary": {}}, "expected a 'repositoriesSummaryList' list, got no such key"),
        (
            {"repositoriesSummaryList": {"repoKey": "x"}},
            "expected a 'repositoriesSummaryList' list, got dict",
        ),
    ],
)
def test_a_storageinfo_body_that_is_not_a_summary_is_a_broken_source(body: Any, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_storage_info(body)
    assert str(caught.value) == f"GET /api/storageinfo: {message}"


# --- Artifactory: file statistics ----------------------------------------------------------------


def test_file_stats_sample() -> None:
    body = load(FILE_STATS)

    stats = parse_file_stats(body)

    assert stats == FileStats(
        uri="http://localhost:8081/artifactory/api/storage/libs-release-local/org/acme/foo/1.0/foo-1.0.jar",
        download_count=1337,
        last_downloaded=dt.datetime(2014, 11, 1, 0, 0, tzinfo=UTC),
        last_downloaded_by="user1",
    )
    assert isinstance(stats, FileStats)
    assert stats.last_downloaded is not None
    assert int(stats.last_downloaded.timestamp() * 1000) == body["lastDownloaded"]


def test_file_stats_variants_and_problems() -> None:
    never = {"uri": "http://a/x.jar", "downloadCount": 0, "lastDownloaded": 0}
    assert parse_file_stats(never) == FileStats("http://a/x.jar", 0, None, None)

    bad = {"downloadCount": -2, "lastDownloaded": "yesterday"}
    assert parse_file_stats(bad) == UsageProblem(
        "file stats",
        "uri: missing; downloadCount: negative (-2); lastDownloaded: not a number ('yesterday')",
        bad,
    )
    with pytest.raises(
        ValueError, match=r"^GET /api/storage/\.\.\.\?stats: expected a JSON object, got str$"
    ):
        parse_file_stats("oops")
