"""The public_cloud domain's settings, read from the environment and checked when the code location loads.

Sources (FINOPS_PUBLIC_CLOUD_SOURCES, default `focus`): `focus` (FOCUS exports of any provider),
`gcp_billing_export` (Google Cloud's standard billing export as flattened files),
`azure_cost_management` and `aws_cost_explorer` (the providers' cost APIs). Choices that change
what a relevé says — which cost, which month, which tags name the application — are settings,
with the FinOps practice's usual defaults.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from finops_dagster.settings import SettingError, env_bool, env_str, reporting_currency

KNOWN_SOURCES = ("focus", "gcp_billing_export", "azure_cost_management", "aws_cost_explorer")
DEFAULT_SOURCES = ("focus",)
COST_COLUMNS = ("EffectiveCost", "BilledCost")
MONTH_COLUMNS = ("ChargePeriodStart", "BillingPeriodStart")
DEFAULT_TAG_KEYS = ("app-id", "application", "app")


@dataclass(frozen=True)
class PublicCloudSettings:
    sources: tuple[str, ...]
    focus_paths: tuple[str, ...]
    gcp_export_paths: tuple[str, ...]
    tag_keys: tuple[str, ...]
    cost_column: str
    month_column: str
    product_by_sku: bool
    reporting_currency: str


def env_list(name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
    """A comma-separated list (empty items dropped); set to nothing but commas is an error."""
    raw = os.environ.get(name, "")
    items = tuple(part.strip() for part in raw.split(",") if part.strip())
    if raw.strip() and not items:
        raise SettingError(f"{name} names nothing: {raw!r}")
    return items or default


def env_choice(name: str, choices: tuple[str, ...]) -> str:
    value = env_str(name, choices[0])
    if value not in choices:
        raise SettingError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def application_tag_key() -> str:
    """The one tag a provider's cost API groups by: the first of FINOPS_PUBLIC_CLOUD_TAG_KEYS."""
    return env_list("FINOPS_PUBLIC_CLOUD_TAG_KEYS", DEFAULT_TAG_KEYS)[0]


def public_cloud_settings() -> PublicCloudSettings:
    sources = env_list("FINOPS_PUBLIC_CLOUD_SOURCES", DEFAULT_SOURCES)
    for name in sources:
        if name not in KNOWN_SOURCES:
            raise SettingError(
                f"FINOPS_PUBLIC_CLOUD_SOURCES: unknown source {name!r} (known: {', '.join(KNOWN_SOURCES)})"
            )
    settings = PublicCloudSettings(
        sources=sources,
        focus_paths=env_list("FINOPS_FOCUS_PATHS"),
        gcp_export_paths=env_list("FINOPS_GCP_BILLING_EXPORT_PATHS"),
        tag_keys=env_list("FINOPS_PUBLIC_CLOUD_TAG_KEYS", DEFAULT_TAG_KEYS),
        cost_column=env_choice("FINOPS_FOCUS_COST_COLUMN", COST_COLUMNS),
        month_column=env_choice("FINOPS_FOCUS_MONTH_COLUMN", MONTH_COLUMNS),
        product_by_sku=env_bool("FINOPS_PUBLIC_CLOUD_PRODUCT_BY_SKU", False),
        reporting_currency=reporting_currency(),
    )
    if "focus" in sources and not settings.focus_paths:
        raise SettingError(
            "FINOPS_FOCUS_PATHS is not set: the directories or globs of the FOCUS exports "
            "(or leave `focus` out of FINOPS_PUBLIC_CLOUD_SOURCES)"
        )
    if "gcp_billing_export" in sources and not settings.gcp_export_paths:
        raise SettingError(
            "FINOPS_GCP_BILLING_EXPORT_PATHS is not set: the directories or globs of the billing export files"
        )
    return settings
