"""The CMDB month summarised by MongoDB: the stand-in's stages against MongoDB's documented
behaviour, the summaries against the documents they summarise, and malformed documents as rejects."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import psycopg
from bson import ObjectId

from finops_dagster.domains.open_legacy.assets import read_month
from finops_dagster.domains.open_legacy.cmdb import CiSummary, CmdbClient, CmdbLayout, summarize
from finops_dagster.domains.open_legacy.mapping import DOMAIN_ID, load_class_catalog, measured_fields
from finops_dagster.reference.loader import ApplicationRecord, load_applications_into_mart
from finops_dagster.reference.snapshot import read_snapshot
from finops_dagster.resources.mongo import MongoResource
from finops_dagster_tests.support.cmdb_documents import vm

MONTH = dt.date(2025, 5, 1)
DAYS = [MONTH + dt.timedelta(days=offset) for offset in range(4)]


def standin() -> Any:
    return MongoResource(url=f"mongomock://{uuid.uuid4().hex}").db()


# --------------------------------------------------------------------------------------------
# the stand-in's stages, as MongoDB documents them
# --------------------------------------------------------------------------------------------


def test_first_and_last_follow_the_sort_and_push_keeps_its_order() -> None:
    """$first/$last of a $group are the first/last documents in the order of the preceding $sort;
    $push appends in that order."""
    db = standin()
    db["c"].insert_many([{"k": "a", "t": 3}, {"k": "a", "t": 1}, {"k": "b", "t": 5}, {"k": "a", "t": 2}])
    rows = list(
        db["c"].aggregate(
            [
                {"$sort": {"k": 1, "t": 1}},
                {
                    "$group": {
                        "_id": "$k",
                        "first": {"$first": "$t"},
                        "last": {"$last": "$t"},
                        "all": {"$push": "$t"},
                    }
                },
                {"$sort": {"_id": 1}},
            ]
        )
    )
    assert [(row["_id"], row["first"], row["last"], row["all"]) for row in rows] == [
        ("a", 1, 3, [1, 2, 3]),
        ("b", 5, 5, [5]),
    ]


def test_sum_and_avg_ignore_missing_and_non_numeric_values() -> None:
    """$sum and $avg ignore non-numeric and missing values; $avg of none is null, $sum of none 0.
    This is why the summaries never let MongoDB read a size: "8" would vanish from the sum."""
    db = standin()
    db["c"].insert_many(
        [{"g": 1, "v": 4}, {"g": 1, "v": "8"}, {"g": 1}, {"g": 1, "v": None}, {"g": 1, "v": 2.5}]
    )
    db["c"].insert_many([{"g": 2, "v": "8"}, {"g": 2}])
    rows = {
        row["_id"]: row
        for row in db["c"].aggregate(
            [{"$group": {"_id": "$g", "avg": {"$avg": "$v"}, "sum": {"$sum": "$v"}, "n": {"$sum": 1}}}]
        )
    }
    assert (rows[1]["avg"], rows[1]["sum"], rows[1]["n"]) == (3.25, 6.5, 5)
    assert (rows[2]["avg"], rows[2]["sum"]) == (None, 0)


def test_expression_objects_leave_out_missing_fields_and_group_keys_compare_by_value() -> None:
    """A field of an expression object that evaluates to missing is left out (so a key with a
    missing field and one with the field null are different groups), as MongoDB does."""
    db = standin()
    db["c"].insert_many([{"k": "a"}, {"k": "a", "v": None}, {"k": "a", "v": "1"}, {"k": "a", "v": "1"}])
    rows = list(db["c"].aggregate([{"$group": {"_id": {"k": "$k", "v": "$v"}, "n": {"$sum": 1}}}]))
    groups = {repr(sorted(row["_id"].items())): row["n"] for row in rows}
    assert groups == {
        repr([("k", "a")]): 1,
        repr([("k", "a"), ("v", None)]): 1,
        repr([("k", "a"), ("v", "1")]): 2,
    }


def test_slice_reduce_and_date_to_string() -> None:
    """$slice [array, position, n], $reduce with $concatArrays, $dateToString with a format."""
    db = standin()
    db["c"].insert_one({"a": [1, 2, 3], "b": [[1], [], [2, 3]], "d": dt.datetime(2025, 5, 3, 2, 0, 1)})
    row = next(
        db["c"].aggregate(
            [
                {
                    "$project": {
                        "_id": 0,
                        "rest": {"$slice": ["$a", 1, 1000]},
                        "none": {"$slice": [[1], 1, 1000]},
                        "flat": {
                            "$reduce": {
                                "input": "$b",
                                "initialValue": [],
                                "in": {"$concatArrays": ["$$value", "$$this"]},
                            }
                        },
                        "day": {"$dateToString": {"format": "%Y-%m-%d", "date": "$d"}},
                    }
                }
            ]
        )
    )
    assert row == {"rest": [2, 3], "none": [], "flat": [1, 2, 3], "day": "2025-05-03"}


# --------------------------------------------------------------------------------------------
# the summaries
# --------------------------------------------------------------------------------------------


def estate(db: Any) -> None:
    """CIs of every shape the summaries must carry: steady, resized, duplicated within a dump,
    dated by an ISO string on one night, without sys_id, malformed on some nights."""
    docs: list[dict[str, Any]] = []
    for index, day in enumerate(DAYS):
        docs.append(vm("ci-steady", day=day, app="PAYMENTS"))
        docs.append(vm("ci-resized", day=day, cpus="2" if index < 2 else "8", app="PAYMENTS"))
        docs.append(vm("ci-twice", day=day, app="PAYMENTS"))
        docs.append(vm("ci-malformed", day=day, cpus="abc" if index % 2 else "4", app="PAYMENTS"))
    docs.append(vm("ci-twice", day=DAYS[1], second=30, cpus="16", app="PAYMENTS"))
    docs.append(vm("ci-text-date", day=DAYS[0], app="PAYMENTS"))
    docs.append({**vm("ci-text-date", day=DAYS[1], app="PAYMENTS"), "_ingested_at": "2025-05-02T02:00:01Z"})
    docs.append({**vm("ignored", day=DAYS[2], name="orphan"), "sys_id": " "})
    db["cmdb_ci"].insert_many(docs)


def _comparable(summary: CiSummary) -> tuple[Any, ...]:
    def state(raw: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(sorted((key, value) for key, value in raw.items() if value is not None))

    return (
        summary.sys_id,
        sorted((state(raw), dumps) for raw, dumps in summary.states),
        summary.latest_counted,
        summary.latest,
        summary.extras,
        summary.undated,
        summary.other_months,
    )


def test_the_summaries_say_what_the_documents_say() -> None:
    db = standin()
    estate(db)
    client = CmdbClient(db, CmdbLayout())
    measured = measured_fields(load_class_catalog())
    summaries = list(client.ci_summaries(MONTH, measured, measured))
    from_documents = [summarize(ci, measured) for ci in client.ci_months(MONTH, measured)]

    assert sorted(map(_comparable, summaries), key=str) == sorted(map(_comparable, from_documents), key=str)
    by_id = {summary.sys_id: summary for summary in summaries}
    assert [dumps for _, dumps in by_id["ci-steady"].states] == [4]
    assert sorted(dumps for _, dumps in by_id["ci-resized"].states) == [2, 2]
    assert [extra["f_cpus"] for extra in by_id["ci-twice"].extras] == ["16"]
    assert by_id["ci-text-date"].days == {DAYS[0], DAYS[1]}
    assert client.dump_days(MONTH) == set(DAYS)


def test_a_malformed_size_is_a_reject_counting_every_dump_that_said_it(mart: psycopg.Connection) -> None:
    """Nothing is dropped: the nights a size could not be read are a reject with the reason and
    their count, the other nights are averaged, and relevés + rejects account for every reading."""
    db = standin()
    estate(db)
    load_applications_into_mart(
        mart, [ApplicationRecord("PAYMENTS", "Payments Platform", "GRP-PAY", "Payments")], source="cmdb"
    )
    load = read_month(CmdbClient(db, CmdbLayout()), read_snapshot(mart, DOMAIN_ID), MONTH, "run-x", mart)

    malformed = [reject for reject in load.rejects if reject.source_ref.startswith("ci-malformed")]
    assert [(reject.reason, reject.source_record_count) for reject in malformed] == [
        ("cpus: not a number ('abc') in 2 document(s)", 2)
    ]
    vcpu = next(r for r in load.releves if r.application_id == "PAYMENTS" and r.product_id == "OL_VCPU")
    # steady 4×4, resized 2+2+8+8, twice 4×4 (its duplicate a reject), malformed 4+4, text-date 4+4; 4 dumps
    assert vcpu.usage_quantity == Decimal("17.000000")
    readings = load.details["record_ledger"]["cmdb"]
    accounted = sum(r.source_record_count for r in load.releves) + sum(
        r.source_record_count for r in load.rejects
    )
    assert accounted == readings
    assert isinstance(db["cmdb_ci"].find_one({"sys_id": " "})["_id"], ObjectId)


# --------------------------------------------------------------------------------------------
# the stand-in's compiled stages answer as mongomock-ng's interpreter does
# --------------------------------------------------------------------------------------------

MIXED = [
    {
        "_id": ObjectId("6a98d4a00000000000000003"),
        "s": "b",
        "v": 2,
        "d": dt.datetime(2025, 5, 2, 2),
        "r": {"value": "x"},
    },
    {"_id": ObjectId("6a98d4a00000000000000001"), "s": "a", "v": 1.0, "d": dt.datetime(2025, 5, 1, 2)},
    {"_id": ObjectId("6a98d4a00000000000000002"), "s": None, "v": "true", "d": dt.datetime(2025, 5, 1, 3)},
    {"_id": ObjectId("6a98d4a00000000000000004"), "v": "7", "d": dt.datetime(2025, 5, 3, 2), "r": "x"},
    {"_id": ObjectId("6a98d4a00000000000000005"), "s": 3, "v": 1, "d": dt.datetime(2025, 5, 3, 4)},
]


def test_the_compiled_stages_answer_as_the_interpreter() -> None:
    from mongomock_ng import aggregate as mongomock_aggregate

    from finops_dagster.resources import mongo_standin_stages as stages

    sort = {"s": 1, "d": -1, "_id": 1}
    assert stages.sort(MIXED, sort) == mongomock_aggregate._handle_sort_stage(MIXED, None, sort, None)
    project = {
        "_id": 0,
        "ci": {"$ifNull": ["$r.value", "$r", {"none": "$_id"}]},
        "day": {"$dateToString": {"format": "%Y-%m-%d", "date": "$d"}},
        "obs": {"v": "$v", "missing": "$nothing", "s": "$s"},
    }
    projected = stages.project(MIXED, project)
    assert projected == mongomock_aggregate._handle_project_stage(MIXED, None, project, None)
    group = {
        "_id": {"day": "$day"},
        "n": {"$sum": 1},
        "values": {"$push": "$obs.v"},
        "sum": {"$sum": "$obs.v"},
    }
    assert stages.group(projected, group) == mongomock_aggregate._handle_group_stage(
        projected, None, group, None
    )


def test_a_stage_the_compiled_handlers_do_not_know_goes_to_the_interpreter() -> None:
    db = standin()
    db["c"].insert_many([{"k": {"a": 2}, "v": 3}, {"k": {"a": 1}, "v": 5}, {"k": {"a": 1}, "v": 7}])
    rows = list(db["c"].aggregate([{"$group": {"_id": "$k", "avg": {"$avg": "$v"}}}, {"$sort": {"_id": 1}}]))
    assert [(row["_id"], row["avg"]) for row in rows] == [({"a": 1}, 6), ({"a": 2}, 3)]


def test_sum_ignores_booleans_as_in_mongodb() -> None:
    """MongoDB's $sum adds numbers only; a boolean is no number (mongomock-ng's interpreter adds it)."""
    db = standin()
    db["c"].insert_many([{"k": 1, "v": True}, {"k": 1, "v": 2}])
    assert next(db["c"].aggregate([{"$group": {"_id": "$k", "sum": {"$sum": "$v"}}}]))["sum"] == 2


def test_first_of_a_missing_field_is_null_as_in_mongodb() -> None:
    db = standin()
    db["c"].insert_many([{"k": 1, "t": 1}, {"k": 1, "t": 2, "v": "x"}])
    row = next(db["c"].aggregate([{"$sort": {"t": 1}}, {"$group": {"_id": "$k", "first": {"$first": "$v"}}}]))
    assert row["first"] is None


def test_compiled_queries_match_what_the_interpreter_matches() -> None:
    """Ranges compare within a BSON type (a range of strings matches strings only), $ne and $nin
    match missing fields, $not negates, arrays go to the interpreter."""
    from mongomock_ng import filtering

    from finops_dagster.resources import mongo_standin_stages as stages

    documents: list[dict[str, Any]] = [
        {"_id": ObjectId("6a98d4a00000000000000001"), "t": dt.datetime(2025, 5, 2), "c": "vm"},
        {"_id": ObjectId("6a98d4a00000000000000002"), "t": "2025-05-02T02:00:00Z", "c": {"value": "vm"}},
        {"_id": ObjectId("6a98d4a00000000000000003"), "t": None, "c": "app"},
        {"_id": ObjectId("6a98d4a00000000000000004"), "c": 42},
        {"_id": ObjectId("6a98d4a00000000000000005"), "t": [dt.datetime(2025, 5, 2)], "c": "vm"},
        {"_id": ObjectId("6a98d4a00000000000000006"), "t": 1714608000, "c": "x"},
        {"_id": ObjectId("6a98d4a00000000000000007"), "t": {"$date": "2025-05-02"}, "c": 1},
    ]
    queries: list[dict[str, Any]] = [
        {"t": {"$gte": dt.datetime(2025, 5, 1), "$lt": dt.datetime(2025, 6, 1), "$not": {"$type": "array"}}},
        {"t": {"$gte": "2025-04-30", "$lt": "2025-06-02"}},
        {"c": {"$ne": "app"}, "$or": [{"t": {"$type": "object"}}, {"t": {"$not": {"$type": "date"}}}]},
        {"c": {"$nin": ["vm", 42]}},
        {"c": {"$in": [1, None]}},
        {"t": None},
        {"t": {"$exists": False}},
        {"_id": {"$gte": ObjectId("6a98d4a00000000000000003"), "$lt": ObjectId("6a98d4a00000000000000006")}},
        {"$and": [{"c": "vm"}, {"t": {"$type": "date"}}]},
    ]
    for query in queries:
        matches = stages.compile_filter(query)
        for doc in documents:
            assert stages._matches(matches, query, doc) == filtering.filter_applies(query, doc), (query, doc)
    # MongoDB compares within a type: true is not 1 (mongomock-ng's interpreter says it is)
    assert not stages.compile_filter({"c": {"$in": [1]}})({"c": True})
