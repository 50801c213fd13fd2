"""Every kind of open_legacy reject gets its stable reason code; the details keep the variable part.

The CIs go through the real fold with the shipped reference data (the mapping tests' helpers).
"""

from __future__ import annotations

import datetime as dt

import pytest

from finops_dagster.domains.open_legacy.cmdb import CiMonth
from finops_dagster.reject_reasons import RejectReason as R
from finops_dagster_tests.support.open_legacy_fold import MONTH, days, fold, obs

pytestmark = pytest.mark.usefixtures("fold_session")


def codes(cis: list[CiMonth], month: dt.date = MONTH) -> set[tuple[str, R, str]]:
    return {
        (reject.source_ref, reject.reason_code, reject.reason) for reject in fold(cis, month=month).rejects
    }


def test_each_document_problem_has_its_code() -> None:
    first, second = days(MONTH, 2)
    found = codes(
        [
            CiMonth("ci-printer", [obs(MONTH, cls="cmdb_ci_printer", app="PAYMENTS", name="prn-1")], []),
            CiMonth("ci-noclass", [obs(MONTH, cls=None, app="PAYMENTS", name="what-1")], []),
            CiMonth(
                None, [obs(MONTH, app="PAYMENTS", name="orphan", cpus="2", memory="x", disks_size="1")], []
            ),
            CiMonth(
                "ci-dup",
                [obs(first, app="PAYMENTS", second=0), obs(first, app="PAYMENTS", second=1), obs(second)],
                [],
            ),
            CiMonth("ci-bad", [obs(first, app="PAYMENTS", cpus="n/a", memory="-8", disks_size="1e12")], []),
            CiMonth(
                "ci-undated",
                [obs(first, app="PAYMENTS")],
                [],
                undated=[({"name": "vm", "cls": "cmdb_ci_vmware_instance"}, "_ingested_at missing or null")],
            ),
        ]
    )
    by_ref: dict[str, set[R]] = {}
    for ref, code, _ in found:
        by_ref.setdefault(ref, set()).add(code)
    assert by_ref == {
        "ci-printer (prn-1)": {R.UNKNOWN_CI_CLASS},
        "ci-noclass (what-1)": {R.UNKNOWN_CI_CLASS},
        "no sys_id (orphan)": {R.MISSING_CI_ID, R.INVALID_QUANTITY},
        "ci-dup (vm)": {R.DUPLICATE_DOCUMENT},
        "ci-bad (vm)": {R.INVALID_QUANTITY, R.NEGATIVE_QUANTITY},
        "ci-undated (vm)": {R.UNDATED_DOCUMENT},
    }
    details = {(ref, code): reason for ref, code, reason in found}
    assert details[("ci-printer (prn-1)", R.UNKNOWN_CI_CLASS)].startswith(
        "unknown CI class 'cmdb_ci_printer'"
    )
    assert details[("ci-bad (vm)", R.NEGATIVE_QUANTITY)] == "memory: negative (-8) in 1 document(s)"
    assert {reason for ref, code, reason in found if ref == "ci-bad (vm)" and code == R.INVALID_QUANTITY} == {
        "cpus: not a number ('n/a') in 1 document(s)",
        "disks_size: implausibly large (1e12 > 1000000) in 1 document(s)",
    }


def test_a_month_without_rate_card_rejects_with_no_rate() -> None:
    month = dt.date(2023, 12, 1)  # the shipped rate cards start in 2024-01
    found = codes([CiMonth("ci-1", [obs(month, app="PAYMENTS")], [])], month=month)
    assert {code for _, code, _ in found} == {R.NO_RATE}
    assert {reason for _, _, reason in found} == {
        f"no rate card for {product} valid in 2023-12" for product in ("OL_DISK_GB", "OL_RAM_GB", "OL_VCPU")
    }
