"""The demo estate and CMDB generator: deterministic, realistic in shares, and dirty on purpose.

The open_legacy domain is tested against these dumps, so the generator must really contain each
case the pipeline handles (every way of naming an application, every kind of malformed record,
duplicates) in realistic proportions, and must produce the same bytes every time.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import bson
import mongomock_ng
import pytest

from finops_dagster.demo.cmdb import (
    DEFECT_KINDS,
    DISK_CLASSES,
    NAME_RULES,
    NUMERIC_FIELDS,
    SERVER_CLASSES,
    UNKNOWN_CLASSES,
    VM_CLASSES,
    CmdbSummary,
    dump_nights,
    generate_cmdb,
)
from finops_dagster.demo.estate import Estate, build_estate

TODAY = dt.date(2026, 10, 10)
CIS = 600
MONTHS = 2
APPLICATIONS = 60
GROUPS = 8
APP_CLASS = "cmdb_ci_business_app"
FIXED = {"PAYMENTS", "CRM", "DATAHUB", "BACKUP", "MONITORING"}
RULES_FILE = (
    Path(__file__).resolve().parents[2] / "finops_dagster" / "reference" / "data" / "mapping_rules.csv"
)


Dump = dict[str, list[dict[str, Any]]]


def _estate() -> Estate:
    """A smaller estate than the demo's keeps mongomock reads (the slow part) short."""
    return build_estate(applications=APPLICATIONS, groups=GROUPS)


def _generate() -> tuple[Any, CmdbSummary]:
    db: Any = mongomock_ng.MongoClient()["raw"]
    return db, generate_cmdb(db, _estate(), today=TODAY, months=MONTHS, cis=CIS)


def _read(db: Any) -> Dump:
    """Both collections, each read once (mongomock's find is slow), sorted by _id."""
    return {name: sorted(db[name].find(), key=lambda doc: doc["_id"]) for name in ("cmdb_ci", "cmdb_rel_ci")}


@pytest.fixture(scope="module")
def generated() -> tuple[Any, CmdbSummary]:
    return _generate()


@pytest.fixture(scope="module")
def dump(generated: tuple[Any, CmdbSummary]) -> Dump:
    return _read(generated[0])


@pytest.fixture(scope="module")
def cis(dump: Dump) -> list[dict[str, Any]]:
    return [doc for doc in dump["cmdb_ci"] if doc.get("sys_class_name") != APP_CLASS]


@pytest.fixture(scope="module")
def relations(dump: Dump) -> list[dict[str, Any]]:
    return dump["cmdb_rel_ci"]


@pytest.fixture(scope="module")
def applications(dump: Dump) -> list[dict[str, Any]]:
    return [doc for doc in dump["cmdb_ci"] if doc.get("sys_class_name") == APP_CLASS]


def _value(raw: Any) -> Any:
    return raw.get("value") if isinstance(raw, dict) else raw


def _latest_by_ci(cis: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One document per CI, the last one seen that carries its class."""
    latest: dict[str, dict[str, Any]] = {}
    for doc in cis:
        if "sys_class_name" in doc:
            latest[doc["sys_id"]] = doc
    return latest


def _resolution(
    doc: dict[str, Any], codes: set[str], parents: dict[str, str], app_by_sys_id: dict[str, str]
) -> str:
    """The pipeline's order: u_application, relation to an application, name rule, unallocated."""
    if "u_application" in doc:
        code = str(_value(doc["u_application"])).strip().upper()
        return "field" if code in codes else "ghost"
    if parents.get(doc["sys_id"]) in app_by_sys_id:
        return "relation"
    if any(re.match(pattern, doc["name"]) for pattern, _ in NAME_RULES):
        return "rule"
    return "none"


def test_estate_is_deterministic_skewed_and_has_the_fixed_applications() -> None:
    estate = build_estate()
    assert estate == build_estate()
    assert estate != build_estate(seed=7)
    assert [app.code for app in estate.applications[:5]] == [
        "PAYMENTS",
        "CRM",
        "DATAHUB",
        "BACKUP",
        "MONITORING",
    ]
    assert estate.applications[0].name == "Payments Platform"
    assert len(set(estate.codes)) == 300
    assert all(re.fullmatch(r"[A-Z]{2,3}-\d{3}", code) for code in estate.codes[5:])
    assert len({app.group_code for app in estate.applications}) == 20
    assert all(re.fullmatch(r"GRP-[A-Z]+", app.group_code) for app in estate.applications)
    assert sum(estate.weights) == pytest.approx(1.0)
    top_fifth = sorted(estate.weights, reverse=True)[:60]
    assert 0.7 < sum(top_fifth) < 0.9


def test_two_generations_are_byte_identical(generated: tuple[Any, CmdbSummary], dump: Dump) -> None:
    other_db, other_summary = _generate()
    assert other_summary == generated[1]
    other = _read(other_db)
    for name in ("cmdb_ci", "cmdb_rel_ci"):
        assert [bson.encode(doc) for doc in other[name]] == [bson.encode(doc) for doc in dump[name]]


def test_one_dump_per_night_at_two_utc(
    generated: tuple[Any, CmdbSummary], dump: Dump, cis: list[dict[str, Any]]
) -> None:
    db, summary = generated
    expected_nights = 30 + 10
    assert summary.dumps == expected_nights == len(dump_nights(TODAY, MONTHS))
    assert (summary.first_dump, summary.last_dump) == (dt.date(2026, 9, 1), TODAY)
    stamps = [doc["_ingested_at"] for docs in dump.values() for doc in docs]
    assert {stamp.date() for stamp in stamps} == set(dump_nights(TODAY, MONTHS))
    assert all(stamp.tzinfo is None and stamp.hour == 2 and stamp.minute == 0 for stamp in stamps)
    assert max(stamp.second for stamp in stamps) >= 1
    total = db.cmdb_ci.count_documents({})
    assert total == summary.ci_documents + summary.application_documents
    assert db.cmdb_rel_ci.count_documents({}) == summary.relation_documents
    assert len(cis) == summary.ci_documents


def test_indexes_exist(generated: tuple[Any, CmdbSummary]) -> None:
    db, _ = generated
    ci_keys = [list(index["key"]) for index in db.cmdb_ci.index_information().values()]
    rel_keys = [list(index["key"]) for index in db.cmdb_rel_ci.index_information().values()]
    assert [("_ingested_at", 1)] in ci_keys
    assert [("sys_id", 1), ("_ingested_at", 1)] in ci_keys
    assert [("child", 1)] in rel_keys
    assert [("_ingested_at", 1)] in rel_keys


def test_application_records_every_night(
    generated: tuple[Any, CmdbSummary], applications: list[dict[str, Any]]
) -> None:
    _, summary = generated
    assert summary.application_documents == APPLICATIONS * summary.dumps == len(applications)
    per_night = Counter(doc["_ingested_at"].date() for doc in applications)
    assert set(per_night.values()) == {APPLICATIONS}
    codes = {doc["u_code"] for doc in applications}
    assert codes >= FIXED
    payments = next(doc for doc in applications if doc["u_code"] == "PAYMENTS")
    assert payments["name"] == "Payments Platform"
    assert payments["u_application_group"] == {"display_value": "Payments & Cards", "value": "GRP-PAYMENTS"}
    assert all(re.fullmatch(r"[0-9a-f]{32}", doc["sys_id"]) for doc in applications)
    assert len({doc["sys_id"] for doc in applications}) == APPLICATIONS


def test_class_mix(cis: list[dict[str, Any]]) -> None:
    classes = Counter(doc["sys_class_name"] for doc in _latest_by_ci(cis).values())
    total = sum(classes.values())
    assert total == CIS

    def share(group: tuple[str, ...]) -> float:
        return sum(classes[cls] for cls in group) / total

    assert 0.37 <= share(VM_CLASSES) <= 0.43
    assert 0.27 <= share(SERVER_CLASSES) <= 0.33
    assert 0.13 <= share(DISK_CLASSES[:1]) <= 0.17
    assert 0.11 <= share(DISK_CLASSES[1:]) <= 0.15
    assert 0.01 <= share(UNKNOWN_CLASSES) <= 0.02


def test_sizes_are_realistic_strings(cis: list[dict[str, Any]]) -> None:
    latest = [doc for doc in _latest_by_ci(cis).values() if not _defects(doc)]
    vms = [doc for doc in latest if doc["sys_class_name"] in VM_CLASSES and "memory" in doc]
    cpus = [int(_value(doc["cpus"])) for doc in vms if str(_value(doc["cpus"])).isdigit()]
    ram_mb = [int(_value(doc["memory"])) for doc in vms if str(_value(doc["memory"])).isdigit()]
    assert min(cpus) >= 1 and max(cpus) <= 64
    assert min(ram_mb) >= 1024 and max(ram_mb) <= 512 * 1024
    sizes = [
        int(_value(doc["size_bytes"]))
        for doc in latest
        if doc["sys_class_name"] in DISK_CLASSES and str(_value(doc.get("size_bytes"))).isdigit()
    ]
    assert min(sizes) >= 20 * 1024**3 and max(sizes) <= 20 * 1024**4
    wrapped = [doc["memory"] for doc in vms if isinstance(doc["memory"], dict)]
    assert wrapped and all(set(w) == {"display_value", "value"} for w in wrapped)
    assert any("," in w["display_value"] for w in wrapped)


def test_resolution_shares(
    cis: list[dict[str, Any]], relations: list[dict[str, Any]], applications: list[dict[str, Any]]
) -> None:
    codes = {doc["u_code"] for doc in applications}
    app_by_sys_id = {doc["sys_id"]: doc["u_code"] for doc in applications}
    parents = {rel["child"]: _value(rel["parent"]) for rel in relations}
    kinds = Counter(_resolution(doc, codes, parents, app_by_sys_id) for doc in _latest_by_ci(cis).values())
    shares = {kind: count / CIS for kind, count in kinds.items()}
    assert 0.72 <= shares["field"] <= 0.80
    assert 0.08 <= shares["relation"] <= 0.12
    assert 0.05 <= shares["rule"] <= 0.09
    assert 0.04 <= shares["none"] <= 0.07
    assert 0.005 <= shares["ghost"] <= 0.02


def test_application_reference_shapes(cis: list[dict[str, Any]]) -> None:
    refs = [doc["u_application"] for doc in _latest_by_ci(cis).values() if "u_application" in doc]
    shapes = Counter(
        "plain" if isinstance(ref, str) else "link" if "link" in ref else "display" for ref in refs
    )
    assert 0.4 <= shapes["plain"] / len(refs) <= 0.6
    assert 0.15 <= shapes["link"] / len(refs) <= 0.35
    assert 0.15 <= shapes["display"] / len(refs) <= 0.35
    values = [str(_value(ref)) for ref in refs]
    assert any(value != value.strip().upper() for value in values)
    assert any(value.startswith("GHOST-") for value in values)


def test_rule_names_and_the_shipped_rule_file_agree(cis: list[dict[str, Any]]) -> None:
    names = {doc["name"] for doc in cis}
    for pattern, _ in NAME_RULES:
        assert any(re.match(pattern, name) for name in names)
    assert any(name.startswith("tmp-") for name in names)
    if RULES_FILE.exists():
        lines = RULES_FILE.read_text().splitlines()[1:]
        shipped = {(row.split(",")[3], row.split(",")[4]) for row in lines if ",open_legacy,name," in row}
        assert set(NAME_RULES) <= shipped


def test_relations_tie_cis_without_u_application_to_applications(
    cis: list[dict[str, Any]], relations: list[dict[str, Any]], applications: list[dict[str, Any]]
) -> None:
    app_sys_ids = {doc["sys_id"] for doc in applications}
    children = {rel["child"] for rel in relations}
    assert children
    assert all(rel["type"] == "Depends on::Used by" for rel in relations)
    assert all(_value(rel["parent"]) in app_sys_ids for rel in relations)
    assert any(isinstance(rel["parent"], dict) for rel in relations)
    assert any(isinstance(rel["parent"], str) for rel in relations)
    related_docs = [doc for doc in cis if doc["sys_id"] in children]
    assert related_docs
    assert not any("u_application" in doc for doc in related_docs)
    ci_nights = {(doc["sys_id"], doc["_ingested_at"].date()) for doc in related_docs}
    rel_nights = {(rel["child"], rel["_ingested_at"].date()) for rel in relations}
    assert rel_nights == ci_nights


def test_lifecycle_some_cis_come_and_go(
    generated: tuple[Any, CmdbSummary], cis: list[dict[str, Any]]
) -> None:
    _, summary = generated
    nights_per_ci: dict[str, set[dt.date]] = defaultdict(set)
    for doc in cis:
        nights_per_ci[doc["sys_id"]].add(doc["_ingested_at"].date())
    partial = [nights for nights in nights_per_ci.values() if len(nights) < summary.dumps]
    assert 0.10 <= len(partial) / len(nights_per_ci) <= 0.25
    assert any(min(nights) > summary.first_dump for nights in partial)
    assert any(max(nights) < summary.last_dump for nights in partial)


def _defects(doc: dict[str, Any]) -> set[str]:
    if "sys_class_name" not in doc:
        return {"missing_class"}
    found = set()
    for name in NUMERIC_FIELDS.get(doc["sys_class_name"], ()):
        if name not in doc:
            found.add("missing_numeric")
            continue
        value = str(_value(doc[name]))
        if value in ("n/a", ""):
            found.add("non_numeric" if value else "empty")
        elif value == "NaN":
            found.add("nan")
        elif value.startswith("-"):
            found.add("negative")
        elif value == "1e30":
            found.add("huge_float")
        elif value.isdigit() and len(value) >= 17:
            found.add("huge_int")
    return found


def test_every_malformed_kind_appears_in_a_realistic_share(cis: list[dict[str, Any]]) -> None:
    kinds: Counter[str] = Counter()
    affected = set()
    for doc in cis:
        found = _defects(doc)
        kinds.update(found)
        if found:
            affected.add(doc["sys_id"])
    assert set(kinds) == set(DEFECT_KINDS)
    all_cis = {doc["sys_id"] for doc in cis}
    assert 0.02 <= len(affected) / len(all_cis) <= 0.03
    assert sum(kinds.values()) < 0.01 * len(cis)


def test_duplicate_sys_ids_within_one_dump(cis: list[dict[str, Any]]) -> None:
    per_dump = Counter((doc["sys_id"], doc["_ingested_at"].date()) for doc in cis)
    duplicated = [key for key, count in per_dump.items() if count > 1]
    assert duplicated
    assert all(per_dump[key] == 2 for key in duplicated)
    assert len({sys_id for sys_id, _ in duplicated}) <= 0.01 * CIS
    assert len({night for _, night in duplicated}) <= 4
    sys_id, night = duplicated[0]
    pair = [doc for doc in cis if doc["sys_id"] == sys_id and doc["_ingested_at"].date() == night]
    ignored = {"_id", "_ingested_at", "sys_updated_on"}
    first, second = ({k: v for k, v in doc.items() if k not in ignored} for doc in pair)
    assert first == second
    assert pair[0]["sys_updated_on"] != pair[1]["sys_updated_on"]


def test_estate_is_shared_with_the_cmdb(applications: list[dict[str, Any]]) -> None:
    assert {doc["u_code"] for doc in applications} == set(_estate().codes)
