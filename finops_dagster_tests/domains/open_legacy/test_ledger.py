"""open_legacy's ledger: every CMDB document of a month ends in a relevé's count or in a reject.

One CMDB holds a well-formed VM of its own application per case, dumped on the month's three
nights, with the case's malformed documents in place of (or beside) some of them. September 2026
runs once through the real job (`finops_nightly`: applications, the domain, the checks, the
publish); each case is then checked on its own application and its own rejects: the quantities are
exactly what the test computes with Decimal from the documents it inserted, and every reading the
month holds is in a relevé's `source_record_count` or a reject's. A last pair of tests mutates the
reader (one document dropped, one duplicated) and expects the blocking reconciliation to fail.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import psycopg
import pytest
from bson import ObjectId
from dagster import AssetCheckSeverity, DagsterInstance, ExecuteInProcessResult, instance_for_test
from psycopg import sql

from finops_dagster.domains.open_legacy.cmdb import CiSummary, CmdbClient, CmdbLayout
from finops_dagster.domains.open_legacy.cmdb_payloads import DumpTimeError, ingested_instant
from finops_dagster.domains.open_legacy.ledger import count_month, instant_month
from finops_dagster.mart.etl_runs import RANGE_END_TAG, RANGE_START_TAG, RunLedger
from finops_dagster.pipeline import build_definitions
from finops_dagster.resources.mongo import MongoResource
from finops_dagster.resources.postgres import PostgresResource
from finops_dagster_tests.conftest import database_url
from finops_dagster_tests.support.cmdb_documents import application

SEPTEMBER = dt.date(2026, 9, 1)
NIGHTS = [dt.datetime(2026, 9, day, 2, 0) for day in (1, 2, 3)]
DUMPS = Decimal(3)
VM_CLASS = "cmdb_ci_vmware_instance"
PRODUCTS = {"cpus": "OL_VCPU", "memory": "OL_RAM_GB", "disks_size": "OL_DISK_GB"}
FACTORS = {"cpus": Decimal(1), "memory": Decimal("0.0009765625"), "disks_size": Decimal(1)}
WELL_FORMED = {"cpus": "4", "memory": "8192", "disks_size": "100"}
SIX = Decimal("0.000001")
_ids = itertools.count(1)


def object_id(at: dt.datetime) -> ObjectId:
    """An ObjectId created at `at` (as the loader's insert would make it), unique in the test."""
    seconds = int(at.replace(tzinfo=dt.UTC).timestamp())
    return ObjectId(seconds.to_bytes(4, "big") + next(_ids).to_bytes(8, "big"))


def vm_doc(case: str, night: dt.datetime, **fields: Any) -> dict[str, Any]:
    """The case's VM as one night's dump says it; `fields` override (`...` removes a field)."""
    doc: dict[str, Any] = {
        "_id": object_id(night),
        "sys_id": f"ci-{case}",
        "sys_class_name": VM_CLASS,
        "name": f"vm-{case}",
        "u_application": case_app(case),
        "_ingested_at": night,
        **WELL_FORMED,
    }
    doc.update(fields)
    return {key: value for key, value in doc.items() if value is not ...}


def case_app(case: str) -> str:
    return f"APP-{case.upper().replace('_', '-')}"


@dataclass
class Case:
    """A case's documents and what the month must make of them, computed here."""

    name: str
    documents: list[dict[str, Any]]
    counted: list[dict[str, Any]]
    """The documents that must be averaged into the case's relevés (their fields as written)."""
    rejects: list[tuple[str, int]] = field(default_factory=list)
    """(reason fragment, readings the reject accounts for)."""
    outside: int = 0
    """How many of the documents belong to another month than September."""
    application: str | None = None
    """Where the counted documents go (default: the case's own application)."""
    partial: tuple[dict[str, Any], str] | None = None
    """A document counted for all its fields but one, and that field."""

    def documents_in_month(self) -> int:
        return len(self.documents) - self.outside

    def readings_in_month(self) -> int:
        """Three readings per September VM document (vCPU, RAM, disk), one per other document."""
        september = [doc for doc in self.documents if doc not in self.other_months()]
        return sum(3 if _is_vm(doc.get("sys_class_name")) else 1 for doc in september)

    def other_months(self) -> list[dict[str, Any]]:
        return [doc for doc in self.documents if doc.get("outside")] if self.outside else []

    def expected(self) -> dict[str, tuple[Decimal, int]]:
        """product → (monthly quantity, documents averaged), from the documents as written."""
        contributions = [(doc, name) for doc in self.counted for name in PRODUCTS]
        if self.partial is not None:
            odd, skipped = self.partial
            contributions += [(odd, name) for name in PRODUCTS if name != skipped]
        sums: dict[str, Decimal] = {}
        counts: dict[str, int] = {}
        for doc, name in contributions:
            product = PRODUCTS[name]
            sums[product] = sums.get(product, Decimal(0)) + Decimal(str(doc[name])) * FACTORS[name]
            counts[product] = counts.get(product, 0) + 1
        return {
            product: ((total / DUMPS).quantize(SIX, rounding=ROUND_HALF_EVEN), counts[product])
            for product, total in sums.items()
        }


def _is_vm(cls: Any) -> bool:
    return cls == VM_CLASS or (isinstance(cls, dict) and str(cls.get("value", "")).strip() == VM_CLASS)


def well_formed(case: str, nights: list[dt.datetime] = NIGHTS) -> list[dict[str, Any]]:
    return [vm_doc(case, night) for night in nights]


def dump_time_case(name: str, raw: Any, *, readable: bool) -> Case:
    """Night 2's document carries `raw` as its dump time (its _id created on night 2)."""
    odd = vm_doc(name, NIGHTS[1], _ingested_at=raw)
    first, last = vm_doc(name, NIGHTS[0]), vm_doc(name, NIGHTS[2])
    if readable:
        return Case(name, [first, odd, last], counted=[first, odd, last])
    return Case(name, [first, odd, last], counted=[first, last], rejects=[("_ingested_at", 3)])


def field_case(name: str, field_name: str, raw: Any, reason: str) -> Case:
    """Night 2's document has one unreadable measured field; its other two fields still count."""
    odd = vm_doc(name, NIGHTS[1], **{field_name: raw})
    docs = [vm_doc(name, NIGHTS[0]), odd, vm_doc(name, NIGHTS[2])]
    return Case(
        name, docs, counted=[docs[0], docs[2]], rejects=[(f"{field_name}: {reason} in 1 document(s)", 1)],
        partial=(odd, field_name),
    )


def build_cases() -> list[Case]:
    millis = int(NIGHTS[1].replace(tzinfo=dt.UTC).timestamp() * 1000)
    cases = [
        # dump times read as instants
        dump_time_case("iso_z", "2026-09-02T02:00:00Z", readable=True),
        dump_time_case("iso_offset", "2026-09-02T04:00:00+02:00", readable=True),
        dump_time_case("iso_naive", "2026-09-02T02:00:00.123", readable=True),
        dump_time_case("date_wrapper", {"$date": "2026-09-02T02:00:00Z"}, readable=True),
        dump_time_case("date_millis", {"$date": {"$numberLong": str(millis)}}, readable=True),
        # dump times that are no time: rejects of the ObjectId's month
        dump_time_case("epoch_int", millis // 1000, readable=False),
        dump_time_case("missing_time", ..., readable=False),
        dump_time_case("null_time", None, readable=False),
        dump_time_case("garbage_time", "yesterday night", readable=False),
        dump_time_case("nul_time", "2026-09-02\x00", readable=False),
        dump_time_case("array_time", [NIGHTS[1]], readable=False),
        dump_time_case("bad_wrapper", {"$date": "soon"}, readable=False),
        # measured fields
        field_case("list_cpus", "cpus", ["4"], "not a number (\"['4']\")"),
        field_case("nan_cpus", "cpus", float("nan"), "NaN"),
        field_case("negative_cpus", "cpus", "-2", "negative (-2)"),
        field_case("huge_cpus", "cpus", "1e400", "implausibly large (1e400 > 1024)"),
        field_case("bool_cpus", "cpus", True, "not a number (True)"),
        field_case("nul_memory", "memory", "8192\x00", "not a number ('8192\\x00')"),
        field_case("empty_disks", "disks_size", "", "empty"),
        field_case("display_only_cpus", "cpus", {"display_value": "4"}, "missing"),
        field_case("missing_memory", "memory", ..., "missing"),
    ]
    # an ISO string whose instant is in August: not September's document at all
    august = vm_doc("august_edge", NIGHTS[0], _ingested_at="2026-09-01T00:30:00+01:00", outside=True)
    edge = [august, vm_doc("august_edge", NIGHTS[1]), vm_doc("august_edge", NIGHTS[2])]
    cases.append(Case("august_edge", edge, counted=edge[1:], outside=1))
    # a document of October (BSON date) among September's
    october = vm_doc("october", dt.datetime(2026, 10, 3, 2, 0), outside=True)
    docs = [*well_formed("october"), october]
    cases.append(Case("october", docs, counted=docs[:3], outside=1))
    # the same CI twice in one dump: the second is a reject carrying its quantities
    twice = [*well_formed("duplicate"), vm_doc("duplicate", NIGHTS[1], cpus="8")]
    cases.append(Case("duplicate", twice, counted=twice[:3], rejects=[("duplicate sys_id within a dump", 3)]))
    # classes
    unknown = [vm_doc("unknown_class", night, sys_class_name="cmdb_ci_printer") for night in NIGHTS]
    cases.append(Case("unknown_class", unknown, [], rejects=[("unknown CI class 'cmdb_ci_printer'", 3)]))
    numeric = [vm_doc("numeric_class", night, sys_class_name=42) for night in NIGHTS]
    cases.append(Case("numeric_class", numeric, counted=[], rejects=[("unknown CI class '42'", 3)]))
    classless = [vm_doc("no_class", night, sys_class_name=...) for night in NIGHTS]
    cases.append(Case("no_class", classless, [], rejects=[("sys_class_name: missing in 3 document(s)", 3)]))
    wrapped = [vm_doc("wrapped_class", night, sys_class_name={"value": f" {VM_CLASS} "}) for night in NIGHTS]
    cases.append(Case("wrapped_class", wrapped, counted=wrapped))
    # without sys_id: rejected, with their quantities
    anonymous = [vm_doc("no_sys_id", night, sys_id="") for night in NIGHTS]
    cases.append(Case("no_sys_id", anonymous, counted=[], rejects=[("document without sys_id", 9)]))
    # a NUL byte in the CI's own name and id, and an application reference of the wrong type
    nul = [vm_doc("nul_ref", night, sys_id="ci-nul\x00ref", name="vm\x00nul") for night in NIGHTS]
    nul[1]["cpus"] = "x"
    cases.append(Case("nul_ref", nul, counted=[nul[0], nul[2]], rejects=[("cpus: not a number ('x')", 1)],
                      partial=(nul[1], "cpus")))
    numeric_app = [vm_doc("numeric_app", night, u_application=12345) for night in NIGHTS]
    cases.append(Case("numeric_app", numeric_app, counted=numeric_app, application="UNALLOCATED"))
    return cases


CASES = build_cases()
CASE_NAMES = [case.name for case in CASES]



def fill(db: Any) -> None:
    apps = [case_app(case.name) for case in CASES]
    db["cmdb_ci"].insert_many(
        [{**application(code, day=night.date()), "_id": object_id(night)}
         for night in NIGHTS for code in apps]
    )
    db["cmdb_ci"].insert_many([doc for case in CASES for doc in case.documents])


@dataclass(frozen=True)
class Month:
    mart: psycopg.Connection
    result: ExecuteInProcessResult

    def rejects(self, prefix: str) -> list[tuple[str, int, Decimal | None, Any]]:
        return self.mart.execute(
            "SELECT reason, source_record_count, usage_quantity, raw_payload FROM finops.releve_reject "
            "WHERE run_id = %s AND starts_with(source_ref, %s) ORDER BY reason, usage_unit",
            (self.result.run_id, prefix + " ("),
        ).fetchall()


def run_september(resources: dict[str, Any], instance: DagsterInstance) -> ExecuteInProcessResult:
    job = build_definitions(resources).resolve_job_def("finops_nightly")
    tags = {RANGE_START_TAG: SEPTEMBER.isoformat(), RANGE_END_TAG: SEPTEMBER.isoformat()}
    return job.execute_in_process(instance=instance, raise_on_error=False, tags=tags)


@pytest.fixture(scope="module")
def september(server_url: str, template_db: str) -> Iterator[Month]:
    name = f"finops_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template_db)))
    url = database_url(server_url, name)
    cmdb = MongoResource(url=f"mongomock://{uuid.uuid4().hex}")
    fill(cmdb.db())
    postgres = PostgresResource(url=url)
    resources = {"postgres": postgres, "cmdb": cmdb, "run_ledger": RunLedger(postgres=postgres)}
    try:
        with pytest.MonkeyPatch.context() as patch, instance_for_test() as instance, \
                psycopg.connect(url, autocommit=True) as mart:
            patch.setenv("FINOPS_DOMAINS_ENABLED", "open_legacy")
            yield Month(mart, run_september(resources, instance))
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_the_month_runs_and_its_ledger_balances(september: Month) -> None:
    assert september.result.success
    evaluations = {e.check_name: e for e in september.result.get_asset_check_evaluations()
                   if e.asset_key.to_user_string() == "open_legacy_releves"}
    assert evaluations["reconciliation"].passed
    documents = sum(case.documents_in_month() for case in CASES)
    readings = sum(case.readings_in_month() for case in CASES)
    ledger, ledger_documents, counted = september.mart.execute(
        "SELECT details -> 'record_ledger', details -> 'ledger_documents', source_record_count "
        "FROM finops.domain_load WHERE run_id = %s",
        (september.result.run_id,)).fetchone()
    assert (ledger, ledger_documents) == ({"cmdb": readings}, documents)
    assert counted == documents
    in_releves, in_rejects = september.mart.execute(
        "SELECT (SELECT sum(source_record_count) FROM finops.fact_releve WHERE run_id = %(run)s), "
        "(SELECT sum(source_record_count) FROM finops.releve_reject WHERE run_id = %(run)s)",
        {"run": september.result.run_id}).fetchone()
    assert in_releves + in_rejects == readings


@pytest.mark.parametrize("name", CASE_NAMES)
def test_each_case_is_counted_or_rejected_with_its_reason(september: Month, name: str) -> None:
    case = next(case for case in CASES if case.name == name)
    application_id = case.application or case_app(case.name)
    rows = september.mart.execute(
        "SELECT product_id, usage_quantity, source_record_count FROM finops.fact_releve "
        "WHERE run_id = %s AND application_id = %s ORDER BY 1",
        (september.result.run_id, application_id)).fetchall()
    assert {product: (quantity, count) for product, quantity, count in rows} == case.expected()

    prefix = {"nul_ref": "ci-nul\\x00ref", "no_sys_id": "no sys_id"}.get(name, f"ci-{name}")
    rejects = september.rejects(prefix)
    for fragment, readings in case.rejects:
        matching = [row for row in rejects if fragment in row[0]]
        assert matching, f"{name}: no reject with {fragment!r} in {[row[0] for row in rejects]}"
        assert sum(row[1] for row in matching) == readings
    assert sum(row[1] for row in rejects) == sum(readings for _, readings in case.rejects)
    in_releves = sum(count for *_, count in rows)
    assert in_releves + sum(row[1] for row in rejects) == case.readings_in_month()


def test_rejected_quantities_are_the_documents_own(september: Month) -> None:
    """A duplicate's and an anonymous document's quantities are in their rejects, averaged like the
    relevés' (nothing invented, nothing lost)."""
    third = [(Decimal(value) / DUMPS).quantize(SIX, rounding=ROUND_HALF_EVEN) for value in ("8", "8", "100")]
    assert sorted(row[2] for row in september.rejects("ci-duplicate")) == sorted(third)
    anonymous = sorted(row[2] for row in september.rejects("no sys_id"))
    assert anonymous == sorted([Decimal("4.000000"), Decimal("8.000000"), Decimal("100.000000")])


def test_a_nul_byte_is_written_escaped(september: Month) -> None:
    ((reason, _, _, payload),) = september.rejects("ci-nul\\x00ref")
    assert reason == "cpus: not a number ('x') in 1 document(s)"
    assert payload["name"] == "vm\\x00nul"


def test_unreadable_dump_times_name_what_they_were(september: Month) -> None:
    reasons = {name: september.rejects(f"ci-{name}")[0][0] for name in
               ("epoch_int", "missing_time", "garbage_time", "array_time", "bad_wrapper")}
    seconds = int(NIGHTS[1].replace(tzinfo=dt.UTC).timestamp())
    assert reasons["epoch_int"].startswith(f"_ingested_at is not a date (int {seconds}) in 1 document(s)")
    assert reasons["missing_time"].startswith("_ingested_at missing or null in 1 document(s)")
    assert reasons["garbage_time"].startswith("_ingested_at is not an ISO-8601 date ('yesterday night')")
    assert reasons["array_time"].startswith("_ingested_at is not a date (list ")
    assert reasons["bad_wrapper"].startswith("_ingested_at is not an ISO-8601 date ('soon')")
    assert all("its month is that of its ObjectId _id" in reason for reason in reasons.values())


def test_the_ledger_counts_without_the_reader() -> None:
    """count_month alone, on a CMDB of a few shapes, against counts written out here."""
    cmdb = MongoResource(url=f"mongomock://{uuid.uuid4().hex}")
    db = cmdb.db()
    fill(db)
    ledger = count_month(db, CmdbLayout(), {VM_CLASS: 3, "cmdb_ci_server": 3}, SEPTEMBER)
    assert ledger.documents == sum(case.documents_in_month() for case in CASES)
    assert ledger.readings == sum(case.readings_in_month() for case in CASES)


# --------------------------------------------------------------------------------------------
# a reader that drops or duplicates a document is caught
# --------------------------------------------------------------------------------------------


@pytest.fixture
def mutable(resources: dict[str, Any]) -> dict[str, Any]:
    db = resources["cmdb"].db()
    db["cmdb_ci"].insert_many(
        [{**application("APP-ONE", day=night.date()), "_id": object_id(night)} for night in NIGHTS]
        + [vm_doc("one", night, u_application="APP-ONE") for night in NIGHTS]
        + [vm_doc("two", night, u_application="APP-ONE", sys_id="ci-two") for night in NIGHTS]
    )
    return resources


LATER_ON_NIGHT_3 = dt.datetime(2026, 9, 3, 5, 0)


def _mutated(monkeypatch: pytest.MonkeyPatch, change: Any) -> None:
    original = CmdbClient.ci_summaries

    def reader(
        self: CmdbClient, month: dt.date, fields: list[str], measured: list[str]
    ) -> Iterator[CiSummary]:
        for index, ci in enumerate(original(self, month, fields, measured)):
            yield change(ci) if index == 0 else ci

    monkeypatch.setattr(CmdbClient, "ci_summaries", reader)


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        (lambda ci: replace(ci, states=[(ci.states[0][0], ci.states[0][1] - 1), *ci.states[1:]]),
         "2026-09 open_legacy cmdb: 18 records in the source, 15 in relevés + 0 in rejects "
         "(3 unaccounted for)"),
        (lambda ci: replace(ci, extras=[*ci.extras, {**ci.latest_counted, "at": LATER_ON_NIGHT_3}]),
         "2026-09 open_legacy cmdb: 18 records in the source, 18 in relevés + 3 in rejects "
         "(3 counted twice or invented)"),
    ],
    ids=["drops", "duplicates"],
)
def test_a_reader_that_drops_or_duplicates_a_document_fails_the_blocking_reconciliation(
    mutable: dict[str, Any], mart: psycopg.Connection, monkeypatch: pytest.MonkeyPatch, mutation: Any,
    expected: str,
) -> None:
    _mutated(monkeypatch, mutation)
    with instance_for_test() as instance:
        result = run_september(mutable, instance)

    key = ("open_legacy_releves", "reconciliation")
    reconciliation = next(e for e in result.get_asset_check_evaluations()
                          if (e.asset_key.to_user_string(), e.check_name) == key)
    assert not reconciliation.passed
    assert reconciliation.severity == AssetCheckSeverity.ERROR
    assert reconciliation.description == expected
    assert not result.success
    assert result.asset_materializations_for_node("fact_releve") == []
    assert mart.execute("SELECT count(*) FROM finops.fact_releve").fetchone() == (0,)


def test_application_records_dated_by_strings_are_no_dump_to_date_the_referential_by() -> None:
    """The latest dump is found among BSON dates: records dated by text alone leave no referential
    (which the applications asset reports) instead of failing on the text."""
    db = MongoResource(url=f"mongomock://{uuid.uuid4().hex}").db()
    db["cmdb_ci"].insert_one({**application("APP-TEXT", day=NIGHTS[1].date()), "_id": object_id(NIGHTS[1]),
                              "_ingested_at": "2026-09-02T02:00:00Z"})
    assert CmdbClient(db, CmdbLayout()).latest_applications() == []
    db["cmdb_ci"].insert_one({**application("APP-DATED", day=NIGHTS[0].date()), "_id": object_id(NIGHTS[0])})
    assert [record.application_id for record in CmdbClient(db, CmdbLayout()).latest_applications()] == [
        "APP-DATED"]


# --------------------------------------------------------------------------------------------
# dump times: the reader's reading and the ledger's agree on the month
# --------------------------------------------------------------------------------------------

DUMP_TIMES: list[tuple[Any, dt.datetime | None]] = [
    (dt.datetime(2026, 9, 2, 2, 0), dt.datetime(2026, 9, 2, 2, 0)),
    ("2026-09-02T04:00:00+02:00", dt.datetime(2026, 9, 2, 2, 0)),
    ("2026-09-02T02:00:00Z", dt.datetime(2026, 9, 2, 2, 0)),
    ("2026-09-02 02:00:00", dt.datetime(2026, 9, 2, 2, 0)),
    ("2026-09-02", dt.datetime(2026, 9, 2)),
    ("2026-08-31T23:30:00-01:00", dt.datetime(2026, 9, 1, 0, 30)),
    ("2026-10-01T00:30:00+01:00", dt.datetime(2026, 9, 30, 23, 30)),
    ({"$date": "2026-09-02T02:00:00.500Z"}, dt.datetime(2026, 9, 2, 2, 0, 0, 500000)),
    ({"$date": 1788314400000}, dt.datetime(2026, 9, 2, 2, 0)),
    ({"$date": {"$numberLong": "1788314400000"}}, dt.datetime(2026, 9, 2, 2, 0)),
    ("20260902T020000Z", None),  # basic format: not found by the month's string range, so not a time
    (" 2026-09-02T02:00:00Z", None),
    ("2026-09-02\x00", None),
    ("٢٠٢٦-٠٩-٠٢", None),
    ("2026-13-02", None),
    ("", None),
    (1788314400, None),
    (1788314400.0, None),
    (True, None),
    (None, None),
    ([dt.datetime(2026, 9, 2)], None),
    ({"$date": "soon"}, None),
    ({"$date": {"$numberLong": "soon"}}, None),
    ({"$date": 1.5}, None),
    ({"$date": "2026-09-02", "extra": 1}, None),
    ({"when": "2026-09-02"}, None),
]


@pytest.mark.parametrize(("raw", "instant"), DUMP_TIMES, ids=[repr(raw)[:40] for raw, _ in DUMP_TIMES])
def test_dump_time_read_alike_by_the_reader_and_the_ledger(raw: Any, instant: dt.datetime | None) -> None:
    if instant is None:
        with pytest.raises(DumpTimeError):
            ingested_instant(raw)
    else:
        assert ingested_instant(raw) == instant
    expected_month = None if instant is None else dt.date(instant.year, instant.month, 1)
    if not isinstance(raw, dt.datetime):  # BSON dates are counted by MongoDB itself
        assert instant_month(raw) == expected_month
