"""The open_legacy fold driven by hand: CI documents as the client's aggregation yields them,
the shipped reference data as a run reads it, and a fold that prices in the test's mart.

The fold prices in PostgreSQL, so it needs a session: the `fold_session` fixture of
`domains/open_legacy/conftest.py` lends it the test's mart.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import Any

import psycopg

from finops_dagster.domains.open_legacy import DOMAIN_ID
from finops_dagster.domains.open_legacy.cmdb import CiMonth
from finops_dagster.domains.open_legacy.mapping import OpenLegacyFold, load_class_catalog
from finops_dagster.reference.catalog import load_catalog
from finops_dagster.reference.snapshot import CompiledRule, ReferenceSnapshot
from finops_dagster.releve import UNALLOCATED_APPLICATION, DomainLoad

DEC_2025 = dt.date(2025, 12, 1)
JAN_2026 = dt.date(2026, 1, 1)
MONTH = dt.date(2025, 3, 1)
KNOWN_APPS = ("PAYMENTS", "BILLING", "BACKUP")
VM_CLASS = "cmdb_ci_vmware_instance"


def shipped_snapshot(applications: Iterable[str] = KNOWN_APPS) -> ReferenceSnapshot:
    """The snapshot a run would read after loading the shipped reference files."""
    catalog = load_catalog()
    rates: dict[str, list[Any]] = {}
    for rate in sorted(catalog.rates, key=lambda rate: (rate.product_id, rate.valid_from)):
        rates.setdefault(rate.product_id, []).append(rate)
    rules = sorted(
        (rule for rule in catalog.rules if rule.domain_id == DOMAIN_ID),
        key=lambda rule: (rule.priority, rule.rule_id),
    )
    return ReferenceSnapshot(
        products={product.product_id: product for product in catalog.products},
        family_domains={family.family_id: family.domain_id for family in catalog.families},
        rates={product: tuple(items) for product, items in rates.items()},
        rules=tuple(CompiledRule(r.rule_id, r.field, re.compile(r.pattern), r.application_id) for r in rules),
        applications=frozenset({*applications, UNALLOCATED_APPLICATION}),
    )


def obs(
    day: dt.date,
    *,
    cls: Any = VM_CLASS,
    app: Any = None,
    name: str = "vm",
    cpus: Any = "4",
    memory: Any = "8192",
    disks_size: Any = "100",
    second: int = 0,
) -> dict[str, Any]:
    """One document of a CI as the client's aggregation yields it."""
    return {
        "at": dt.datetime.combine(day, dt.time(2, 0, second)),
        "cls": cls,
        "name": name,
        "app": app,
        "f_cpus": cpus,
        "f_memory": memory,
        "f_disks_size": disks_size,
    }


def days(month: dt.date, count: int) -> list[dt.date]:
    return [month + dt.timedelta(days=offset) for offset in range(count)]


SESSIONS: list[psycopg.Connection] = []
"""The sessions lent by `fold_session`, the current test's last."""


def _pricing_session() -> psycopg.Connection:
    if not SESSIONS:
        raise RuntimeError("the fold prices in PostgreSQL: use the fold_session fixture")
    return SESSIONS[-1]


def fold(
    cis: list[CiMonth],
    *,
    month: dt.date = MONTH,
    app_sys_ids: dict[str, str] | None = None,
    snapshot: ReferenceSnapshot | None = None,
) -> DomainLoad:
    folder = OpenLegacyFold(
        _pricing_session(),
        month=month,
        run_id="run-1",
        classes=load_class_catalog(),
        snapshot=snapshot or shipped_snapshot(),
        application_sys_ids=app_sys_ids or {},
        application_field="u_application",
        computed_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )
    folder.add_all(cis)
    return folder.finish()
