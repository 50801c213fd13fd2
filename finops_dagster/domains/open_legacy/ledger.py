"""The CMDB month's ledger: how many documents the month covers, counted without the reader.

The reconciliation proves the reader lost and invented nothing by comparing what the relevés and
rejects account for with this count. So it shares nothing with the reader's classification: no
aggregation pipeline of the reader, no reading of fields, its own reading of dump times. It asks
MongoDB plain questions over the same collection and month (the month rule is the client's module
docstring):

- how many documents, per raw `sys_class_name`, have a BSON-date `_ingested_at` in the month
  (one grouped count; arrays are left to the ObjectId rule);
- which documents with a string `_ingested_at` dated the day before to the day after the month,
  or with an object `_ingested_at` (`{"$date"}`), have their instant in the month;
- which documents created in the month (ObjectId `_id`) have an `_ingested_at` that is no readable
  time: missing, null, another type, unparseable.

The unit the ledger balances is the *reading*: a document of a class that `cmdb_classes.csv`
measures is one reading per product it measures (a VM document is a vCPU, a RAM and a disk reading),
any other document one reading. Each reading ends in exactly one place: the `source_record_count`
of the relevé it was averaged into, or the `source_record_count` of a reject (a field that cannot be
read, a duplicate, an unknown class, an unreadable dump time, a product without rate card).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import chain
from typing import Any

from bson import ObjectId
from pymongo.database import Database

from finops_dagster.domains.open_legacy.cmdb import CmdbLayout
from finops_dagster.releve import next_month


@dataclass(frozen=True)
class DocumentLedger:
    """What the raw zone holds for a month: documents, and readings (the unit reconciled)."""

    documents: int
    readings: int


def count_month(
    db: Database, layout: CmdbLayout, measured: dict[str, int], month: dt.date
) -> DocumentLedger:
    """Count the month's infrastructure documents; `measured` is class → products it measures."""
    start = dt.datetime(month.year, month.month, 1)
    end = dt.datetime.combine(next_month(month), dt.time())
    cis = db[layout.ci_collection]
    not_applications = {"sys_class_name": {"$ne": layout.application_class}}
    classes: Counter[Any] = Counter()

    in_window = {"$gte": start, "$lt": end, "$not": {"$type": "array"}}
    dated = cis.aggregate(
        [
            {"$match": {**not_applications, "_ingested_at": in_window}},
            {"$group": {"_id": "$sys_class_name", "n": {"$sum": 1}}},
        ]
    )
    for row in dated:
        classes[_class_key(row["_id"])] += row["n"]

    projection = {"_ingested_at": 1, "sys_class_name": 1}
    strings = cis.find(
        {
            **not_applications,
            "_ingested_at": {
                "$gte": (start - dt.timedelta(days=1)).strftime("%Y-%m-%d"),
                "$lt": (end + dt.timedelta(days=1)).strftime("%Y-%m-%d"),
            },
        },
        projection,
    )
    wrapped = cis.find({**not_applications, "_ingested_at": {"$type": "object"}}, projection)
    in_month = (doc for doc in chain(strings, wrapped) if instant_month(doc.get("_ingested_at")) == month)
    _count_in(classes, in_month)

    created = {"$gte": ObjectId.from_datetime(start), "$lt": ObjectId.from_datetime(end)}
    unreadable = cis.find(
        {
            **not_applications,
            "_id": created,
            "$or": [{"_ingested_at": {"$not": {"$type": "date"}}}, {"_ingested_at": {"$type": "array"}}],
        },
        projection,
    )
    _count_in(classes, (doc for doc in unreadable if instant_month(doc.get("_ingested_at")) is None))

    documents = sum(classes.values())
    readings = sum(count * max(1, measured.get(cls, 0)) if cls else count for cls, count in classes.items())
    return DocumentLedger(documents=documents, readings=readings)


def _count_in(classes: Counter[Any], documents: Iterable[dict[str, Any]]) -> None:
    for doc in documents:
        classes[_class_key(doc.get("sys_class_name"))] += 1


def _class_key(raw: Any) -> str | None:
    """A class name as a string, through `{value}` references; anything else names no class."""
    while isinstance(raw, dict):
        raw = raw.get("value")
    return raw.strip() if isinstance(raw, str) else None


def instant_month(raw: Any) -> dt.date | None:
    """The UTC month of a string or `{"$date"}` dump time; None when it is none."""
    if isinstance(raw, dict) and list(raw) == ["$date"]:
        raw = raw["$date"]
        if isinstance(raw, dict) and list(raw) == ["$numberLong"]:
            raw = _integer(raw["$numberLong"])
        if isinstance(raw, int) and not isinstance(raw, bool):
            return _month_of_millis(raw)
    if not isinstance(raw, str) or len(raw) < 10 or not _is_calendar_date(raw[:10]):
        return None
    try:
        instant = dt.datetime.fromisoformat(raw)
        if instant.tzinfo is not None:
            instant = instant.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        return None
    return dt.date(instant.year, instant.month, 1)


def _is_calendar_date(text: str) -> bool:
    """`YYYY-MM-DD` in ASCII digits (not the basic format, not other scripts' digits)."""
    digits = text[:4] + text[5:7] + text[8:10]
    return text[4] == "-" and text[7] == "-" and digits.isascii() and digits.isdigit()


def _integer(raw: Any) -> int | None:
    try:
        return int(raw) if isinstance(raw, str) else None
    except ValueError:
        return None


def _month_of_millis(millis: int) -> dt.date | None:
    try:
        instant = dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=millis)
    except OverflowError:
        return None
    return dt.date(instant.year, instant.month, 1)
