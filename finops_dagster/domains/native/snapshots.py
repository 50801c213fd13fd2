"""Nightly snapshots of services that only know their current state, and the month computed from them.

GitLab and Artifactory report today's sizes; nobody can ask them what they held last month. So
every run persists what each service says tonight (finops.native_snapshot), and a month's relevés
are computed from that month's persisted nights only — reprocessing a past month never calls an API
and gives the same result as the night it ran.

Month rules, per product kind:
- gauge (a level, e.g. bytes stored): the average over the month's nights that have a snapshot of the
  source — the sum of what each night says divided by that number of nights; a consumer absent on a
  night counts 0 that night (GB-month);
- counter (month-to-date, e.g. CI minutes, a usage report of the month): each consumer's latest
  reading of the month — an empty or partial last night (a refused report, one namespace that did
  not answer) never turns a month's usage back to zero.
What a night could not read (a malformed project, an unparseable size) is kept with the night and
becomes a reject of its month, counted once per consumer and reason with the number of nights.

Record ledger: each night keeps the records its answer held (`records_received`, counted by the
client as the pages arrived, before parsing), and every stored reading and problem the records it
stands for. A month's relevé counts the records of all the nights it was computed from (a counter's
earlier nights included: the latest supersedes them), a problem's reject those of its nights, so
the month's records received = relevés' + rejects' `source_record_count`, which the reconciliation
checks per source (for months whose every night was counted).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql


@dataclass(frozen=True)
class Reading:
    """One consumer's figure for one product, as a service stated it tonight."""

    consumer: str
    product_id: str
    kind: str
    quantity: Decimal
    application: str | None = None
    attributes: dict[str, str] = field(default_factory=dict, hash=False)
    records: int = 1
    """Records of the answer this reading stands for (a GitLab project is one per size it reports)."""


@dataclass(frozen=True)
class Problem:
    ref: str
    reason: str
    raw: dict[str, Any] = field(default_factory=dict, hash=False)
    records: int = 1


@dataclass(frozen=True)
class Snapshot:
    """Everything one source said on one night, for the month the figures belong to."""

    source: str
    period_month: dt.date
    night: dt.date
    readings: list[Reading]
    problems: list[Problem]
    records_received: int | None = None
    """Records the night's answer held for this month, counted before parsing (None: not counted)."""


def save_snapshot(conn: psycopg.Connection, snapshot: Snapshot, run_id: str) -> None:
    """Replace the source's snapshot of that night (a second run the same night supersedes the first)."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "DELETE FROM finops.native_snapshot_night WHERE source = %s AND period_month = %s AND night = %s",
            (snapshot.source, snapshot.period_month, snapshot.night),
        )
        cur.execute(
            "INSERT INTO finops.native_snapshot_night (source, period_month, night, items, problems, run_id, "
            "records_received) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (
                snapshot.source,
                snapshot.period_month,
                snapshot.night,
                len(snapshot.readings),
                json.dumps([_problem_json(problem) for problem in snapshot.problems], default=str),
                run_id,
                snapshot.records_received,
            ),
        )
        with cur.copy(
            "COPY finops.native_snapshot (source, period_month, night, consumer, product_id, kind, quantity, "
            "application, attributes, records) FROM STDIN"
        ) as copy:
            for reading in _merged(snapshot.readings):
                copy.write_row(
                    (
                        snapshot.source,
                        snapshot.period_month,
                        snapshot.night,
                        reading.consumer,
                        reading.product_id,
                        reading.kind,
                        reading.quantity,
                        reading.application,
                        json.dumps(reading.attributes),
                        reading.records,
                    )
                )


def _problem_json(problem: Problem) -> dict[str, Any]:
    return {"ref": problem.ref, "reason": problem.reason, "raw": problem.raw, "records": problem.records}


def _merged(readings: Iterable[Reading]) -> Iterator[Reading]:
    """One row per consumer and product (a service may list a consumer twice, e.g. across pages)."""
    merged: dict[tuple[str, str], Reading] = {}
    for reading in readings:
        key = (reading.consumer, reading.product_id)
        previous = merged.get(key)
        merged[key] = (
            reading
            if previous is None
            else Reading(
                reading.consumer,
                reading.product_id,
                reading.kind,
                previous.quantity + reading.quantity,
                previous.application or reading.application,
                {**reading.attributes, **previous.attributes},
                previous.records + reading.records,
            )
        )
    yield from merged.values()


MONTH_QUERY = """
WITH nights AS (
    SELECT source, count(*) AS nights
    FROM finops.native_snapshot_night WHERE period_month = %(month)s GROUP BY source
)
SELECT s.source, s.consumer, s.product_id, s.kind,
       CASE s.kind WHEN 'gauge' THEN sum(s.quantity) / n.nights
                   ELSE (array_agg(s.quantity ORDER BY s.night DESC))[1] END AS quantity,
       (array_agg(s.application ORDER BY s.night DESC))[1] AS application,
       (array_agg(s.attributes ORDER BY s.night DESC))[1] AS attributes,
       sum(s.records) AS readings
FROM finops.native_snapshot s JOIN nights n USING (source)
WHERE s.period_month = %(month)s
GROUP BY s.source, s.consumer, s.product_id, s.kind, n.nights
ORDER BY 1, 2, 3
"""


MONTH_MEASURES = sql.SQL(
    "SELECT source, consumer, product_id, quantity, application, attributes, readings FROM ("
    + MONTH_QUERY
    + ") AS figures"
)
"""The month's figures as the metered measures the pricing stages (priced_usage.py), in the same
order, without leaving the server."""


@dataclass(frozen=True)
class MonthFigure:
    source: str
    consumer: str
    product_id: str
    kind: str
    quantity: Decimal
    application: str | None
    attributes: dict[str, str]
    readings: int
    """Records of the month's nights behind the figure."""


def month_figures(conn: psycopg.Connection, month: dt.date) -> list[MonthFigure]:
    """The month of every source from its persisted nights (see the module docstring)."""
    rows = conn.execute(MONTH_QUERY, {"month": month}).fetchall()
    return [
        MonthFigure(
            source=row[0],
            consumer=row[1],
            product_id=row[2],
            kind=row[3],
            quantity=row[4] or Decimal(0),
            application=row[5],
            attributes=dict(row[6] or {}),
            readings=row[7],
        )
        for row in rows
    ]


@dataclass(frozen=True)
class MonthProblem:
    source: str
    ref: str
    reason: str
    nights: int
    raw: dict[str, Any]
    records: int


def month_problems(conn: psycopg.Connection, month: dt.date) -> list[MonthProblem]:
    rows = conn.execute(
        """
        SELECT source, p->>'ref', p->>'reason', count(*), (array_agg(p->'raw' ORDER BY night DESC))[1],
               sum(coalesce((p->>'records')::int, 1))
        FROM finops.native_snapshot_night, jsonb_array_elements(problems) AS p
        WHERE period_month = %s
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        """,
        (month,),
    ).fetchall()
    return [MonthProblem(row[0], row[1], row[2], row[3], row[4] or {}, row[5]) for row in rows]


def month_records_received(conn: psycopg.Connection, month: dt.date) -> dict[str, int]:
    """Per source, the records its answers held over the month's nights: the record ledger, for the
    sources whose every night of the month was counted."""
    rows = conn.execute(
        "SELECT source, sum(records_received) FROM finops.native_snapshot_night WHERE period_month = %s "
        "GROUP BY source HAVING bool_and(records_received IS NOT NULL) ORDER BY source",
        (month,),
    ).fetchall()
    return {source: int(total) for source, total in rows}


def month_nights(conn: psycopg.Connection, month: dt.date) -> dict[str, int]:
    """How many nights each source has for the month (metadata, and the averaging denominator)."""
    rows = conn.execute(
        "SELECT source, count(*) FROM finops.native_snapshot_night WHERE period_month = %s "
        "GROUP BY source ORDER BY source",
        (month,),
    ).fetchall()
    return dict(rows)
