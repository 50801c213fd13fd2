"""The private-cloud sources as one Dagster resource.

FINOPS_PRIVATE_CLOUD_SOURCES picks the sources (default: openstack,opencost,usage_api). Each
enabled source reads its own settings from the environment, checked when the code location loads
(`validate`), so a source that is enabled but not configured fails at start naming the variable.
Nothing secret is a field of the resource: the UI shows only the source list.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from dagster import ConfigurableResource

from finops_dagster.domains.private_cloud.opencost import OpenCostAllocations
from finops_dagster.domains.private_cloud.openstack import OpenStackUsage
from finops_dagster.domains.private_cloud.usage_api import UsageApi
from finops_dagster.settings import SettingError

KNOWN_SOURCES = ("openstack", "opencost", "usage_api")


@dataclass
class PrivateCloudSources:
    openstack: OpenStackUsage | None
    opencost: OpenCostAllocations | None
    usage_api: UsageApi | None

    def close(self) -> None:
        for source in (self.openstack, self.opencost, self.usage_api):
            if source is not None:
                source.close()


def sources_from_env() -> tuple[str, ...]:
    raw = os.environ.get("FINOPS_PRIVATE_CLOUD_SOURCES", "").strip()
    names = tuple(part.strip() for part in raw.split(",") if part.strip()) if raw else KNOWN_SOURCES
    for name in names:
        if name not in KNOWN_SOURCES:
            raise SettingError(
                f"FINOPS_PRIVATE_CLOUD_SOURCES: unknown source {name!r} (known: {', '.join(KNOWN_SOURCES)})"
            )
    return names


class PrivateCloudResource(ConfigurableResource):
    """Which private-cloud sources to read; their settings come from the environment."""

    sources: list[str]

    def open(self) -> PrivateCloudSources:
        return PrivateCloudSources(
            openstack=OpenStackUsage.from_env() if "openstack" in self.sources else None,
            opencost=OpenCostAllocations.from_env() if "opencost" in self.sources else None,
            usage_api=UsageApi.from_env() if "usage_api" in self.sources else None,
        )

    @contextmanager
    def connected(self) -> Iterator[PrivateCloudSources]:
        sources = self.open()
        try:
            yield sources
        finally:
            sources.close()


def private_cloud_from_env() -> PrivateCloudResource:
    """The resource, with every enabled source's settings checked now."""
    resource = PrivateCloudResource(sources=list(sources_from_env()))
    resource.open().close()
    return resource
