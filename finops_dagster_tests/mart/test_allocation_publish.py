"""The allocation through the publish: computed from the month's published relevés in the same
transaction, stored with its lineage, served by the allocated view of the aggregates, checked by the
blocking check (which fails when a row is tampered with), and refused when a rule names an
application the mart does not know."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import psycopg
import pytest
from dagster import AssetCheckKey, AssetSelection, Definitions, define_asset_job, in_process_executor

from finops_dagster.checks.allocation import CHECK_NAME, allocation_balances, imbalance_count, imbalances
from finops_dagster.checks.checked_months import EVERY_MONTH, CheckedMonths, published_by_run
from finops_dagster.checks.views import MONTHLY_VIEWS, QUARTER_VIEW, view_mismatches
from finops_dagster.mart.assets import FACT_RELEVE, build_fact_releve
from finops_dagster.mart.etl_runs import RunLedger
from finops_dagster.mart.publish import PublishError, publish_run
from finops_dagster.resources.postgres import PostgresResource
from finops_dagster_tests.support.allocation_mart import add_applications, set_rules, stage

MONTH = dt.date(2025, 3, 1)
TODAY = dt.date(2025, 6, 15)
GROUPS = {"APP-A": "GRP", "APP-B": "GRP", "APP-C": "OTHER", "PLATFORM": "OTHER"}
COSTS = {
    ("APP-A", "OL_VCPU"): "300",
    ("APP-B", "OL_VCPU"): "100",
    ("APP-C", "OL_RAM_GB"): "50",
    ("PLATFORM", "OL_VCPU"): "100.000001",
    ("UNALLOCATED", "OL_VCPU"): "40",
}
RULES = (
    # UNALLOCATED of the domain, in proportion to each application's own cost in it (A 300, B 100, C 50
    # and PLATFORM 100.000001)
    "IDLE,v1,10,2025-01-01,,UNALLOCATED,open_legacy,,,domain,open_legacy,proportional,",
    # then the platform's cost (its own, plus what it just received), evenly over group GRP
    "PLATFORM-SHARE,v2,20,2025-01-01,,PLATFORM,,,,group,GRP,even,",
)


@pytest.fixture
def published(mart: psycopg.Connection) -> psycopg.Connection:
    add_applications(mart, GROUPS)
    set_rules(mart, *RULES)
    stage(mart, MONTH, "run-1", COSTS)
    publish_run(mart, "run-1", [MONTH], today=TODAY)
    return mart


def test_each_allocated_amount_names_its_source_rule_version_and_method(
    published: psycopg.Connection,
) -> None:
    moves = published.execute(
        "SELECT rule_id, rule_version, allocated_method_id, source_application_id, allocated_resource_id, "
        "product_id, allocated_cost, run_id FROM finops.fact_allocation WHERE period_month = %s "
        "ORDER BY rule_sequence, product_id, allocated_resource_id",
        (MONTH,),
    ).fetchall()
    # IDLE: 40 over weights 300 / 100 / 50 / 100.000001 (550.000001) of the domain's cost
    idle = [move for move in moves if move[0] == "IDLE"]
    assert [(m[4], m[6]) for m in idle] == [
        ("APP-A", Decimal("21.818182")),
        ("APP-B", Decimal("7.272727")),
        ("APP-C", Decimal("3.636364")),
        ("PLATFORM", Decimal("7.272727")),
    ]
    assert sum(m[6] for m in idle) == Decimal(40)
    assert {(m[1], m[2], m[3], m[5], m[7]) for m in idle} == {
        ("v1", "proportional", "UNALLOCATED", "OL_VCPU", "run-1")
    }
    # IDLE gave APP-C its part as OL_VCPU (the source's product): family and domain views stay true
    share = [move for move in moves if move[0] == "PLATFORM-SHARE"]
    assert [(m[1], m[2], m[3], m[4], m[6]) for m in share] == [
        ("v2", "even", "PLATFORM", "APP-A", Decimal("53.636364")),
        ("v2", "even", "PLATFORM", "APP-B", Decimal("53.636364")),
    ]


def test_the_direct_view_is_untouched_and_the_allocated_view_adds_up(published: psycopg.Connection) -> None:
    direct = dict(
        published.execute(
            "SELECT application_id, total_cost FROM finops.mv_cost_application_month WHERE period_month = %s",
            (MONTH,),
        ).fetchall()
    )
    assert direct == {
        "APP-A": Decimal("300.000000"),
        "APP-B": Decimal("100.000000"),
        "APP-C": Decimal("50.000000"),
        "PLATFORM": Decimal("100.000001"),
        "UNALLOCATED": Decimal("40.000000"),
    }
    allocated = dict(
        published.execute(
            "SELECT application_id, total_cost FROM finops_allocated.mv_cost_application_month "
            "WHERE period_month = %s",
            (MONTH,),
        ).fetchall()
    )
    assert allocated == {
        "APP-A": Decimal("375.454546"),
        "APP-B": Decimal("160.909091"),
        "APP-C": Decimal("53.636364"),
        "PLATFORM": Decimal("0.000000"),  # it consumed, and gave its whole cost away
        "UNALLOCATED": Decimal("0.000000"),
    }
    assert sum(allocated.values()) == sum(direct.values())
    groups = dict(
        published.execute(
            "SELECT group_id, total_cost FROM finops_allocated.mv_cost_group_month WHERE period_month = %s",
            (MONTH,),
        ).fetchall()
    )
    assert groups == {"GRP": Decimal("536.363637"), "OTHER": Decimal("53.636364"), "UNALLOCATED": Decimal(0)}
    assert imbalances(published) == []


def test_a_month_published_again_is_allocated_again_from_its_new_facts(published: psycopg.Connection) -> None:
    stage(published, MONTH, "run-2", {("APP-A", "OL_VCPU"): "10", ("UNALLOCATED", "OL_VCPU"): "5"})
    publish_run(published, "run-2", [MONTH], today=TODAY)
    assert published.execute(
        "SELECT application_id, direct_cost, allocated_in, allocated_out, total_cost, run_id "
        "FROM finops.fact_releve_allocated WHERE period_month = %s ORDER BY 1",
        (MONTH,),
    ).fetchall() == [
        ("APP-A", Decimal("10.000000"), Decimal("5.000000"), Decimal(0), Decimal("15.000000"), "run-2"),
        ("UNALLOCATED", Decimal("5.000000"), Decimal(0), Decimal("5.000000"), Decimal(0), "run-2"),
    ]
    assert imbalances(published) == []


def test_a_rule_naming_an_unknown_application_refuses_the_publish(mart: psycopg.Connection) -> None:
    add_applications(mart, GROUPS)
    set_rules(mart, "TYPO,v1,10,2025-01-01,,PLATFORM,,,,applications,APP-Z,even,")
    stage(mart, MONTH, "run-1", COSTS)
    with pytest.raises(
        PublishError, match=r"2025-03: allocation_rules\.csv: rule TYPO \(v1\): unknown application"
    ):
        publish_run(mart, "run-1", [MONTH], today=TODAY)
    assert mart.execute("SELECT count(*) FROM finops.fact_releve").fetchone() == (0,)


def run_check(mart_url: str) -> tuple[bool, dict[str, object]]:
    """The blocking check, run by Dagster on its own (the facts already published)."""
    postgres = PostgresResource(url=mart_url)
    job = define_asset_job(
        "allocation_check_only", selection=AssetSelection.checks(AssetCheckKey(FACT_RELEVE, CHECK_NAME))
    )
    defs = Definitions(
        assets=[build_fact_releve([])],
        asset_checks=[allocation_balances],
        jobs=[job],
        resources={"postgres": postgres, "run_ledger": RunLedger(postgres=postgres)},
        executor=in_process_executor,
    )
    result = defs.resolve_job_def("allocation_check_only").execute_in_process(raise_on_error=False)
    [evaluation] = result.get_asset_check_evaluations()
    return evaluation.passed, {key: value.value for key, value in evaluation.metadata.items()}


def test_the_blocking_check_passes_then_fails_when_a_row_is_tampered_with(
    published: psycopg.Connection, mart_url: str
) -> None:
    assert allocation_balances.check_specs_by_output_name  # the check is declared on fact_releve
    [spec] = allocation_balances.check_specs
    assert (spec.asset_key, spec.blocking) == (FACT_RELEVE, True)
    passed, metadata = run_check(mart_url)
    assert passed and metadata["imbalances"] == 0 and metadata["moves"] == 6

    published.execute(
        "UPDATE finops.fact_allocation SET allocated_cost = allocated_cost + 0.01 "
        "WHERE rule_id = 'IDLE' AND allocated_resource_id = 'APP-B'"
    )
    passed, metadata = run_check(mart_url)
    assert not passed
    assert "lineage 2025-03 APP-B OL_VCPU EUR" in str(metadata["shown"])

    published.execute(
        "UPDATE finops.fact_allocation SET allocated_cost = allocated_cost - 0.01 "
        "WHERE rule_id = 'IDLE' AND allocated_resource_id = 'APP-B'"
    )
    published.execute(
        "UPDATE finops.fact_releve_allocated "
        "SET total_cost = total_cost + 1, allocated_in = allocated_in + 1 "
        "WHERE application_id = 'APP-C' AND product_id = 'OL_RAM_GB'"
    )
    passed, metadata = run_check(mart_url)
    assert not passed
    assert "month total 2025-03 EUR: expected 590.000001, found 591.000001" in str(metadata["shown"])
    # the month total and the lineage of that line: counted in PostgreSQL, only the first shown
    assert metadata["imbalances"] == imbalance_count(published) == len(imbalances(published)) == 2
    assert [i.what for i in imbalances(published, shown=1)] == ["month total", "lineage"]


def test_a_run_checks_the_months_it_published_and_a_run_that_published_none_checks_every_month(
    published: psycopg.Connection,
) -> None:
    assert published_by_run(published, "run-1") == CheckedMonths([MONTH])
    assert published_by_run(published, "a-run-that-published-nothing") == EVERY_MONTH
    published.execute(
        "UPDATE finops.fact_releve_allocated SET total_cost = total_cost + 1, "
        "allocated_in = allocated_in + 1 WHERE application_id = 'APP-C' AND product_id = 'OL_RAM_GB'"
    )
    another_month = CheckedMonths([dt.date(2025, 4, 1)])
    assert imbalances(published, months=another_month) == []
    assert imbalance_count(published, another_month) == 0
    tampered = imbalances(published, months=CheckedMonths([MONTH]))
    assert [i.what for i in tampered] == ["month total", "lineage"]
    assert imbalance_count(published, CheckedMonths([MONTH])) == imbalance_count(published) == 2


def test_the_allocated_aggregates_add_up_to_the_published_relevés(published: psycopg.Connection) -> None:
    for view in (*MONTHLY_VIEWS, QUARTER_VIEW):
        assert view_mismatches(published, view, "finops_allocated") == [], view
    published.execute(
        "UPDATE finops_allocated.mv_cost_app_domain_month SET total_cost = total_cost + 1 "
        "WHERE application_id = 'APP-A'"
    )
    assert view_mismatches(published, "mv_cost_app_domain_month", "finops_allocated") == [
        (MONTH, "EUR", Decimal("591.000001"), Decimal("590.000001"))
    ]
