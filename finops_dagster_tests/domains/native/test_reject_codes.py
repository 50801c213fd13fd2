"""Every kind of native reject gets its stable reason code, from the persisted nights.

GitLab entries the payload parser refuses are persisted as a night's problems (as the snapshot
asset does), then the month is priced from the persisted nights by the domain's `read_month`: the
code is found again from what was stored, whatever the number of nights.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import psycopg

from finops_dagster.domains.native.assets import read_month
from finops_dagster.domains.native.gitlab_payloads import parse_projects
from finops_dagster.domains.native.snapshots import Problem, Reading, Snapshot, save_snapshot
from finops_dagster.reference.snapshot import read_snapshot
from finops_dagster.reject_reasons import RejectReason as R

OCTOBER = dt.date(2026, 10, 1)
NOW = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)


def project(project_id: int, path: str, **statistics: object) -> dict[str, object]:
    sizes = {
        "repository_size": 1024,
        "lfs_objects_size": 0,
        "job_artifacts_size": 0,
        "packages_size": 0,
        "snippets_size": 0,
        "uploads_size": 0,
        "wiki_size": 0,
        "container_registry_size": 0,
        **statistics,
    }
    return {
        "id": project_id,
        "path_with_namespace": path,
        "namespace": {"full_path": path.split("/")[0]},
        "archived": False,
        "statistics": sizes,
    }


def test_each_kind_of_native_reject_has_its_code(mart: psycopg.Connection) -> None:
    _, problems = parse_projects(
        [
            project(1, "team/negative", repository_size=-5),
            project(2, "team/text", repository_size="big"),
            {"id": 3, "archived": False},
        ]
    )
    assert len(problems) == 3
    stored = [Problem(problem.ref, problem.reason, problem.raw) for problem in problems]
    unknown = Reading("team/x", "NOT_A_PRODUCT", "gauge", Decimal(4), attributes={"unit": "GB"})
    for day in (1, 2):
        save_snapshot(mart, Snapshot("gitlab", OCTOBER, dt.date(2026, 10, day), [unknown], stored), "run")

    load = read_month(mart, read_snapshot(mart, "native"), OCTOBER, "run-1", NOW)

    found = sorted((reject.reason_code, reject.reason) for reject in load.rejects)
    assert [code for code, _ in found] == [
        R.MALFORMED_RECORD,
        R.MALFORMED_RECORD,
        R.NEGATIVE_QUANTITY,
        R.UNKNOWN_PRODUCT,
    ]
    negative = next(reason for code, reason in found if code == R.NEGATIVE_QUANTITY)
    assert negative == "statistics.repository_size: negative (-5) (2 night(s))"
    assert next(reason for code, reason in found if code == R.UNKNOWN_PRODUCT).startswith(
        "unknown product NOT_A_PRODUCT"
    )
