"""open_legacy without Dagster: ServiceNow value shapes, the mapping fold, and the shipped sample.

The fold is fed `CiMonth` values directly (what `CmdbClient.ci_months` yields), priced with a
snapshot built from the shipped reference files. The sample test goes through the real client
over the in-memory CMDB and reads prices and applications from the test's mart.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from bson import ObjectId, json_util

from finops_dagster.domains.open_legacy import DOMAIN_ID
from finops_dagster.domains.open_legacy.assets import read_month
from finops_dagster.domains.open_legacy.cmdb import CiMonth, CmdbClient, CmdbLayout
from finops_dagster.domains.open_legacy.cmdb_payloads import (
    QuantityError,
    application_code,
    parse_quantity,
)
from finops_dagster.reference.loader import ApplicationRecord, load_applications_into_mart
from finops_dagster.reference.snapshot import ReferenceSnapshot, read_snapshot
from finops_dagster.releve import UNALLOCATED_APPLICATION, DomainLoad, Releve
from finops_dagster.resources.mongo import MongoResource
from finops_dagster_tests.support.cmdb_documents import application
from finops_dagster_tests.support.open_legacy_fold import (
    DEC_2025,
    JAN_2026,
    MONTH,
    days,
    fold,
    obs,
    shipped_snapshot,
)
from finops_dagster_tests.support.samples import SAMPLES

pytestmark = pytest.mark.usefixtures("fold_session")

SAMPLE = SAMPLES / "servicenow" / "SYNTHETIC_cmdb_table_api_and_mongo_dump.json"
MAX = Decimal(4096)

# --------------------------------------------------------------------------------------------
# ServiceNow value shapes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("16384", Decimal(16384)),
        (" 16384 ", Decimal(16384)),
        ({"display_value": "16,384", "value": "16384"}, Decimal(16384)),
        ({"value": "4", "link": "https://example.service-now.com/api/now/table/x/1"}, Decimal(4)),
        ({"$numberLong": "16384"}, Decimal(16384)),
        (16384, Decimal(16384)),
        (0, Decimal(0)),
        (2.5, Decimal("2.5")),
        (0.1, Decimal("0.1")),  # the float's shortest repr, not its binary expansion
        ("4096", Decimal(4096)),  # the maximum itself is allowed
    ],
)
def test_parse_quantity_accepts_servicenow_shapes(raw: Any, expected: Decimal) -> None:
    value = parse_quantity(raw, maximum=Decimal(67108864))
    assert value == expected
    assert isinstance(value, Decimal)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("n/a", "not a number ('n/a')"),
        ("", "empty"),
        ("   ", "empty"),
        ("-4", "negative (-4)"),
        ("NaN", "NaN"),
        (float("nan"), "NaN"),
        ("Infinity", "infinite (Infinity)"),
        ("1e30", "implausibly large (1e30 > 4096)"),
        ("4097", "implausibly large (4097 > 4096)"),
        (None, "missing"),
        ({"display_value": "4"}, "missing"),  # a display value alone is not a machine value
        (True, "not a number (True)"),
    ],
)
def test_parse_quantity_rejects_with_reason(raw: Any, reason: str) -> None:
    with pytest.raises(QuantityError) as caught:
        parse_quantity(raw, maximum=MAX)
    assert str(caught.value) == reason


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("PAYMENTS", "PAYMENTS"),
        ({"value": "PAYMENTS", "link": "https://example.service-now.com/api/now/table/x/1"}, "PAYMENTS"),
        ({"display_value": "Payments Platform", "value": "PAYMENTS"}, "PAYMENTS"),
        ("  payments ", "PAYMENTS"),
        ({"display_value": "Payments", "value": " payments\t"}, "PAYMENTS"),
        ("", None),
        (None, None),
        ({"display_value": "Payments Platform"}, None),
    ],
)
def test_application_code_normalises_references(raw: Any, code: str | None) -> None:
    assert application_code(raw) == code


# --------------------------------------------------------------------------------------------
# The fold
# --------------------------------------------------------------------------------------------

def quantities(load: DomainLoad) -> dict[tuple[str, str], Decimal]:
    return {(r.application_id, r.product_id): r.usage_quantity for r in load.releves}


def by_key(load: DomainLoad) -> dict[tuple[str, str], Releve]:
    return {(r.application_id, r.product_id): r for r in load.releves}


def test_average_over_the_month_dumps() -> None:
    ten = days(MONTH, 10)
    always = CiMonth("ci-always", [obs(day, app="PAYMENTS") for day in ten], [])
    half = CiMonth("ci-half", [obs(day, app="BILLING") for day in ten[:5]], [])
    load = fold([always, half])

    assert load.details["dumps"] == 10
    assert quantities(load) == {
        ("BILLING", "OL_DISK_GB"): Decimal("50.000000"),
        ("BILLING", "OL_RAM_GB"): Decimal("4.000000"),
        ("BILLING", "OL_VCPU"): Decimal("2.000000"),
        ("PAYMENTS", "OL_DISK_GB"): Decimal("100.000000"),
        ("PAYMENTS", "OL_RAM_GB"): Decimal("8.000000"),  # 8192 MB → 8 GB-month
        ("PAYMENTS", "OL_VCPU"): Decimal("4.000000"),
    }
    releves = by_key(load)
    assert releves[("PAYMENTS", "OL_VCPU")].source_record_count == 10
    assert releves[("BILLING", "OL_VCPU")].source_record_count == 5
    assert releves[("PAYMENTS", "OL_RAM_GB")].usage_unit == "GB-month"
    assert releves[("PAYMENTS", "OL_VCPU")].usage_unit == "vCPU-month"
    assert load.rejects == []
    assert load.source_totals == {"GB-month": Decimal("162.000000"), "vCPU-month": Decimal("6.000000")}
    assert load.source_record_count == 15


def test_average_keeps_exact_decimals_for_non_round_quantities() -> None:
    three = days(MONTH, 3)
    # 1 vCPU in 1 of 3 dumps = 1/3 vCPU-month, quantized to 6 decimals, priced exactly.
    load = fold(
        [
            CiMonth("ci-a", [obs(three[0], app="PAYMENTS", cpus="1")], []),
            CiMonth("ci-b", [obs(day, app="BILLING") for day in three], []),
        ]
    )
    releve = by_key(load)[("PAYMENTS", "OL_VCPU")]
    assert releve.usage_quantity == Decimal("0.333333")
    # 0.333333 × 18.50 = 6.1666605, rounded half-even to the mart's 6 decimals
    assert releve.total_cost == Decimal("6.166660")
    assert releve.unit_cost == Decimal("18.50")


def test_resolution_by_field_relation_rule_then_unallocated() -> None:
    day = MONTH
    load = fold(
        [
            # 1. the field wins over a relation and a rule
            CiMonth("ci-1", [obs(day, app="PAYMENTS", name="bkp-001")], ["app-sys-billing"]),
            # 2. no field: the relation wins over a rule
            CiMonth(
                "ci-2",
                [obs(day, cpus="1", memory="1024", disks_size="10", name="bkp-002")],
                ["app-sys-billing"],
            ),
            # 3. no field, no relation: the mapping rule (name ^bkp- → BACKUP)
            CiMonth("ci-3", [obs(day, cpus="2", memory="2048", disks_size="20", name="bkp-003")], []),
            # 4. nothing: unallocated
            CiMonth("ci-4", [obs(day, cpus="8", memory="4096", disks_size="40", name="misc-004")], []),
        ],
        app_sys_ids={"app-sys-billing": "BILLING"},
    )
    assert quantities(load) == {
        ("PAYMENTS", "OL_VCPU"): Decimal("4.000000"),
        ("PAYMENTS", "OL_RAM_GB"): Decimal("8.000000"),
        ("PAYMENTS", "OL_DISK_GB"): Decimal("100.000000"),
        ("BILLING", "OL_VCPU"): Decimal("1.000000"),
        ("BILLING", "OL_RAM_GB"): Decimal("1.000000"),
        ("BILLING", "OL_DISK_GB"): Decimal("10.000000"),
        ("BACKUP", "OL_VCPU"): Decimal("2.000000"),
        ("BACKUP", "OL_RAM_GB"): Decimal("2.000000"),
        ("BACKUP", "OL_DISK_GB"): Decimal("20.000000"),
        (UNALLOCATED_APPLICATION, "OL_VCPU"): Decimal("8.000000"),
        (UNALLOCATED_APPLICATION, "OL_RAM_GB"): Decimal("4.000000"),
        (UNALLOCATED_APPLICATION, "OL_DISK_GB"): Decimal("40.000000"),
    }
    assert {key: load.details[key] for key in load.details if key.startswith("resolved_by_")} == {
        "resolved_by_field": 1,
        "resolved_by_relation": 1,
        "resolved_by_rule": 1,
        "resolved_by_unallocated": 1,
    }
    assert load.details["unknown_application_refs"] == 0


def test_unknown_application_code_falls_through_and_is_counted() -> None:
    day = MONTH
    load = fold(
        [
            # unknown code → relation
            CiMonth("ci-1", [obs(day, app="GHOST")], ["app-sys-billing"]),
            # unknown code (any shape, any case) → rule
            CiMonth("ci-2", [obs(day, app={"display_value": "Ghost", "value": "ghost"}, name="bkp-9")], []),
            # unknown code → unallocated
            CiMonth("ci-3", [obs(day, app="PHANTOM")], []),
            # a relation to an application record whose code the referential does not know → unallocated
            CiMonth("ci-4", [obs(day)], ["app-sys-unknown"]),
        ],
        app_sys_ids={"app-sys-billing": "BILLING", "app-sys-unknown": "NOT_IN_REFERENTIAL"},
    )
    assert {key[0] for key in quantities(load)} == {"BILLING", "BACKUP", UNALLOCATED_APPLICATION}
    assert quantities(load)[(UNALLOCATED_APPLICATION, "OL_VCPU")] == Decimal("8.000000")
    assert load.details["unknown_application_refs"] == 3
    assert load.details["unknown_application_examples"] == ["GHOST", "PHANTOM"]
    assert load.details["resolved_by_relation"] == 1
    assert load.details["resolved_by_rule"] == 1
    assert load.details["resolved_by_unallocated"] == 2


def test_latest_document_of_the_month_decides_the_application() -> None:
    four = days(MONTH, 4)
    moved = CiMonth("ci-1", [obs(d, app="PAYMENTS" if i < 3 else "BILLING") for i, d in enumerate(four)], [])
    load = fold([moved])
    assert quantities(load)[("BILLING", "OL_VCPU")] == Decimal("4.000000")
    assert ("PAYMENTS", "OL_VCPU") not in quantities(load)


def test_a_duplicate_extra_document_does_not_decide_the_application() -> None:
    first, last = days(MONTH, 2)
    ci = CiMonth(
        "ci-dup",
        [obs(first, app="PAYMENTS"), obs(last, app="PAYMENTS"), obs(last, app="BILLING", second=5)],
        [],
    )
    load = fold([ci])

    assert {application for application, _ in quantities(load)} == {"PAYMENTS"}
    assert load.details["resolved_by_field"] == 1


def test_duplicates_within_a_dump_count_once_and_the_rest_is_rejected_with_quantity() -> None:
    first, second = days(MONTH, 2)
    ci = CiMonth(
        "ci-dup",
        [
            obs(first, app="PAYMENTS", cpus="4", second=0),
            obs(first, app="PAYMENTS", cpus="8", memory="16384", disks_size="300", second=1),  # duplicate
            obs(second, app="PAYMENTS", cpus="4"),
        ],
        [],
    )
    load = fold([ci])

    assert quantities(load) == {
        ("PAYMENTS", "OL_VCPU"): Decimal("4.000000"),
        ("PAYMENTS", "OL_RAM_GB"): Decimal("8.000000"),
        ("PAYMENTS", "OL_DISK_GB"): Decimal("100.000000"),
    }
    assert by_key(load)[("PAYMENTS", "OL_VCPU")].source_record_count == 2
    rejected = {(r.usage_unit, r.usage_quantity) for r in load.rejects}
    # the duplicate's quantities, averaged over the month's 2 dumps: 8/2 vCPU, (16+300)/2 GB
    assert rejected == {
        ("vCPU-month", Decimal("4.000000")),
        ("GB-month", Decimal("8.000000")),
        ("GB-month", Decimal("150.000000")),
    }
    for reject in load.rejects:
        assert reject.reason.startswith("duplicate sys_id within a dump (1 extra documents on 2025-03-01)")
        assert reject.source_ref == "ci-dup (vm)"
        assert reject.domain_id == DOMAIN_ID and reject.period_month == MONTH
        assert reject.raw_payload is not None and reject.raw_payload["f_cpus"] == "8"
    # nothing lost: source = relevés + rejects, unit by unit
    assert load.source_totals == {"vCPU-month": Decimal("8.000000"), "GB-month": Decimal("266.000000")}


def test_documents_without_sys_id_are_rejected() -> None:
    load = fold([CiMonth(None, [obs(MONTH, app="PAYMENTS", name="orphan")], [])])
    assert load.releves == []
    assert {(r.reason, r.usage_unit, r.usage_quantity) for r in load.rejects} == {
        ("document without sys_id (1 documents): cannot be tied to a CI", "vCPU-month", Decimal("4.000000")),
        ("document without sys_id (1 documents): cannot be tied to a CI", "GB-month", Decimal("8.000000")),
        ("document without sys_id (1 documents): cannot be tied to a CI", "GB-month", Decimal("100.000000")),
    }
    assert all(r.source_ref == "no sys_id (orphan)" for r in load.rejects)


def test_unknown_and_missing_class_are_rejected() -> None:
    load = fold(
        [
            CiMonth("ci-printer", [obs(MONTH, cls="cmdb_ci_printer", app="PAYMENTS", name="prn-1")], []),
            CiMonth("ci-noclass", [obs(MONTH, cls=None, app="PAYMENTS", name="what-1")], []),
            CiMonth("ci-ok", [obs(MONTH, app="PAYMENTS")], []),
        ]
    )
    assert set(quantities(load)) == {
        ("PAYMENTS", "OL_VCPU"),
        ("PAYMENTS", "OL_RAM_GB"),
        ("PAYMENTS", "OL_DISK_GB"),
    }
    assert quantities(load)[("PAYMENTS", "OL_VCPU")] == Decimal("4.000000")
    reasons = {r.source_ref: r.reason for r in load.rejects}
    assert reasons == {
        "ci-printer (prn-1)": "unknown CI class 'cmdb_ci_printer' in 1 document(s): not billable "
        "(add it to cmdb_classes.csv if it should be)",
        "ci-noclass (what-1)": "sys_class_name: missing in 1 document(s)",
    }
    assert all(r.usage_quantity is None for r in load.rejects)


def test_malformed_numbers_are_rejected_field_by_field() -> None:
    two = days(MONTH, 2)
    load = fold(
        [
            CiMonth(
                "ci-bad",
                [
                    obs(two[0], app="PAYMENTS", cpus="n/a"),
                    obs(two[1], app="PAYMENTS", cpus="-4", memory="NaN"),
                ],
                [],
            )
        ]
    )
    # disks are fine in both dumps, RAM in one, CPUs in none
    assert quantities(load) == {
        ("PAYMENTS", "OL_DISK_GB"): Decimal("100.000000"),
        ("PAYMENTS", "OL_RAM_GB"): Decimal("4.000000"),
    }
    assert sorted(r.reason for r in load.rejects) == [
        "cpus: negative (-4) in 1 document(s)",
        "cpus: not a number ('n/a') in 1 document(s)",
        "memory: NaN in 1 document(s)",
    ]


def test_no_rate_card_for_the_month_rejects_with_quantity() -> None:
    month = dt.date(2023, 12, 1)  # the shipped rate cards start in 2024-01
    load = fold([CiMonth("ci-1", [obs(month, app="PAYMENTS")], [])], month=month)
    assert load.releves == []
    assert sorted((r.source_ref, r.reason, r.usage_unit, r.usage_quantity) for r in load.rejects) == [
        (
            "PAYMENTS / OL_DISK_GB",
            "no rate card for OL_DISK_GB valid in 2023-12",
            "GB-month",
            Decimal("100.000000"),
        ),
        (
            "PAYMENTS / OL_RAM_GB",
            "no rate card for OL_RAM_GB valid in 2023-12",
            "GB-month",
            Decimal("8.000000"),
        ),
        (
            "PAYMENTS / OL_VCPU",
            "no rate card for OL_VCPU valid in 2023-12",
            "vCPU-month",
            Decimal("4.000000"),
        ),
    ]
    assert load.source_totals == {"GB-month": Decimal("108.000000"), "vCPU-month": Decimal("4.000000")}


def test_no_rate_card_for_one_product_only() -> None:
    snapshot = shipped_snapshot()
    rates = {product: items for product, items in snapshot.rates.items() if product != "OL_DISK_GB"}
    snapshot = ReferenceSnapshot(
        snapshot.products, snapshot.family_domains, rates, snapshot.rules, snapshot.applications
    )
    load = fold([CiMonth("ci-1", [obs(MONTH, app="PAYMENTS")], [])], snapshot=snapshot)
    assert set(quantities(load)) == {("PAYMENTS", "OL_VCPU"), ("PAYMENTS", "OL_RAM_GB")}
    assert [(r.reason, r.usage_quantity) for r in load.rejects] == [
        ("no rate card for OL_DISK_GB valid in 2025-03", Decimal("100.000000"))
    ]


@pytest.mark.parametrize(
    ("month", "version", "vcpu", "ram", "disk"),
    [
        (DEC_2025, "RC-2024.1", Decimal("18.50"), Decimal("4.20"), Decimal("0.085")),
        (JAN_2026, "RC-2026.1", Decimal("17.90"), Decimal("3.95"), Decimal("0.080")),
    ],
)
def test_pricing_uses_the_rate_valid_for_the_month(
    month: dt.date, version: str, vcpu: Decimal, ram: Decimal, disk: Decimal
) -> None:
    load = fold([CiMonth("ci-1", [obs(day, app="PAYMENTS") for day in days(month, 3)], [])], month=month)
    releves = by_key(load)
    expected = {
        "OL_VCPU": (Decimal(4), vcpu),
        "OL_RAM_GB": (Decimal(8), ram),
        "OL_DISK_GB": (Decimal(100), disk),
    }
    for product_id, (quantity, unit_cost) in expected.items():
        releve = releves[("PAYMENTS", product_id)]
        assert releve.unit_cost == unit_cost
        assert releve.rate_card_version == version
        assert releve.currency == "EUR"
        assert releve.total_cost == quantity * unit_cost
        assert releve.period_month == month
        assert releve.domain_id == DOMAIN_ID
    assert load.total_cost == {DEC_2025: Decimal("116.100000"), JAN_2026: Decimal("111.200000")}[month]


# --------------------------------------------------------------------------------------------
# The shipped ServiceNow sample, through the real client over the in-memory CMDB
# --------------------------------------------------------------------------------------------

SAMPLE_MONTH = dt.date(2025, 5, 1)
SERVER_SYS_ID = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
VM_SYS_ID = "5c6d7e8f90a1b2c3d4e5f60718293a4b"
PAYMENTS_SYS_ID = "77aa88bb99cc00dd11ee22ff33aa44bb"


def load_sample() -> dict[str, Any]:
    """The sample with its mongoexport line decoded as mongoimport would ($oid, $date)."""
    sample: dict[str, Any] = json.loads(SAMPLE.read_text(encoding="utf-8"))
    line = json.dumps(sample["typical_mongoexport_line_of_the_same_server_record"])
    sample["typical_mongoexport_line_of_the_same_server_record"] = json_util.loads(line)
    return sample


def dump_documents(response: dict[str, Any], *, table: str, at: dt.datetime) -> list[dict[str, Any]]:
    """Table API records as the dumping team stores them: as returned, plus the dump time; a record
    read from a class table is of that class when the response does not repeat it."""
    documents = []
    for record in response["result"]:
        document = copy.deepcopy(record)
        document.setdefault("sys_class_name", table)
        document["_ingested_at"] = at
        documents.append(document)
    return documents


def sample_snapshot(mart: psycopg.Connection) -> ReferenceSnapshot:
    load_applications_into_mart(
        mart, [ApplicationRecord("PAYMENTS", "Payments Platform", "GRP-PAY", "Payments")], source="cmdb"
    )
    return read_snapshot(mart, DOMAIN_ID)


def test_sample_mongoexport_line_decodes_to_bson_types() -> None:
    line = load_sample()["typical_mongoexport_line_of_the_same_server_record"]
    assert line["_id"] == ObjectId("665f1c2ab3e4d5f6a7b8c9d0")
    assert line["_ingested_at"] == dt.datetime(2025, 5, 15, 2, 0, 4, 512000)  # naive UTC, as pymongo reads it
    assert line["sys_class_name"] == "cmdb_ci_linux_server"


def test_sample_records_are_read_into_exact_releves(mart: psycopg.Connection, cmdb: MongoResource) -> None:
    sample = load_sample()
    night_1 = dt.datetime(2025, 5, 14, 2, 0, 1)
    night_2 = dt.datetime(2025, 5, 15, 2, 0, 1)
    vms = sample["table_api_response_cmdb_ci_vmware_instance_display_value_all"]
    servers = sample["table_api_response_cmdb_ci_server_display_value_false"]
    relations = sample["table_api_response_cmdb_rel_ci_exclude_reference_link_true"]["result"]
    db = cmdb.db()
    db["cmdb_ci"].insert_many(
        [
            # night 1: the Table API answers; night 2: the mongoexport line of the same server
            *dump_documents(servers, table="cmdb_ci_server", at=night_1),
            *dump_documents(vms, table="cmdb_ci_vmware_instance", at=night_1),
            *dump_documents(vms, table="cmdb_ci_vmware_instance", at=night_2),
            sample["typical_mongoexport_line_of_the_same_server_record"],
            application("PAYMENTS", day=night_1.date(), sys_id=PAYMENTS_SYS_ID),
            application("PAYMENTS", day=night_2.date(), sys_id=PAYMENTS_SYS_ID),
        ]
    )
    db["cmdb_rel_ci"].insert_many(
        [{**relation, "_ingested_at": at} for relation in relations for at in (night_1, night_2)]
    )

    client = CmdbClient(db, CmdbLayout())
    assert client.application_sys_ids(SAMPLE_MONTH) == {PAYMENTS_SYS_ID: "PAYMENTS"}
    seen = {
        ci.sys_id: (len(ci.observations), ci.relation_parents)
        for ci in client.ci_months(SAMPLE_MONTH, ["cpu_count", "cpus"])
    }
    assert seen == {SERVER_SYS_ID: (2, [PAYMENTS_SYS_ID, PAYMENTS_SYS_ID]), VM_SYS_ID: (2, [])}

    load = read_month(client, sample_snapshot(mart), SAMPLE_MONTH, "run-sample", mart)

    assert load.rejects == []
    assert load.details["dumps"] == 2
    assert load.details["documents"] == 4
    assert load.details["cis"] == 2
    assert load.details["resolved_by_field"] == 2
    # server (4 vCPU, 16384 MB, 200 GB) + VMware instance (4, "16,384" shown / 16384 stored, 200 GB),
    # both in both dumps, both for PAYMENTS; priced with the May 2025 rate card
    assert [
        (
            r.application_id,
            r.product_id,
            r.usage_quantity,
            r.unit_cost,
            r.total_cost,
            r.rate_card_version,
            r.source_record_count,
        )
        for r in load.releves
    ] == [
        (
            "PAYMENTS",
            "OL_DISK_GB",
            Decimal("400.000000"),
            Decimal("0.085000"),
            Decimal("34.000000"),
            "RC-2024.1",
            4,
        ),
        (
            "PAYMENTS",
            "OL_RAM_GB",
            Decimal("32.000000"),
            Decimal("4.200000"),
            Decimal("134.400000"),
            "RC-2024.1",
            4,
        ),
        (
            "PAYMENTS",
            "OL_VCPU",
            Decimal("8.000000"),
            Decimal("18.500000"),
            Decimal("148.000000"),
            "RC-2024.1",
            4,
        ),
    ]
    assert load.source_totals == {"GB-month": Decimal("432.000000"), "vCPU-month": Decimal("8.000000")}


@pytest.mark.parametrize("record", ["server", "vmware", "mongoexport"])
def test_each_sample_record_alone_is_the_linux_server(
    mart: psycopg.Connection, cmdb: MongoResource, record: str
) -> None:
    """Each sample record on its own, tied to PAYMENTS by the sample relation only (no u_application):
    4 vCPU, 16 GB RAM, 200 GB disk."""
    sample = load_sample()
    night = dt.datetime(2025, 5, 15, 2, 0, 4, 512000)
    documents = {
        "server": lambda: dump_documents(
            sample["table_api_response_cmdb_ci_server_display_value_false"], table="cmdb_ci_server", at=night
        ),
        "vmware": lambda: dump_documents(
            sample["table_api_response_cmdb_ci_vmware_instance_display_value_all"],
            table="cmdb_ci_vmware_instance",
            at=night,
        ),
        "mongoexport": lambda: [sample["typical_mongoexport_line_of_the_same_server_record"]],
    }[record]()
    relation = sample["table_api_response_cmdb_rel_ci_exclude_reference_link_true"]["result"][0]
    for document in documents:
        document.pop("u_application")
    # the sample relation names the linux server; give the VM the same relation shape
    child = VM_SYS_ID if record == "vmware" else relation["child"]
    db = cmdb.db()
    db["cmdb_ci"].insert_many([*documents, application("PAYMENTS", day=night.date(), sys_id=PAYMENTS_SYS_ID)])
    db["cmdb_rel_ci"].insert_one({**relation, "child": child, "_ingested_at": night})

    load = read_month(CmdbClient(db, CmdbLayout()), sample_snapshot(mart), SAMPLE_MONTH, "run-sample", mart)

    assert load.rejects == []
    assert load.details["resolved_by_relation"] == 1
    assert {(r.application_id, r.product_id): r.usage_quantity for r in load.releves} == {
        ("PAYMENTS", "OL_VCPU"): Decimal("4.000000"),
        ("PAYMENTS", "OL_RAM_GB"): Decimal("16.000000"),
        ("PAYMENTS", "OL_DISK_GB"): Decimal("200.000000"),
    }


def test_sample_vmware_record_without_its_class_is_rejected(
    mart: psycopg.Connection, cmdb: MongoResource
) -> None:
    """The display_value=all answer does not repeat sys_class_name: stored as is, it is a reject."""
    sample = load_sample()
    response = sample["table_api_response_cmdb_ci_vmware_instance_display_value_all"]
    record = copy.deepcopy(response["result"][0])
    record["_ingested_at"] = dt.datetime(2025, 5, 15, 2, 0, 0)
    cmdb.db()["cmdb_ci"].insert_one(record)

    client = CmdbClient(cmdb.db(), CmdbLayout())
    load = read_month(client, sample_snapshot(mart), SAMPLE_MONTH, "run-sample", mart)

    assert load.releves == []
    assert [(r.source_ref, r.reason) for r in load.rejects] == [
        (f"{VM_SYS_ID} (lnx-pay-app-01)", "sys_class_name: missing in 1 document(s)")
    ]


# --------------------------------------------------------------------------------------------
# The client's grouping, over the in-memory CMDB
# --------------------------------------------------------------------------------------------


def test_client_orders_duplicates_of_one_dump_by_id_and_groups_sys_id_shapes(
    mart: psycopg.Connection, cmdb: MongoResource
) -> None:
    at = dt.datetime(2025, 5, 3, 2, 0, 0)
    later = dt.datetime(2025, 5, 4, 2, 0, 0)
    first_id, second_id = ObjectId("000000000000000000000001"), ObjectId("000000000000000000000002")
    base = {
        "sys_class_name": "cmdb_ci_vmware_instance",
        "name": "vm-x",
        "memory": "1024",
        "disks_size": "10",
        "u_application": "PAYMENTS",
    }
    cmdb.db()["cmdb_ci"].insert_many(
        [
            # inserted out of order: the document with the smaller _id is the one that counts
            {**base, "_id": second_id, "sys_id": "ci-x", "cpus": "8", "_ingested_at": at},
            {**base, "_id": first_id, "sys_id": "ci-x", "cpus": "2", "_ingested_at": at},
            # the next dump carries the same CI as a reference object
            {
                **base,
                "sys_id": {"value": "ci-x", "link": "https://x/api"},
                "cpus": "2",
                "_ingested_at": later,
            },
        ]
    )

    load = read_month(CmdbClient(cmdb.db(), CmdbLayout()), sample_snapshot(mart), SAMPLE_MONTH, "run-x", mart)

    assert load.details["cis"] == 1
    assert by_key(load)[("PAYMENTS", "OL_VCPU")].usage_quantity == Decimal("2.000000")
    assert [(r.usage_unit, r.usage_quantity) for r in load.rejects if r.usage_unit == "vCPU-month"] == [
        ("vCPU-month", Decimal("4.000000"))
    ]  # the duplicate's 8 vCPU over 2 dumps
    assert all(r.raw_payload is not None and r.raw_payload["f_cpus"] == "8" for r in load.rejects)


def test_client_keeps_documents_without_sys_id_apart(mart: psycopg.Connection, cmdb: MongoResource) -> None:
    at = dt.datetime(2025, 5, 3, 2, 0, 0)
    base = {
        "sys_class_name": "cmdb_ci_vmware_instance",
        "cpus": "2",
        "memory": "1024",
        "disks_size": "10",
        "u_application": "PAYMENTS",
        "_ingested_at": at,
    }
    cmdb.db()["cmdb_ci"].insert_many(
        [
            {**base, "sys_id": "ci-ok", "name": "vm-ok"},
            {**base, "name": "vm-anonymous-1"},
            {**base, "name": "vm-anonymous-2", "sys_id": None},
        ]
    )

    cis = list(CmdbClient(cmdb.db(), CmdbLayout()).ci_months(SAMPLE_MONTH, ["cpus"]))

    assert sorted((ci.sys_id or "-", len(ci.observations)) for ci in cis) == [
        ("-", 1),
        ("-", 1),
        ("ci-ok", 1),
    ]
    load = read_month(CmdbClient(cmdb.db(), CmdbLayout()), sample_snapshot(mart), SAMPLE_MONTH, "run-x", mart)
    assert sorted(
        r.source_ref for r in load.rejects if "without sys_id" in r.reason and r.usage_unit == "vCPU-month"
    ) == ["no sys_id (vm-anonymous-1)", "no sys_id (vm-anonymous-2)"]
