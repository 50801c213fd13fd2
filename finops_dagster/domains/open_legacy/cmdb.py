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

The heavy lifting runs in MongoDB: one aggregation selects the month's dumps, sorts and groups the
documents by CI (allowDiskUse), and another groups the month's relations by child; both come sorted
by sys_id through batched cursors and are merge-joined, so Python holds one CI at a time. Recommended indexes:
`cmdb_ci {sys_id: 1, _ingested_at: 1}`, `cmdb_ci {_ingested_at: 1, _id: 1}` (the month's dates and
strings by range, the documents without a date by type then creation), `cmdb_rel_ci {_ingested_at: 1}`.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
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
            {"_ingested_at": {"$gte": f"{month - dt.timedelta(days=1):%Y-%m-%d}",
                              "$lt": f"{next_month(month) + dt.timedelta(days=1):%Y-%m-%d}"}},
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

    def ci_months(self, month: dt.date, fields: list[str]) -> Iterator[CiMonth]:
        """Every infrastructure CI seen in the month's dumps, streamed, grouped by MongoDB.

        CIs and relations come as two cursors grouped and sorted by sys_id, merge-joined here,
        so neither side is ever held in memory.
        """
        observation = {
            "at": "$_ingested_at",
            "id": "$_id",
            "cls": "$sys_class_name",
            "name": "$name",
            "app": f"${self.layout.application_field}",
        }
        observation.update({f"f_{name}": f"${name}" for name in fields})
        pipeline: list[dict[str, Any]] = [
            {"$match": {**month_documents(month), "sys_class_name": {"$ne": self.layout.application_class}}},
            {"$sort": {"sys_id": 1}},
            # a document without sys_id groups alone (keyed by its _id), never with all the others
            {
                "$group": {
                    "_id": {"$ifNull": ["$sys_id.value", "$sys_id", {"no_sys_id": "$_id"}]},
                    "obs": {"$push": observation},
                }
            },
            {"$sort": {"_id": 1}},
        ]
        cis = self._cis.aggregate(pipeline, allowDiskUse=True, batchSize=CURSOR_BATCH)
        relations = self._relation_parents(month)
        pending = next(relations, None)
        for doc in cis:
            sys_id = text_value(doc["_id"])
            while pending is not None and sys_id is not None and pending[0] < sys_id:
                pending = next(relations, None)
            parents = pending[1] if pending is not None and pending[0] == sys_id else []
            yield _of_month(month, sys_id, doc["obs"], parents)

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
