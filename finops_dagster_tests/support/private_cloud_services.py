"""A simulated private cloud (OpenStack, OpenCost, the usage API) and the nightly job pointed at it.

The end-to-end and ledger tests of the private_cloud domain run the same job on the same day.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import finops_dagster.domains.private_cloud.assets as private_cloud_asset
from finops_dagster.demo.private_cloud import PrivateCloudSimulator, RunningServer, serve
from finops_dagster.domains.private_cloud.resource import private_cloud_from_env
from finops_dagster_tests.support.domain_runs import SHARED_SOURCE_SETTINGS, DomainRun

TODAY = dt.date(2025, 10, 10)
"""The simulators' day (past, so its months are partitions whatever the real date): OpenCost still
shows 26 September - 9 October, Nova measures up to 10 October."""
SOURCE_SETTINGS = (
    "FINOPS_OPENSTACK_", "FINOPS_OPENCOST_", "FINOPS_USAGE_API_", "FINOPS_PRIVATE_CLOUD_",
    *SHARED_SOURCE_SETTINGS,
)


class Pipeline(DomainRun):
    """The nightly job against this test's mart, pointed at a simulated private cloud."""

    asset_nodes = ("private_cloud_releves", "fact_releve")

    def domain_resources(self) -> dict[str, Any]:
        return {"private_cloud": private_cloud_from_env()}

    def start(self, simulator: PrivateCloudSimulator) -> RunningServer:
        """Serve the simulator and point the sources and the asset's clock at it."""
        return self.serve(serve(simulator), private_cloud_asset, lambda: simulator.now)
