"""AWS Cost Explorer answers: the real sample and malformed groups, read by the pure parser."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from finops_dagster.domains.public_cloud.aws_cost_explorer_payloads import parse_cost_and_usage
from finops_dagster.domains.public_cloud.charges import ChargeGroup
from finops_dagster_tests.domains.public_cloud.test_aws_cost_explorer import OCTOBER, results
from finops_dagster_tests.support.samples import SAMPLES

SAMPLE = SAMPLES / "aws" / "ce_get_cost_and_usage_groupby_service_tag.json"


# --- the sample -------------------------------------------------------------------------------------


def test_sample_is_read_exactly_with_keys_found_through_the_group_definitions() -> None:
    page = json.loads(SAMPLE.read_text(encoding="utf-8"))
    # the sample groups SERVICE first, then the tag: positions come from GroupDefinitions
    assert [definition["Type"] for definition in page["GroupDefinitions"]] == ["DIMENSION", "TAG"]
    for metric in ("UnblendedCost", "BlendedCost"):
        expected = sum(
            (
                Decimal(group["Metrics"][metric]["Amount"])
                for result in page["ResultsByTime"]
                for group in result["Groups"]
            ),
            Decimal(0),
        )

        groups, problems = parse_cost_and_usage(page, metric=metric, month=dt.date(2017, 9, 1))

        assert problems == []
        assert sum((group.cost for group in groups), Decimal(0)) == expected
    assert expected == Decimal("40.6209873097")  # BlendedCost, the last one read
    assert [dict(group.tags) for group in groups] == [{}, {"Environment": "Dev"}]
    assert {group.service_name for group in groups} == {"Amazon Simple Storage Service"}
    assert groups[1] == ChargeGroup(
        source="aws_cost_explorer",
        provider="AWS",
        service_name="Amazon Simple Storage Service",
        service_category=None,
        charge_category=None,
        billing_currency="USD",
        cost=Decimal("0.2682364644"),
        line_items=1,
        tags={"Environment": "Dev"},
    )


def test_sample_for_another_month_is_refused() -> None:
    page = json.loads(SAMPLE.read_text(encoding="utf-8"))
    with pytest.raises(ValueError, match="'2017-09-01' when 2017-10 was asked"):
        parse_cost_and_usage(page, metric="UnblendedCost", month=dt.date(2017, 10, 1))


def test_unreadable_groups_are_problems_that_keep_what_could_be_read() -> None:
    page = results(
        [
            ("app-id$PAY", "Amazon EC2", "1.50", "USD"),
            ("app-id$PAY", "Amazon S3", "NaN-ish", "USD"),
            ("app-id$PAY", "AWS Lambda", "2.25", ""),
            ("Owner$bob", "Amazon RDS", "3", "USD"),
            ("app-id$", "Tax", "-0.40", "USD"),
        ]
    )
    page["ResultsByTime"][0]["Groups"].append({"Keys": ["app-id$X", "Amazon SQS"], "Metrics": {}})

    groups, problems = parse_cost_and_usage(page, metric="NetAmortizedCost", month=OCTOBER)

    assert [(group.service_name, group.cost, dict(group.tags)) for group in groups] == [
        ("Amazon EC2", Decimal("1.50"), {"app-id": "PAY"}),
        ("Tax", Decimal("-0.40"), {}),
    ]
    assert [(problem.reason, problem.cost, problem.currency) for problem in problems] == [
        ("NetAmortizedCost amount is not a number ('NaN-ish')", None, "USD"),
        ("NetAmortizedCost unit (the currency) missing", Decimal("2.25"), None),
        ("tag group key 'Owner$bob' is not 'app-id$<value>'", Decimal("3"), "USD"),
        ("metric NetAmortizedCost missing", None, None),
    ]
    assert problems[0].raw["Keys"] == ["app-id$PAY", "Amazon S3"]
