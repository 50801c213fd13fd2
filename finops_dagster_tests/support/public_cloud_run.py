"""The nightly job pointed at the public_cloud domain's bills, and the settings it reads.

The end-to-end, ledger and bad-input tests of the public_cloud domain run the same job.
"""

from __future__ import annotations

from typing import Any

from finops_dagster.domains.public_cloud.resource import PublicCloudResource
from finops_dagster.domains.public_cloud.settings import public_cloud_settings
from finops_dagster_tests.support.domain_runs import DomainRun

SOURCE_SETTINGS = (
    "FINOPS_FOCUS_",
    "FINOPS_PUBLIC_CLOUD_",
    "FINOPS_GCP_",
    "FINOPS_AZURE_",
    "FINOPS_AWS_",
    "FINOPS_REPORTING_CURRENCY",
)


class PublicCloudRun(DomainRun):
    asset_nodes = ("public_cloud_releves", "fact_releve")

    def domain_resources(self) -> dict[str, Any]:
        return {"public_cloud": PublicCloudResource(sources=list(public_cloud_settings().sources))}
