"""The native services as one Dagster resource: which sources to read, their settings from the environment.

FINOPS_NATIVE_SOURCES (default gitlab,artifactory) and FINOPS_NATIVE_SERVICES (usage-report services,
e.g. cube). Every enabled source's settings are checked when the code location loads.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from dagster import ConfigurableResource

from finops_dagster.domains.native.artifactory import Artifactory
from finops_dagster.domains.native.gitlab import GitLab
from finops_dagster.domains.native.snapshots import Snapshot
from finops_dagster.domains.native.usage_report import UsageReportService, service_names
from finops_dagster.settings import SettingError

KNOWN_SOURCES = ("gitlab", "artifactory")


class SnapshotSource(Protocol):
    def snapshot(self, night: dt.date) -> list[Snapshot]: ...

    def close(self) -> None: ...


def sources_from_env() -> list[str]:
    raw = os.environ.get("FINOPS_NATIVE_SOURCES", "").strip()
    names = [part.strip() for part in raw.split(",") if part.strip()] if raw else list(KNOWN_SOURCES)
    for name in names:
        if name not in KNOWN_SOURCES:
            raise SettingError(
                f"FINOPS_NATIVE_SOURCES: unknown source {name!r} (known: {', '.join(KNOWN_SOURCES)}; "
                "other services go in FINOPS_NATIVE_SERVICES)"
            )
    return names


class NativeServicesResource(ConfigurableResource):
    """Which native sources and usage-report services to read; their settings come from the environment."""

    sources: list[str]
    services: list[str]

    def open(self) -> list[SnapshotSource]:
        opened: list[SnapshotSource] = []
        try:
            if "gitlab" in self.sources:
                opened.append(GitLab.from_env())
            if "artifactory" in self.sources:
                opened.append(Artifactory.from_env())
            opened.extend(UsageReportService.from_env(name) for name in self.services)
        except Exception:
            for source in opened:
                source.close()
            raise
        return opened

    @contextmanager
    def connected(self) -> Iterator[list[SnapshotSource]]:
        sources = self.open()
        try:
            yield sources
        finally:
            for source in sources:
                source.close()


def native_from_env() -> NativeServicesResource:
    resource = NativeServicesResource(sources=sources_from_env(), services=service_names())
    for source in resource.open():
        source.close()
    return resource
