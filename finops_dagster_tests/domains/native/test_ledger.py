"""native's record ledger: what the services' answers held on each night of a month ends in a
relevé's count or a reject, and a parser that drops a project fails the blocking reconciliation.

The simulated services (60 GitLab projects, 4 of them malformed; 30 Artifactory repositories, one
unparseable, and the TOTAL row; Cube's usage report) are read on three September nights by the
clients, as the nightly runs would; the records expected are counted here from the simulator's own
bodies: a GitLab project is nine records (one per size it reports), a top-level namespace's minutes
one, an Artifactory repository row one (the TOTAL summary row none), a report item one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

import finops_dagster.domains.native.gitlab as gitlab_client
from finops_dagster.demo.estate import Estate, build_estate
from finops_dagster.demo.native_services import NativeServicesSimulator
from finops_dagster_tests.domains.native.test_assets import (
    GITLAB_SIZE_PRODUCTS,
    RELEVES_AND_PUBLISH,
    SOURCE_SETTINGS,
    TODAY,
    Pipeline,
    simulator_for,
)
from finops_dagster_tests.support.domain_runs import check_evaluations, failures, open_domain_run

SEPTEMBER = dt.date(2025, 9, 1)
NIGHTS = [dt.date(2025, 9, day) for day in (10, 11, 12)]


@pytest.fixture(scope="module")
def estate() -> Estate:
    return build_estate(applications=40)


@pytest.fixture
def pipeline(
    monkeypatch: pytest.MonkeyPatch, resources: dict[str, Any], mart: psycopg.Connection, estate: Estate
) -> Iterator[Pipeline]:
    with open_domain_run(Pipeline, domain="native", source_settings=SOURCE_SETTINGS, estate=estate, day=TODAY,
                         monkeypatch=monkeypatch, resources=resources, mart=mart) as pipeline:
        yield pipeline


def expected_ledger(simulator: NativeServicesSimulator) -> dict[str, int]:
    """The records the three nights' answers held, from the simulator's bodies."""
    ledger = {"gitlab": 0, "artifactory": 0, "cube": 0}
    roots = [namespace for namespace in simulator.namespaces if namespace.parent is None]
    for night in NIGHTS:
        simulator.night = night
        projects = simulator.gitlab_projects_offset(page=1, per_page=1)[1]
        ledger["gitlab"] += projects * len(GITLAB_SIZE_PRODUCTS) + len(roots)
        rows = simulator.artifactory_storageinfo()["repositoriesSummaryList"]
        ledger["artifactory"] += len([row for row in rows if row["repoKey"] != "TOTAL"])
        ledger["cube"] += len(simulator.cube_items(f"{SEPTEMBER:%Y-%m}"))
    simulator.night = TODAY
    return ledger


def records_by_source(mart: psycopg.Connection, run_id: str) -> dict[str, int]:
    rows = mart.execute(
        """
        SELECT source, sum(n) FROM (
            SELECT source, source_record_count AS n FROM finops.native_releves WHERE run_id = %(run)s
            UNION ALL
            SELECT source, source_record_count FROM finops.releve_reject WHERE run_id = %(run)s) AS r
        GROUP BY source
        """,
        {"run": run_id},
    ).fetchall()
    return {source: int(total) for source, total in rows}


def test_every_record_of_the_nights_is_in_a_releve_or_a_reject(pipeline: Pipeline, estate: Estate) -> None:
    simulator = simulator_for(estate)
    pipeline.start(simulator)
    pipeline.persist_nights(simulator, NIGHTS)

    result = pipeline.run(SEPTEMBER, only=RELEVES_AND_PUBLISH)

    assert result.success, failures(result)
    assert check_evaluations(result)[("native_releves", "reconciliation")].passed
    expected = expected_ledger(simulator)
    (ledger,) = pipeline.mart.execute(
        "SELECT details -> 'record_ledger' FROM finops.domain_load WHERE run_id = %s", (result.run_id,)
    ).fetchone()
    assert ledger == expected
    assert records_by_source(pipeline.mart, result.run_id) == expected
    # the malformed projects are rejects of nine records a night, the unparseable repository of one
    malformed = pipeline.mart.execute(
        "SELECT source, source_record_count FROM finops.releve_reject WHERE run_id = %s ORDER BY 1, 2",
        (result.run_id,)).fetchall()
    assert ("gitlab", len(NIGHTS) * len(GITLAB_SIZE_PRODUCTS)) in malformed
    assert ("artifactory", len(NIGHTS)) in malformed


def test_nights_persisted_before_they_were_counted_keep_no_ledger(pipeline: Pipeline, estate: Estate) -> None:
    simulator = simulator_for(estate)
    pipeline.start(simulator)
    pipeline.persist_nights(simulator, NIGHTS)
    pipeline.mart.execute("UPDATE finops.native_snapshot_night SET records_received = NULL "
                          "WHERE source = 'cube' AND night = %s", (NIGHTS[0],))

    result = pipeline.run(SEPTEMBER, only=RELEVES_AND_PUBLISH)

    assert result.success, failures(result)
    (ledger,) = pipeline.mart.execute(
        "SELECT details -> 'record_ledger' FROM finops.domain_load WHERE run_id = %s", (result.run_id,)
    ).fetchone()
    assert set(ledger) == {"gitlab", "artifactory"}


def test_a_parser_that_drops_a_project_fails_the_blocking_reconciliation(
    pipeline: Pipeline, estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    simulator = simulator_for(estate)
    pipeline.start(simulator)
    original = gitlab_client.parse_projects

    def all_but_the_first(body: Any) -> Any:
        return original(body[1:] if isinstance(body, list) else body)

    monkeypatch.setattr(gitlab_client, "parse_projects", all_but_the_first)
    pipeline.persist_nights(simulator, NIGHTS[:1])

    result = pipeline.run(SEPTEMBER, only=RELEVES_AND_PUBLISH)

    reconciliation = check_evaluations(result)[("native_releves", "reconciliation")]
    assert not reconciliation.passed
    assert reconciliation.description.startswith("2025-09 native gitlab: ")
    assert reconciliation.description.endswith(f"({len(GITLAB_SIZE_PRODUCTS)} unaccounted for)")
    assert not result.success
    assert pipeline.mart.execute("SELECT count(*) FROM finops.fact_releve").fetchone() == (0,)
