"""Every kind of unreadable bill row gets its stable reason code, whatever its details say.

The bills are the bad-input cases of the public_cloud tests (FOCUS, Azure cost details, AWS CUR;
CSV and gzipped CSV), read by the real export reader; the API sources' problems and the fold's
currency refusals are checked through their own readers.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from finops_dagster.domains.public_cloud.aws_cost_explorer import parse_cost_and_usage
from finops_dagster.domains.public_cloud.azure_cost_management import parse_query_result
from finops_dagster.domains.public_cloud.export_reader import row_problem_code
from finops_dagster.reject_reasons import RejectReason as R
from finops_dagster_tests.support.malformed_bills import CASES, read, write

CODES: dict[str, R] = {
    "digit separator": R.INVALID_AMOUNT,
    "thousands comma": R.INVALID_AMOUNT,
    "NaN text": R.INVALID_AMOUNT,
    "Infinity text": R.INVALID_AMOUNT,
    "-inf text": R.INVALID_AMOUNT,
    "empty cost": R.MISSING_COST,
    "hex cost": R.INVALID_AMOUNT,
    "epoch": R.INVALID_PERIOD,
    "infinity": R.INVALID_PERIOD,
    "-infinity": R.INVALID_PERIOD,
    "two-digit US year": R.INVALID_PERIOD,
    "1970": R.INVALID_PERIOD,
    "year 9999": R.INVALID_PERIOD,
    "year 4": R.INVALID_PERIOD,
    "after next month": R.INVALID_PERIOD,
    "far from its billing period": R.INVALID_PERIOD,
    "charge period empty": R.INVALID_PERIOD,
    "NUL byte": R.MALFORMED_ROW,
    "not UTF-8": R.MALFORMED_ROW,
    "fewer columns": R.MALFORMED_ROW,
    "more columns": R.MALFORMED_ROW,
    "cut inside the last row": R.MALFORMED_ROW,
    "cut inside the last value": R.MALFORMED_ROW,
    "a last line without its break, whole": R.MALFORMED_ROW,
    "beyond a line's limit": R.AMOUNT_OUT_OF_RANGE,
    "beyond the reject column": R.AMOUNT_OUT_OF_RANGE,
    "beyond the engine": R.INVALID_AMOUNT,
    "currency not ISO": R.INVALID_CURRENCY,
    "currency empty": R.INVALID_CURRENCY,
    "unclosed quote": R.MALFORMED_ROW,
    "Azure two-digit year": R.INVALID_PERIOD,
    "Azure epoch": R.INVALID_PERIOD,
    "Azure digit separator": R.INVALID_AMOUNT,
    "CUR infinity": R.INVALID_PERIOD,
    "CUR ragged": R.MALFORMED_ROW,
}
REJECTED = [name for name, (_, expected) in CASES.items() if expected.rejects]


def test_every_rejecting_case_has_a_code() -> None:
    assert sorted(REJECTED) == sorted(CODES)


@pytest.mark.parametrize("kind", ["csv", "gz"])
@pytest.mark.parametrize("case", REJECTED, ids=REJECTED)
def test_an_unreadable_row_gets_the_code_of_its_cause(tmp_path: Path, case: str, kind: str) -> None:
    bill, _ = CASES[case]
    result = read(write(tmp_path / "bill", bill, kind), bill.layout)
    assert [(problem.code, problem.reason) for problem in result.problems] == [
        (CODES[case], problem.reason) for problem in result.problems
    ]
    assert len(result.problems) == 1


def test_a_wording_no_pattern_knows_is_a_malformed_row() -> None:
    assert row_problem_code("something DuckDB says one day") == R.MALFORMED_ROW


def test_the_cost_explorer_and_cost_management_problems_have_codes() -> None:
    ce = {
        "ResultsByTime": [
            {
                "TimePeriod": {"Start": "2026-10-01", "End": "2026-11-01"},
                "Groups": [
                    {"Keys": ["EC2"], "Metrics": {"UnblendedCost": {"Amount": "oops", "Unit": "USD"}}},
                    {"Keys": ["S3"], "Metrics": {"UnblendedCost": {"Unit": "USD"}}},
                    {"Keys": ["RDS"], "Metrics": {"UnblendedCost": {"Amount": "1.5"}}},
                    {"Keys": [3], "Metrics": {}},
                    {"Keys": ["EBS"], "Metrics": {}},
                ],
            }
        ],
        "GroupDefinitions": [{"Type": "DIMENSION", "Key": "SERVICE"}],
    }
    _, problems = parse_cost_and_usage(ce, metric="UnblendedCost", month=dt.date(2026, 10, 1))
    assert [problem.code for problem in problems] == [
        R.INVALID_AMOUNT,
        R.MISSING_COST,
        R.INVALID_CURRENCY,
        R.MALFORMED_RECORD,
        R.MISSING_COST,
    ]
    azure = {
        "properties": {
            "columns": [
                {"name": "Cost"},
                {"name": "UsageDate"},
                {"name": "Currency"},
                {"name": "ServiceName"},
            ],
            "rows": [
                ["x", 20261003, "EUR", "VM"],
                [None, 20261003, "EUR", "VM"],
                [Decimal("2"), 20261003, None, "VM"],
                [Decimal("2"), 20260903, "EUR", "VM"],
                [1],
            ],
        }
    }
    _, problems = parse_query_result(azure, month=dt.date(2026, 10, 1), tag_key="application")
    assert [problem.code for problem in problems] == [
        R.INVALID_AMOUNT,
        R.MISSING_COST,
        R.INVALID_CURRENCY,
        R.INVALID_PERIOD,
        R.MALFORMED_RECORD,
    ]
