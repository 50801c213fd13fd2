"""What the pipeline is: assets, checks, schedule, sensors and resources, assembled.

Steps of a run execute in one process (in-process executor): the run ledger resource lives for
the whole run (see mart/etl_runs.py), and the steps are I/O-bound, so a process per step would
only add start-up time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dagster import AssetsDefinition, Definitions, in_process_executor

from finops_dagster.checks.allocation import allocation_balances
from finops_dagster.checks.freshness import build_freshness_check, build_freshness_schedule, freshness_job
from finops_dagster.checks.reconciliation import Measure, build_reconciliation_check
from finops_dagster.checks.views import views_match_fact_releve
from finops_dagster.checks.volume import build_volume_check
from finops_dagster.domains.native import DOMAIN_ID as NATIVE
from finops_dagster.domains.native.assets import native_releves, native_snapshots
from finops_dagster.domains.native.resource import native_from_env
from finops_dagster.domains.open_legacy import DOMAIN_ID as OPEN_LEGACY
from finops_dagster.domains.open_legacy.assets import open_legacy_releves
from finops_dagster.domains.private_cloud import DOMAIN_ID as PRIVATE_CLOUD
from finops_dagster.domains.private_cloud.assets import private_cloud_releves
from finops_dagster.domains.private_cloud.resource import private_cloud_from_env
from finops_dagster.domains.public_cloud import DOMAIN_ID as PUBLIC_CLOUD
from finops_dagster.domains.public_cloud.assets import public_cloud_releves
from finops_dagster.domains.public_cloud.resource import public_cloud_from_env
from finops_dagster.jobs import nightly_job, publish_months_job, restate_months_job
from finops_dagster.mart.assets import build_fact_releve, materialized_views
from finops_dagster.mart.etl_runs import RunLedger
from finops_dagster.mart.month_jobs import approve_restatement_job, close_month_job
from finops_dagster.mart.rebuild import rebuild_aggregates_job
from finops_dagster.observe.logs import dagster_loggers
from finops_dagster.reference.assets import applications, reference_data
from finops_dagster.resources.mongo import mongo_from_env
from finops_dagster.resources.postgres import postgres_from_env
from finops_dagster.schedules import build_nightly_schedule
from finops_dagster.sensors import ALERT_SENSORS
from finops_dagster.settings import enabled_domains


@dataclass(frozen=True)
class Domain:
    """A domain as the pipeline sees it: the asset fact_releve publishes, the assets that feed it,
    the resource (key and builder from the environment) its sources need, if any, and what its
    sources carry (quantities to price, or cost), which the reconciliation balances."""

    releves: AssetsDefinition
    feeders: tuple[AssetsDefinition, ...] = ()
    resource_key: str | None = None
    resource_from_env: Callable[[], Any] | None = None
    reconciled_by: Measure = "quantity"


DOMAINS: dict[str, Domain] = {
    OPEN_LEGACY: Domain(open_legacy_releves),
    PRIVATE_CLOUD: Domain(
        private_cloud_releves, resource_key=PRIVATE_CLOUD, resource_from_env=private_cloud_from_env
    ),
    PUBLIC_CLOUD: Domain(
        public_cloud_releves,
        resource_key=PUBLIC_CLOUD,
        resource_from_env=public_cloud_from_env,
        reconciled_by="cost",
    ),
    NATIVE: Domain(
        native_releves, feeders=(native_snapshots,), resource_key=NATIVE, resource_from_env=native_from_env
    ),
}


def resources_from_env() -> dict[str, Any]:
    """Only what the enabled domains need, so a disabled domain needs no settings."""
    postgres = postgres_from_env()
    resources: dict[str, Any] = {
        "postgres": postgres,
        "cmdb": mongo_from_env(),
        "run_ledger": RunLedger(postgres=postgres),
    }
    for name in enabled_domains():
        domain = DOMAINS[name]
        if domain.resource_key and domain.resource_from_env:
            resources[domain.resource_key] = domain.resource_from_env()
    return resources


def build_definitions(resources: Mapping[str, Any] | None = None) -> Definitions:
    """Everything the pipeline is, for the enabled domains (FINOPS_DOMAINS_ENABLED)."""
    enabled = {name: DOMAINS[name] for name in enabled_domains()}
    domains = [domain.releves for domain in enabled.values()]
    checks = [
        check
        for name, domain in enabled.items()
        for check in (
            build_reconciliation_check(domain.releves.key, name, domain.reconciled_by),
            build_volume_check(domain.releves.key, name),
        )
    ]
    freshness = build_freshness_check(list(enabled))
    return Definitions(
        assets=[
            reference_data,
            applications,
            *(feeder for domain in enabled.values() for feeder in domain.feeders),
            *domains,
            build_fact_releve([d.key for d in domains]),
            materialized_views,
        ],
        asset_checks=[*checks, allocation_balances, views_match_fact_releve, freshness],
        jobs=[
            nightly_job,
            publish_months_job,
            restate_months_job,
            freshness_job,
            rebuild_aggregates_job,
            close_month_job,
            approve_restatement_job,
        ],
        schedules=[build_nightly_schedule(), build_freshness_schedule()],
        sensors=ALERT_SENSORS,
        resources=dict(resources) if resources is not None else resources_from_env(),
        executor=in_process_executor,
        loggers=dagster_loggers(),
    )
