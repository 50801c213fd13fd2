"""The public-cloud sources as one Dagster resource.

Each enabled source (FINOPS_PUBLIC_CLOUD_SOURCES) is built from its own settings when the code
location loads, so a source enabled without its settings fails at start naming the variable.
Nothing secret is a field of the resource: the UI shows only the source list.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from dagster import ConfigurableResource

from finops_dagster.domains.public_cloud.aws_cost_explorer import AwsCostExplorer
from finops_dagster.domains.public_cloud.aws_cur import AwsCurLayout
from finops_dagster.domains.public_cloud.azure_cost_details import AzureCostDetailsLayout
from finops_dagster.domains.public_cloud.azure_cost_management import AzureCostManagement
from finops_dagster.domains.public_cloud.charges import ChargeTable, SourceMonth
from finops_dagster.domains.public_cloud.export_reader import ExportLayout, ExportReader
from finops_dagster.domains.public_cloud.focus import FocusLayout
from finops_dagster.domains.public_cloud.gcp_billing_export import GcpBillingExportLayout
from finops_dagster.domains.public_cloud.settings import (
    EXPORT_PATHS,
    PublicCloudSettings,
    public_cloud_settings,
)


class ChargeSource(Protocol):
    def read_month(
        self, month: dt.date, now: dt.datetime, into: ChargeTable | None = None
    ) -> SourceMonth: ...

    def close(self) -> None: ...


@dataclass
class PublicCloudSources:
    settings: PublicCloudSettings
    readers: dict[str, ChargeSource]

    def close(self) -> None:
        for reader in self.readers.values():
            reader.close()


def open_source(name: str, settings: PublicCloudSettings) -> ChargeSource:
    """One source by name, from its settings."""
    if name == "azure_cost_management":
        return AzureCostManagement.from_env()
    if name == "aws_cost_explorer":
        return AwsCostExplorer.from_env()
    return ExportReader(export_layout(name, settings), settings.export_paths[name], EXPORT_PATHS[name])


def export_layout(name: str, settings: PublicCloudSettings) -> ExportLayout:
    """How the files of a file source are read, with the domain's choices of month, cost and product."""
    by_invoice_month = settings.month_column == "BillingPeriodStart"
    by_sku = settings.product_by_sku
    if name == "focus":
        return FocusLayout(settings.cost_column, settings.month_column, by_sku)
    if name == "gcp_billing_export":
        return GcpBillingExportLayout(by_invoice_month, by_sku)
    if name == "azure_cost_details":
        return AzureCostDetailsLayout(by_invoice_month, by_sku)
    if name == "aws_cur":
        return AwsCurLayout(by_invoice_month=by_invoice_month, product_by_sku=by_sku)
    raise ValueError(f"unknown public-cloud source {name!r}")


class PublicCloudResource(ConfigurableResource):
    """Which public-cloud sources to read; their settings come from the environment."""

    sources: list[str]

    def open(self) -> PublicCloudSources:
        settings = public_cloud_settings()
        readers: dict[str, ChargeSource] = {}
        try:
            for name in self.sources:
                readers[name] = open_source(name, settings)
        except BaseException:
            PublicCloudSources(settings, readers).close()
            raise
        return PublicCloudSources(settings, readers)

    @contextmanager
    def connected(self) -> Iterator[PublicCloudSources]:
        sources = self.open()
        try:
            yield sources
        finally:
            sources.close()


def public_cloud_from_env() -> PublicCloudResource:
    """The resource, with every enabled source's settings checked now."""
    resource = PublicCloudResource(sources=list(public_cloud_settings().sources))
    resource.open().close()
    return resource
