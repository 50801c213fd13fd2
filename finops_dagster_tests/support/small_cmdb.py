"""A small hand-built CMDB: 5 applications, 12 CIs over 3 nights per month, some malformed, and what
its March 2025 prices to.

The pipeline and job tests load the same month and hold the mart to the same figures.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from finops_dagster.resources.mongo import MongoResource
from finops_dagster_tests.support.cmdb_documents import application, night, nights, vm

MARCH = dt.date(2025, 3, 1)
CRM_SYS_ID = "app-crm"


def server(sys_id: str, *, day: dt.date, cpu_count: str, ram: str, disk_space: str) -> dict[str, Any]:
    return {"sys_id": sys_id, "sys_class_name": "cmdb_ci_linux_server", "name": f"srv-{sys_id}",
            "cpu_count": cpu_count, "ram": ram, "disk_space": disk_space, "_ingested_at": night(day, 2)}


def month_documents(month: dt.date) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(cmdb_ci documents, cmdb_rel_ci documents) of a month's three nightly dumps."""
    cis: list[dict[str, Any]] = []
    relations: list[dict[str, Any]] = []
    three = nights(month, 3)
    for day in three:
        cis += [application(code, day=day, group="GRP-A" if code != "CRM" else "GRP-B")
                for code in ("PAYMENTS", "BILLING", "BACKUP")]
        cis.append(application("CRM", day=day, group="GRP-B", sys_id=CRM_SYS_ID))
        cis += [
            vm("vm-01", day=day, cpus="4", memory="8192", disks_size="100", app="PAYMENTS"),
            vm("vm-02", day=day, cpus="2", memory="4096", disks_size="50",
               app={"display_value": "Payments", "value": "PAYMENTS"}),
            vm("vm-03", day=day, cpus="8", memory="16384", disks_size="200", app=" billing "),
            server("srv-04", day=day, cpu_count="16", ram="65536", disk_space="500"),  # CRM by relation
            vm("vm-05", day=day, cpus="2", memory="2048", disks_size="1000", name="bkp-005"),  # rule → BACKUP
            vm("vm-06", day=day, cpus="1", memory="1024", disks_size="10"),  # nothing → UNALLOCATED
            vm("vm-08", day=day, cpus="n/a", memory="8192", disks_size="100", app="PAYMENTS"),  # bad cpus
            vm("vm-09", day=day, cpus="4", memory="8192", disks_size="100", app="PAYMENTS"),
            {"sys_id": "prn-10", "sys_class_name": "cmdb_ci_printer", "name": "prn-10",
             "_ingested_at": night(day, 3)},  # not billable
            {"sys_id": "vol-11", "sys_class_name": "cmdb_ci_storage_volume", "name": "vol-11",
             "size_bytes": {"$numberLong": "500000000000"}, "u_application": "CRM",
             "_ingested_at": night(day, 4)},  # 500 GB of legacy storage
        ]
        relations.append({"parent": {"value": CRM_SYS_ID, "link": "https://x/api"}, "child": "srv-04",
                          "type": "Depends on::Used by", "_ingested_at": night(day)})
    # vm-07 is in one dump of three and names an application the referential does not know
    cis.append(vm("vm-07", day=three[0], cpus="3", memory="3072", disks_size="30", app="GHOST"))
    # vm-09 is dumped twice in the first night: the second document is a duplicate
    cis.append(vm("vm-09", day=three[0], cpus="4", memory="8192", disks_size="100", app="PAYMENTS", second=9))
    return cis, relations


def fill(cmdb: MongoResource, *months: dt.date) -> None:
    db = cmdb.db()
    for month in months:
        cis, relations = month_documents(month)
        db["cmdb_ci"].insert_many(cis)
        db["cmdb_rel_ci"].insert_many(relations)


# (application, product) → (quantity, unit cost, total cost), March 2025 (rate card RC-2024.1)
EXPECTED_MARCH: dict[tuple[str, str], tuple[Decimal, Decimal, Decimal]] = {
    ("BACKUP", "OL_DISK_GB"): (Decimal("1000.000000"), Decimal("0.085000"), Decimal("85.000000")),
    ("BACKUP", "OL_RAM_GB"): (Decimal("2.000000"), Decimal("4.200000"), Decimal("8.400000")),
    ("BACKUP", "OL_VCPU"): (Decimal("2.000000"), Decimal("18.500000"), Decimal("37.000000")),
    ("BILLING", "OL_DISK_GB"): (Decimal("200.000000"), Decimal("0.085000"), Decimal("17.000000")),
    ("BILLING", "OL_RAM_GB"): (Decimal("16.000000"), Decimal("4.200000"), Decimal("67.200000")),
    ("BILLING", "OL_VCPU"): (Decimal("8.000000"), Decimal("18.500000"), Decimal("148.000000")),
    ("CRM", "OL_DISK_GB"): (Decimal("500.000000"), Decimal("0.085000"), Decimal("42.500000")),
    ("CRM", "OL_LEGACY_STORAGE_GB"): (Decimal("500.000000"), Decimal("0.042000"), Decimal("21.000000")),
    ("CRM", "OL_RAM_GB"): (Decimal("64.000000"), Decimal("4.200000"), Decimal("268.800000")),
    ("CRM", "OL_VCPU"): (Decimal("16.000000"), Decimal("18.500000"), Decimal("296.000000")),
    # vm-01 + vm-02 + vm-09 (vm-08's CPUs are rejected, its RAM and disk count)
    ("PAYMENTS", "OL_DISK_GB"): (Decimal("350.000000"), Decimal("0.085000"), Decimal("29.750000")),
    ("PAYMENTS", "OL_RAM_GB"): (Decimal("28.000000"), Decimal("4.200000"), Decimal("117.600000")),
    ("PAYMENTS", "OL_VCPU"): (Decimal("10.000000"), Decimal("18.500000"), Decimal("185.000000")),
    # vm-06 (3 of 3 dumps) + vm-07 (1 of 3 dumps, unknown application GHOST)
    ("UNALLOCATED", "OL_DISK_GB"): (Decimal("20.000000"), Decimal("0.085000"), Decimal("1.700000")),
    ("UNALLOCATED", "OL_RAM_GB"): (Decimal("2.000000"), Decimal("4.200000"), Decimal("8.400000")),
    ("UNALLOCATED", "OL_VCPU"): (Decimal("2.000000"), Decimal("18.500000"), Decimal("37.000000")),
}
MARCH_TOTAL = Decimal("1370.350000")
