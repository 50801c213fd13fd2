"""Azure Cost Management Query API answers: the real sample and malformed rows, read by the pure parser."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from finops_dagster.domains.public_cloud.azure_cost_management_payloads import parse_query_result
from finops_dagster_tests.domains.public_cloud.test_azure_cost_management import OCTOBER, SCOPE, page
from finops_dagster_tests.support.samples import SAMPLES

SAMPLE = SAMPLES / "azure" / "ManagementGroupQueryGrouping.json"


# --- the sample -------------------------------------------------------------------------------------


def test_sample_query_answer_is_read_exactly() -> None:
    document = json.loads(SAMPLE.read_text(encoding="utf-8"), parse_float=Decimal)
    body = document["responses"]["200"]["body"]
    rows = body["properties"]["rows"]
    expected = sum((Decimal(str(row[0])) for row in rows), Decimal(0))
    # independently of the parser: the cost texts as written in the file
    texts = [line.strip().rstrip(",") for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    written = [Decimal(text) for text in texts if text.count(".") == 1 and text.replace(".", "").isdigit()]
    assert sum(written, Decimal(0)) == expected == Decimal("213.324572647805194")

    groups, problems = parse_query_result(body, month=dt.date(2018, 3, 1), tag_key="app-id", scope=None)

    assert problems == []
    assert sum((group.cost for group in groups), Decimal(0)) == expected
    assert [group.resource_group for group in groups] == [
        "VSTSHOL-1595322048000",
        "RVIIOT-TRIAL",
        "JapanUnifia-Trial",
    ]
    assert all(group.billing_currency == "USD" and group.tags == {} for group in groups)
    assert groups[0].cost == Decimal("20.359416562625452")
    assert {group.source for group in groups} == {"azure_cost_management"}
    assert {group.provider for group in groups} == {"Microsoft"}
    assert (
        json.loads(SAMPLE.read_text())["parameters"]["parameters"]["dataset"]["aggregation"]["totalCost"][
            "name"
        ]
        == "PreTaxCost"
    )


def test_sample_usage_date_outside_the_month_is_a_problem_that_keeps_its_money() -> None:
    body = json.loads(SAMPLE.read_text(encoding="utf-8"), parse_float=Decimal)["responses"]["200"]["body"]

    groups, problems = parse_query_result(body, month=dt.date(2018, 4, 1), tag_key="app-id")

    assert groups == []
    assert [problem.reason for problem in problems] == ["usage date 2018-03-31 is outside 2018-04"] * 3
    assert sum((problem.cost or Decimal(0) for problem in problems), Decimal(0)) == Decimal(
        "213.324572647805194"
    )
    assert problems[0].raw["PreTaxCost"] == "20.359416562625452"  # exact text in the reject payload


def test_rows_without_cost_or_currency_are_problems_with_reasons() -> None:
    body = json.loads(
        page(
            [
                ["1.25", "app-id", "PAY", "Storage", "EUR"],
                ['"abc"', "app-id", "PAY", "Storage", "EUR"],
                ["null", "app-id", "", "Storage", "EUR"],
                ["2.50", "app-id", "PAY", "Storage", ""],
                ["-0.75", "", "", "Virtual Machines", "EUR"],
            ]
        ),
        parse_float=Decimal,
    )

    groups, problems = parse_query_result(body, month=OCTOBER, tag_key="app-id", scope=SCOPE)

    assert [(group.cost, dict(group.tags)) for group in groups] == [
        (Decimal("1.25"), {"app-id": "PAY"}),
        (Decimal("-0.75"), {}),
    ]
    assert [problem.reason for problem in problems] == [
        "cost is not a number ('abc')",
        "cost missing",
        "currency missing",
    ]
    assert problems[2].cost == Decimal("2.50")
    assert groups[0].sub_account_id == "00000000-0000-0000-0000-000000000001"


def test_an_answer_without_a_cost_column_is_refused() -> None:
    body = {"properties": {"columns": [{"name": "ServiceName"}], "rows": [["Storage"]]}}
    with pytest.raises(ValueError, match="no cost column"):
        parse_query_result(body, month=OCTOBER, tag_key="app-id")
