"""The native month rules on persisted snapshots: gauges averaged over the nights, counters at each
consumer's latest reading."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import psycopg

from finops_dagster.domains.native.snapshots import Problem, Reading, Snapshot, month_figures, save_snapshot

OCTOBER = dt.date(2025, 10, 1)


def night(day: int, month: int = 10) -> dt.date:
    return dt.date(2025, month, day)


def figures(conn: psycopg.Connection) -> dict[tuple[str, str], Decimal]:
    return {(f.source, f.consumer): f.quantity for f in month_figures(conn, OCTOBER)}


def test_gauges_average_over_the_nights_and_an_absent_night_counts_zero(mart: psycopg.Connection) -> None:
    for day, sizes in ((1, {"p1": "10", "p2": "4"}), (2, {"p1": "20"}), (3, {"p1": "30", "p2": "8"})):
        readings = [Reading(c, "NT_GITLAB_REPOSITORY_GB", "gauge", Decimal(q)) for c, q in sizes.items()]
        save_snapshot(mart, Snapshot("gitlab", OCTOBER, night(day), readings, []), "run")
    assert figures(mart) == {("gitlab", "p1"): Decimal(20), ("gitlab", "p2"): Decimal(4)}


def test_counters_keep_each_latest_reading_even_after_an_empty_night(mart: psycopg.Connection) -> None:
    report = [("team-a", "900"), ("team-b", "50")]
    save_snapshot(mart, Snapshot("cube", OCTOBER, night(31), [
        Reading(c, "NT_CUBE_QUERY_HOURS", "counter", Decimal(q)) for c, q in report], []), "run")
    save_snapshot(mart, Snapshot("cube", OCTOBER, night(14, 11), [
        Reading("team-a", "NT_CUBE_QUERY_HOURS", "counter", Decimal("1000"))], []), "run")
    # a later night whose report was refused (another period answered): no reading at all
    save_snapshot(mart, Snapshot("cube", OCTOBER, night(15, 11), [],
                                 [Problem("cube report 2025-10", "answered period '2025-09'")]), "run")

    assert figures(mart) == {("cube", "team-a"): Decimal(1000), ("cube", "team-b"): Decimal(50)}
