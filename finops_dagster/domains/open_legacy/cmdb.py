"""Reading the CMDB raw zone: the only module of this domain that talks to MongoDB.

Collection layout (database MONGO_DB):

- `cmdb_ci`: one document per configuration item per nightly dump, as the dumping team writes
  it: ServiceNow fields (`sys_id`, `sys_class_name`, `name`, sizes as strings, references in any
  ServiceNow shape) plus `_ingested_at`, the dump time (a BSON date, or as the loader left it).
  Application records live here too, with `sys_class_name = cmdb_ci_business_app`, their code in
  `u_code` and their group in `u_application_group`.
- `cmdb_rel_ci`: relation documents of each dump (`parent`, `child`, `type`, `_ingested_at`);
  a relation whose parent is an application record ties the child CI to that application.

A dump is one UTC calendar day of `_ingested_at`; a month's dumps are the days its documents show.

The month of a document is the UTC month of its dump time: `_ingested_at` as a BSON date, an
ISO-8601 string or a `{"$date"}` wrapper (see `cmdb_payloads.ingested_instant`). A document whose
`_ingested_at` is missing, null or no readable time belongs to the month its ObjectId `_id` was
created in (when the loader inserted it) and is rejected there with the reason. So every document
with a readable dump time or an ObjectId belongs to exactly one month. The month's `$match` finds
BSON dates in the month, ISO strings dated from the day before to the day after it (offsets move
an instant by less than a day), every `{"$date"}` wrapper, and the documents created in the month
whose `_ingested_at` is not a plain date; what it finds of other months is left to them.

The heavy lifting runs in MongoDB (`ci_summaries`): the month's documents dated by a BSON date are
sorted by CI and dump time, grouped per CI and dump (the first document of a dump counts, the later
ones are duplicates), then per CI and *state* (its class and measured fields as the dump stored
them) with how many dumps said it, then per CI: Python receives one row per CI, whose states are
nearly always one, never its thirty documents. MongoDB does not parse the values: ServiceNow sizes
are strings (`"16384"`, `" 4 "`, `{"value": "4"}`), and a value MongoDB cannot read would vanish
from a `$sum` or `$avg` (both ignore what is not a number), so a malformed size would be dropped
silently. The domain parses each distinct state once, with its own rules, and a state it cannot
read becomes a reject counting every dump that said it (`mapping.py`). The CIs with a document
whose `_ingested_at` is no BSON date (an ISO string, a `{"$date"}` wrapper, missing, another type)
are few; they are read document by document as before (`ci_months`), since only Python can date
such a document. Relations are grouped by child in MongoDB; both streams come sorted by CI through
batched cursors and are merge-joined, so Python holds one CI at a time. Recommended indexes:
`cmdb_ci {sys_id: 1, _ingested_at: 1}`, `cmdb_ci {_ingested_at: 1, _id: 1}` (the month's dates and
strings by range, the documents without a date by type then creation), `cmdb_rel_ci {_ingested_at: 1}`.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from bson import ObjectId
from pymongo.database import Database

from finops_dagster.domains.open_legacy.cmdb_payloads import (
    DumpTimeError,
    application_code,
    display_value,
    ingested_instant,
    text_value,
)
from finops_dagster.reference.loader import ApplicationRecord
from finops_dagster.releve import month_start, next_month

CURSOR_BATCH = 2_000
MAX_DOCUMENTS_PER_DUMP = 1_000_000
"""Bound of `$slice` when keeping the duplicates of a CI in one dump (MongoDB requires one)."""
CI_KEY: dict[str, Any] = {"$ifNull": ["$sys_id.value", "$sys_id", {"no_sys_id": "$_id"}]}
"""A document's CI: its sys_id (plain or a reference); one without sys_id is a CI of its own."""
DAY_FORMAT = "%Y-%m-%d"


@dataclass(frozen=True)
class CmdbLayout:
    """Where things are in the raw zone; overridable per deployment."""

    ci_collection: str = "cmdb_ci"
    relation_collection: str = "cmdb_rel_ci"
    application_class: str = "cmdb_ci_business_app"
    application_field: str = "u_application"
    application_code_field: str = "u_code"
    application_group_field: str = "u_application_group"


def layout_from_env() -> CmdbLayout:
    """FINOPS_CMDB_* variables override the default layout (e.g. another application field)."""
    defaults = CmdbLayout()
    return CmdbLayout(
        ci_collection=os.environ.get("FINOPS_CMDB_CI_COLLECTION") or defaults.ci_collection,
        relation_collection=os.environ.get("FINOPS_CMDB_REL_COLLECTION") or defaults.relation_collection,
        application_class=os.environ.get("FINOPS_CMDB_APPLICATION_CLASS") or defaults.application_class,
        application_field=os.environ.get("FINOPS_CMDB_APPLICATION_FIELD") or defaults.application_field,
        application_code_field=os.environ.get("FINOPS_CMDB_APPLICATION_CODE_FIELD")
        or defaults.application_code_field,
        application_group_field=os.environ.get("FINOPS_CMDB_APPLICATION_GROUP_FIELD")
        or defaults.application_group_field,
    )


@dataclass(frozen=True)
class CiMonth:
    """One CI over one month: its documents in dump order and the parents of its relations.

    Each observation holds `at` (dump time, naive UTC), `id` (the document's `_id`), `cls`,
    `app`, `name` and the requested fields. `undated` are the month's documents of the CI whose
    dump time is unreadable, with the reason (they belong to the month by their ObjectId).
    """

    sys_id: str | None
    observations: list[dict[str, Any]]
    relation_parents: list[str]
    undated: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    other_months: int = 0
    """Documents the month's query found that belong to another month (dated next to it)."""


@dataclass(frozen=True)
class CiSummary:
    """One CI over one month as the fold reads it: what its counted documents said, each distinct
    state once with how many dumps said it, and the documents that do not count.

    `states`: (an observation with `cls` and the measured `f_*` fields, dumps that said it), one
    counted document per dump. `latest_counted`: the last counted document in dump order (the
    application is resolved on it); `latest`: the last document of all (reject payloads, the name).
    `extras`: the later documents of a dump (duplicates) in dump order, and for a CI without sys_id
    its document. `days`: the dumps its documents were seen in, when the summary was made from the
    documents (None when the month's dumps are counted apart, `CmdbClient.dump_days`).
    """

    sys_id: str | None
    states: list[tuple[dict[str, Any], int]]
    latest_counted: dict[str, Any] | None
    latest: dict[str, Any] | None
    extras: list[dict[str, Any]]
    relation_parents: list[str]
    undated: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    other_months: int = 0
    days: frozenset[dt.date] | None = None

    @property
    def documents(self) -> int:
        """The month's documents of the CI (counted, duplicates and undated)."""
        return sum(dumps for _, dumps in self.states) + len(self.extras) + len(self.undated)


def dump_order(observation: dict[str, Any]) -> tuple[Any, str]:
    """Documents of a CI in dump order, then `_id` order (ObjectIds sort as their hex text)."""
    return observation["at"], str(observation.get("id"))


def summarize(ci: CiMonth, measured: Iterable[str]) -> CiSummary:
    """The summary of a CI read document by document: what `ci_summaries` computes in MongoDB."""
    keys = [f"f_{name}" for name in measured]
    counted: list[dict[str, Any]] = []
    extras: list[dict[str, Any]] = []
    seen: set[dt.date] = set()
    for observation in ci.observations:
        day = observation["at"].date()
        (extras if ci.sys_id is None or day in seen else counted).append(observation)
        seen.add(day)
    states: dict[Any, list[Any]] = {}
    for observation in counted:
        state = {"cls": observation.get("cls"), **{key: observation.get(key) for key in keys}}
        entry = states.setdefault(_frozen(state), [state, 0])
        entry[1] += 1
    latest = ci.observations[-1] if ci.observations else (ci.undated[-1][0] if ci.undated else None)
    return CiSummary(
        sys_id=ci.sys_id,
        states=[(state, dumps) for state, dumps in states.values()],
        latest_counted=counted[-1] if counted else None,
        latest=latest,
        extras=extras,
        relation_parents=ci.relation_parents,
        undated=ci.undated,
        other_months=ci.other_months,
        days=frozenset(seen),
    )


def _frozen(value: Any) -> Any:
    """A hashable stand-in for a raw value (references are dicts)."""
    if isinstance(value, dict):
        return tuple(sorted((str(k), _frozen(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_frozen(item) for item in value)
    return value


def _window(month: dt.date) -> dict[str, dt.datetime]:
    start = dt.datetime(month.year, month.month, 1)
    end = dt.datetime.combine(next_month(month), dt.time())
    return {"$gte": start, "$lt": end}


def month_documents(month: dt.date) -> dict[str, Any]:
    """The `$match` of every document that may belong to the month (see the module docstring);
    `document_month` then says which do."""
    window = _window(month)
    created = {"$gte": ObjectId.from_datetime(window["$gte"]), "$lt": ObjectId.from_datetime(window["$lt"])}
    return {
        "$or": [
            {"_ingested_at": window},
            {
                "_ingested_at": {
                    "$gte": f"{month - dt.timedelta(days=1):%Y-%m-%d}",
                    "$lt": f"{next_month(month) + dt.timedelta(days=1):%Y-%m-%d}",
                }
            },
            {"_ingested_at": {"$type": "object"}},
            {"_id": created, "_ingested_at": {"$not": {"$type": "date"}}},
            {"_id": created, "_ingested_at": {"$type": "array"}},
        ]
    }


def document_month(observation: dict[str, Any]) -> tuple[dt.date | None, dt.datetime | str]:
    """(month, dump time) of a document, or (month of its ObjectId, why its dump time is unreadable);
    month None when neither tells (a non-ObjectId `_id` and no readable dump time)."""
    try:
        instant = ingested_instant(observation.get("at"))
    except DumpTimeError as error:
        created = observation.get("id")
        if not isinstance(created, ObjectId):
            return None, str(error)
        return month_start(created.generation_time), str(error)
    return month_start(instant), instant


class CmdbClient:
    """Queries of the raw zone, each answering one question the domain asks."""

    def __init__(self, db: Database, layout: CmdbLayout) -> None:
        self.db = db
        self.layout = layout

    @property
    def _cis(self) -> Any:
        return self.db[self.layout.ci_collection]

    def application_sys_ids(self, month: dt.date) -> dict[str, str]:
        """sys_id → application code of the month's application records (to follow relations)."""
        query = {"sys_class_name": self.layout.application_class, "_ingested_at": _window(month)}
        projection = {"sys_id": 1, self.layout.application_code_field: 1, "_id": 0}
        mapping: dict[str, str] = {}
        for doc in self._cis.find(query, projection):
            sys_id = text_value(doc.get("sys_id"))
            code = application_code(doc.get(self.layout.application_code_field))
            if sys_id and code:
                mapping[sys_id] = code
        return mapping

    def latest_applications(self) -> list[ApplicationRecord]:
        """The application records of the most recent dump: the application referential (dumps
        dated with BSON dates; a record whose dump time is a string is not a dump to date it by)."""
        layout = self.layout
        latest = self._cis.find_one(
            {"sys_class_name": layout.application_class, "_ingested_at": {"$type": "date"}},
            {"_ingested_at": 1},
            sort=[("_ingested_at", -1)],
        )
        if latest is None:
            return []
        day = latest["_ingested_at"].replace(hour=0, minute=0, second=0, microsecond=0)
        query = {
            "sys_class_name": layout.application_class,
            "_ingested_at": {"$gte": day, "$lt": day + dt.timedelta(days=1)},
        }
        records: dict[str, ApplicationRecord] = {}
        for doc in self._cis.find(query).sort([("_ingested_at", 1), ("_id", 1)]):
            code = application_code(doc.get(layout.application_code_field))
            if not code:
                continue
            group_raw = doc.get(layout.application_group_field)
            group_id = application_code(group_raw) or "UNGROUPED"
            records[code] = ApplicationRecord(
                application_id=code,
                label=display_value(doc.get("name")) or code,
                group_id=group_id,
                group_label=display_value(group_raw) or group_id,
            )
        return [records[code] for code in sorted(records)]

    def _observation(self, fields: Iterable[str]) -> dict[str, Any]:
        """What the fold reads of a document: dump time, `_id`, class, name, application, fields."""
        observation = {
            "at": "$_ingested_at",
            "id": "$_id",
            "cls": "$sys_class_name",
            "name": "$name",
            "app": f"${self.layout.application_field}",
        }
        observation.update({f"f_{name}": f"${name}" for name in fields})
        return observation

    def _infrastructure(self) -> dict[str, Any]:
        return {"sys_class_name": {"$ne": self.layout.application_class}}

    def ci_summaries(self, month: dt.date, fields: list[str], measured: list[str]) -> Iterator[CiSummary]:
        """Every infrastructure CI seen in the month's dumps, one summary each (see the module
        docstring): the CIs whose documents all carry a BSON date summarised by MongoDB, then the
        few others read document by document and summarised here. `measured`: the fields whose
        values make a CI's state (the fields priced); `fields`: every field the fold reads."""
        odd = self._undated_cis(month)
        unnamed: list[Any] = []
        yield from self._dated_summaries(month, fields, measured, odd, unnamed)
        if odd or unnamed:
            for ci in self.ci_months(month, fields, only=odd + unnamed):
                yield summarize(ci, measured)

    def _undated_cis(self, month: dt.date) -> list[Any]:
        """The CI keys of the month's documents whose `_ingested_at` is no BSON date."""
        not_a_date = {
            "$or": [{"_ingested_at": {"$not": {"$type": "date"}}}, {"_ingested_at": {"$type": "array"}}]
        }
        pipeline: list[dict[str, Any]] = [
            {"$match": {"$and": [month_documents(month), self._infrastructure(), not_a_date]}},
            {"$group": {"_id": CI_KEY}},
        ]
        return [doc["_id"] for doc in self._cis.aggregate(pipeline, allowDiskUse=True)]

    def dump_days(self, month: dt.date) -> set[dt.date]:
        """The days of the month's dumps dated by a BSON date (the documents `ci_summaries` has
        MongoDB summarise); the other documents' days come with their summaries."""
        pipeline: list[dict[str, Any]] = [
            {"$match": {**self._infrastructure(), "_ingested_at": _dated_in(month)}},
            {"$group": {"_id": {"$dateToString": {"format": DAY_FORMAT, "date": "$_ingested_at"}}}},
        ]
        return {dt.date.fromisoformat(doc["_id"]) for doc in self._cis.aggregate(pipeline, allowDiskUse=True)}

    def _dated_summaries(
        self, month: dt.date, fields: list[str], measured: list[str], odd: list[Any], unnamed: list[Any]
    ) -> Iterator[CiSummary]:
        """The summaries MongoDB makes, but for the keys that name no CI (no sys_id, a blank one):
        those are added to `unnamed`, every document of theirs being a reject of its own."""
        state = {"cls": "$first.cls", **{f"f_{name}": f"$first.f_{name}" for name in measured}}
        pipeline: list[dict[str, Any]] = [
            {"$match": {**self._infrastructure(), "_ingested_at": _dated_in(month)}},
            {
                "$project": {
                    "_id": 0,
                    "ci": CI_KEY,
                    "day": {"$dateToString": {"format": DAY_FORMAT, "date": "$_ingested_at"}},
                    "obs": self._observation(fields),
                }
            },
            *([{"$match": {"ci": {"$nin": odd}}}] if odd else []),
            {"$sort": {"ci": 1, "obs.at": 1, "obs.id": 1}},
            # one row per CI and dump: its first document counts, the later ones are duplicates
            {
                "$group": {
                    "_id": {"ci": "$ci", "day": "$day"},
                    "first": {"$first": "$obs"},
                    "last": {"$last": "$obs"},
                    "docs": {"$push": "$obs"},
                }
            },
            {"$project": {"first": 1, "last": 1, "extras": {"$slice": ["$docs", 1, MAX_DOCUMENTS_PER_DUMP]}}},
            {"$sort": {"_id.ci": 1, "_id.day": 1}},
            # one row per CI and state, with how many dumps said it
            {
                "$group": {
                    "_id": {"ci": "$_id.ci", "state": state},
                    "dumps": {"$sum": 1},
                    "counted": {"$last": "$first"},
                    "last": {"$last": "$last"},
                    "extras": {"$push": "$extras"},
                }
            },
            {
                "$project": {
                    "dumps": 1,
                    "counted": 1,
                    "last": 1,
                    "extras": {
                        "$reduce": {
                            "input": "$extras",
                            "initialValue": [],
                            "in": {"$concatArrays": ["$$value", "$$this"]},
                        }
                    },
                }
            },
            # one row per CI
            {
                "$group": {
                    "_id": "$_id.ci",
                    "states": {
                        "$push": {
                            "state": "$_id.state",
                            "dumps": "$dumps",
                            "counted": "$counted",
                            "last": "$last",
                            "extras": "$extras",
                        }
                    },
                }
            },
            {"$sort": {"_id": 1}},
        ]
        cis = self._cis.aggregate(pipeline, allowDiskUse=True, batchSize=CURSOR_BATCH)
        for doc, parents in self._with_relations(month, cis):
            sys_id = text_value(doc["_id"])
            if sys_id is None:
                unnamed.append(doc["_id"])
            else:
                yield _summary(sys_id, doc["states"], parents)

    def _with_relations(
        self, month: dt.date, cis: Iterable[dict[str, Any]]
    ) -> Iterator[tuple[dict[str, Any], list[str]]]:
        """Each CI row (sorted by CI) with the parents of its relations: a merge join."""
        relations = self._relation_parents(month)
        pending = next(relations, None)
        for doc in cis:
            sys_id = text_value(doc["_id"])
            while pending is not None and sys_id is not None and pending[0] < sys_id:
                pending = next(relations, None)
            parents = pending[1] if pending is not None and pending[0] == sys_id else []
            yield doc, parents

    def ci_months(
        self, month: dt.date, fields: list[str], only: list[Any] | None = None
    ) -> Iterator[CiMonth]:
        """Infrastructure CIs seen in the month's dumps with all their documents, streamed, grouped
        by MongoDB (`only`: the CI keys to read, default all).

        CIs and relations come as two cursors grouped and sorted by sys_id, merge-joined here,
        so neither side is ever held in memory.
        """
        pipeline: list[dict[str, Any]] = [
            {"$match": {**month_documents(month), **self._infrastructure()}},
            *(
                [{"$addFields": {"_ci": CI_KEY}}, {"$match": {"_ci": {"$in": only}}}]
                if only is not None
                else []
            ),
            {"$sort": {"sys_id": 1}},
            # a document without sys_id groups alone (keyed by its _id), never with all the others
            {"$group": {"_id": CI_KEY, "obs": {"$push": self._observation(fields)}}},
            {"$sort": {"_id": 1}},
        ]
        cis = self._cis.aggregate(pipeline, allowDiskUse=True, batchSize=CURSOR_BATCH)
        for doc, parents in self._with_relations(month, cis):
            yield _of_month(month, text_value(doc["_id"]), doc["obs"], parents)

    def _relation_parents(self, month: dt.date) -> Iterator[tuple[str, list[str]]]:
        """(child sys_id, parent sys_ids) of the month's relations, sorted by child."""
        pipeline: list[dict[str, Any]] = [
            {"$match": {"_ingested_at": _window(month)}},
            {
                "$group": {
                    "_id": {"$ifNull": ["$child.value", "$child"]},
                    "parents": {"$push": {"$ifNull": ["$parent.value", "$parent"]}},
                }
            },
            {"$sort": {"_id": 1}},
        ]
        for doc in self.db[self.layout.relation_collection].aggregate(
            pipeline, allowDiskUse=True, batchSize=CURSOR_BATCH
        ):
            child = text_value(doc["_id"])
            if child is not None:
                yield child, [parent for raw in doc["parents"] if (parent := text_value(raw))]


def _dated_in(month: dt.date) -> dict[str, Any]:
    """A BSON date in the month (an array holding one is not: it is no dump time)."""
    return {**_window(month), "$not": {"$type": "array"}}


def _summary(sys_id: str, rows: list[dict[str, Any]], parents: list[str]) -> CiSummary:
    """A CI's row of the aggregation as a summary (its few states ordered here)."""
    counted = max((row["counted"] for row in rows), key=dump_order)
    latest = max((row["last"] for row in rows), key=dump_order)
    extras = sorted(chain.from_iterable(row["extras"] for row in rows), key=dump_order)
    states = [
        (row["state"], row["dumps"]) for row in sorted(rows, key=lambda row: dump_order(row["counted"]))
    ]
    return CiSummary(sys_id, states, counted, latest, extras, parents)


def _of_month(month: dt.date, sys_id: str | None, found: list[dict[str, Any]], parents: list[str]) -> CiMonth:
    """The CI's documents of `month`, dated and in dump order (then `_id` order), apart from its
    undated ones; the others the query found belong to their own months."""
    dated: list[dict[str, Any]] = []
    undated: list[tuple[dict[str, Any], str]] = []
    other_months = 0
    for observation in found:
        belongs_to, when = document_month(observation)
        if belongs_to != month:
            other_months += 1
        elif isinstance(when, str):
            undated.append((observation, when))
        else:
            observation["at"] = when
            dated.append(observation)
    dated.sort(key=lambda obs: (obs["at"], str(obs.get("id"))))
    return CiMonth(sys_id, dated, parents, undated, other_months)
