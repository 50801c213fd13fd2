"""The month's figures kept as nights are saved (finops.native_snapshot_month) are those computed
from every persisted night, also when a night is saved again with consumers gone or changed."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import psycopg

from finops_dagster.domains.native.snapshots import Reading, Snapshot, month_figures, save_snapshot

OCTOBER = dt.date(2025, 10, 1)

FROM_EVERY_NIGHT = """
WITH nights AS (
    SELECT source, count(*) AS nights
    FROM finops.native_snapshot_night WHERE period_month = %(month)s GROUP BY source
)
SELECT s.source, s.consumer, s.product_id, s.kind,
       CASE s.kind WHEN 'gauge' THEN sum(s.quantity) / n.nights
                   ELSE (array_agg(s.quantity ORDER BY s.night DESC))[1] END,
       (array_agg(s.application ORDER BY s.night DESC))[1],
       (array_agg(s.attributes ORDER BY s.night DESC))[1],
       sum(s.records)
FROM finops.native_snapshot s JOIN nights n USING (source)
WHERE s.period_month = %(month)s
GROUP BY s.source, s.consumer, s.product_id, s.kind, n.nights
ORDER BY 1, 2, 3
"""
"""The month computed from every night, as it was before the month's figures were kept."""


def night(day: int) -> dt.date:
    return dt.date(2025, 10, day)


def gauge(consumer: str, quantity: str, application: str | None = None, records: int = 1) -> Reading:
    return Reading(
        consumer,
        "NT_GITLAB_REPOSITORY_GB",
        "gauge",
        Decimal(quantity),
        application,
        {"path": f"group/{consumer}"},
        records,
    )


def counter(consumer: str, quantity: str, application: str | None = None) -> Reading:
    return Reading(consumer, "NT_GITLAB_CI_MINUTES", "counter", Decimal(quantity), application)


def save(conn: psycopg.Connection, day: int, readings: list[Reading]) -> None:
    save_snapshot(conn, Snapshot("gitlab", OCTOBER, night(day), readings, []), f"run-{day}")


def kept(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    return [
        (f.source, f.consumer, f.product_id, f.kind, f.quantity, f.application, f.attributes, f.readings)
        for f in month_figures(conn, OCTOBER)
    ]


def recomputed(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in conn.execute(FROM_EVERY_NIGHT, {"month": OCTOBER}).fetchall()]


def test_figures_kept_night_by_night_are_those_of_every_night(mart: psycopg.Connection) -> None:
    save(mart, 1, [gauge("p1", "10", "PAYMENTS"), gauge("p2", "4"), counter("p1", "100")])
    save(mart, 2, [gauge("p1", "20", "BILLING", records=2), counter("p1", "150"), counter("p3", "7")])
    save(mart, 3, [gauge("p1", "30"), gauge("p2", "8.5")])

    assert kept(mart) == recomputed(mart)
    by_consumer = {(row[1], row[3]): row for row in kept(mart)}
    assert by_consumer[("p1", "gauge")][4] == Decimal(20)  # (10 + 20 + 30) / 3 nights
    assert by_consumer[("p2", "gauge")][4] == Decimal("4.1666666666666667")  # (4 + 8.5) / 3
    assert by_consumer[("p1", "counter")][4] == Decimal(150)  # its latest reading
    assert by_consumer[("p1", "gauge")][7] == 4  # records of its three nights


def test_a_night_saved_again_replaces_its_figures(mart: psycopg.Connection) -> None:
    """The second run of a night supersedes the first: the consumers it no longer lists fall back
    to their latest earlier night (or leave the month), the others take tonight's values."""
    save(mart, 1, [gauge("p1", "10"), counter("p1", "100", "PAYMENTS"), gauge("gone", "5")])
    save(mart, 2, [gauge("p1", "20"), counter("p1", "150", "BILLING"), gauge("p2", "3"), counter("p4", "9")])
    save(mart, 2, [gauge("p1", "40"), gauge("p2", "6")])

    assert kept(mart) == recomputed(mart)
    by_consumer = {(row[1], row[3]): row for row in kept(mart)}
    assert by_consumer[("p1", "gauge")][4] == Decimal(25)  # (10 + 40) / 2
    assert by_consumer[("p1", "counter")][4:6] == (Decimal(100), "PAYMENTS")  # night 2 no longer lists it
    assert ("p4", "counter") not in by_consumer  # only night 2 had it
    assert by_consumer[("gone", "gauge")][4] == Decimal("2.5")

    save(mart, 1, [])
    assert kept(mart) == recomputed(mart)
    assert {(row[1], row[3]) for row in kept(mart)} == {("p1", "gauge"), ("p2", "gauge")}


def test_the_month_table_does_not_grow_with_its_nights(mart: psycopg.Connection) -> None:
    """Each night updates every row: with room on the pages those updates reuse them (HOT), so the
    table holds about two versions of each row whatever the number of nights, with no VACUUM."""
    mart.execute("ALTER TABLE finops.native_snapshot_month SET (autovacuum_enabled = false)")
    readings = [gauge(f"project-{index:04d}", "1.5") for index in range(2_000)]

    def pages() -> int:
        row = mart.execute("SELECT pg_relation_size('finops.native_snapshot_month') / 8192").fetchone()
        return int(row[0]) if row else 0

    save(mart, 1, readings)
    first = pages()
    for day in range(2, 16):
        save(mart, day, readings)
    assert pages() <= 3 * first, (first, pages())
    assert mart.execute(
        "SELECT sum(nights), sum(quantity_sum) FROM finops.native_snapshot_month"
    ).fetchone() == (15 * 2_000, Decimal("45000.0"))
