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
    """Replace the source's snapshot of that night (a second run the same night supersedes the first),
    and the month's figures with it (`finops.native_snapshot_month`, see `month_figures`)."""
    night = {"source": snapshot.source, "month": snapshot.period_month, "night": snapshot.night}
    with conn.transaction(), conn.cursor() as cur:
        replaced = cur.execute(
            "SELECT 1 FROM finops.native_snapshot_night "
            "WHERE source = %(source)s AND period_month = %(month)s AND night = %(night)s",
            night,
        ).fetchone()
        if replaced:
            cur.execute(MONTH_WITHOUT_NIGHT, night)
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
        cur.execute(MONTH_WITH_NIGHT, night)
        gone = cur.execute(NO_LONGER_LISTED, night).fetchall() if replaced else []
        if gone:
            consumers, products, kinds = (list(column) for column in zip(*gone, strict=True))
            cur.execute(
                LATEST_BEFORE_NIGHT, {**night, "consumers": consumers, "products": products, "kinds": kinds}
            )
        if replaced:
            cur.execute(
                "DELETE FROM finops.native_snapshot_month "
                "WHERE source = %(source)s AND period_month = %(month)s AND nights = 0",
                night,
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


MONTH_WITHOUT_NIGHT = """
UPDATE finops.native_snapshot_month m
SET quantity_sum = m.quantity_sum - s.quantity, records = m.records - s.records, nights = m.nights - 1
FROM finops.native_snapshot s
WHERE s.source = %(source)s AND s.period_month = %(month)s AND s.night = %(night)s
  AND m.period_month = s.period_month AND m.source = s.source AND m.consumer = s.consumer
  AND m.product_id = s.product_id AND m.kind = s.kind
"""
"""A night about to be replaced taken out of its month's figures (its latest values stay until
the new night is in: `LATEST_BEFORE_NIGHT` corrects those the new night no longer lists)."""

MONTH_WITH_NIGHT = """
INSERT INTO finops.native_snapshot_month AS m (source, period_month, consumer, product_id, kind, quantity_sum,
    records, nights, latest_night, latest_quantity, latest_application, latest_attributes)
SELECT source, period_month, consumer, product_id, kind, quantity, records, 1, night, quantity, application,
       attributes
FROM finops.native_snapshot
WHERE source = %(source)s AND period_month = %(month)s AND night = %(night)s
ON CONFLICT (period_month, source, consumer, product_id, kind) DO UPDATE SET
    quantity_sum = m.quantity_sum + excluded.quantity_sum,
    records = m.records + excluded.records,
    nights = m.nights + 1,
    latest_night = CASE WHEN excluded.latest_night >= m.latest_night THEN excluded.latest_night
                        ELSE m.latest_night END,
    latest_quantity = CASE WHEN excluded.latest_night >= m.latest_night THEN excluded.latest_quantity
                           ELSE m.latest_quantity END,
    latest_application = CASE WHEN excluded.latest_night >= m.latest_night THEN excluded.latest_application
                              ELSE m.latest_application END,
    latest_attributes = CASE WHEN excluded.latest_night >= m.latest_night THEN excluded.latest_attributes
                             ELSE m.latest_attributes END
"""
"""The saved night added to its month's figures (the latest values are the latest night's)."""

NO_LONGER_LISTED = """
SELECT m.consumer, m.product_id, m.kind
FROM finops.native_snapshot_month m
WHERE m.source = %(source)s AND m.period_month = %(month)s AND m.latest_night = %(night)s AND m.nights > 0
  AND NOT EXISTS (SELECT 1 FROM finops.native_snapshot t
                  WHERE t.source = m.source AND t.period_month = m.period_month AND t.night = %(night)s
                    AND t.consumer = m.consumer AND t.product_id = m.product_id AND t.kind = m.kind)
"""
"""After a night was replaced: the figures whose latest night it was that the new night no longer
lists (rare: a consumer gone between two runs of one night)."""

LATEST_BEFORE_NIGHT = """
UPDATE finops.native_snapshot_month m
SET latest_night = l.night, latest_quantity = l.quantity, latest_application = l.application,
    latest_attributes = l.attributes
FROM (
    SELECT DISTINCT ON (s.consumer, s.product_id, s.kind)
           s.consumer, s.product_id, s.kind, s.night, s.quantity, s.application, s.attributes
    FROM finops.native_snapshot s
    JOIN unnest(%(consumers)s::text[], %(products)s::text[], %(kinds)s::text[])
         AS gone (consumer, product_id, kind)
      ON gone.consumer = s.consumer AND gone.product_id = s.product_id AND gone.kind = s.kind
    WHERE s.source = %(source)s AND s.period_month = %(month)s
    ORDER BY s.consumer, s.product_id, s.kind, s.night DESC
) l
WHERE m.source = %(source)s AND m.period_month = %(month)s AND m.consumer = l.consumer
  AND m.product_id = l.product_id AND m.kind = l.kind
"""
"""Those figures take their latest values from their latest remaining night."""

MONTH_QUERY = """
WITH nights AS (
    SELECT source, count(*) AS nights
    FROM finops.native_snapshot_night WHERE period_month = %(month)s GROUP BY source
)
SELECT m.source, m.consumer, m.product_id, m.kind,
       CASE m.kind WHEN 'gauge' THEN m.quantity_sum / n.nights ELSE m.latest_quantity END AS quantity,
       m.latest_application AS application,
       m.latest_attributes AS attributes,
       m.records AS readings
FROM finops.native_snapshot_month m JOIN nights n USING (source)
WHERE m.period_month = %(month)s
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
