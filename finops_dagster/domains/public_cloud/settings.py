"""The public_cloud domain's settings, read from the environment and checked when the code location loads.

Sources (FINOPS_PUBLIC_CLOUD_SOURCES, default `focus`): `focus` (FOCUS exports of any provider),
`gcp_billing_export` (Google Cloud's standard billing export as flattened files),
`azure_cost_details` and `aws_cur` (Azure cost-details exports, AWS Cost and Usage Reports),
`azure_cost_management` and `aws_cost_explorer` (the providers' cost APIs). Choices that change
what a relevé says — which cost, which month, which tags name the application — are settings,
with the FinOps practice's usual defaults.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from finops_dagster.settings import SettingError, env_bool, env_str, reporting_currency

KNOWN_SOURCES = (
    "focus",
    "gcp_billing_export",
    "azure_cost_details",
    "aws_cur",
    "azure_cost_management",
    "aws_cost_explorer",
)
EXPORT_PATHS = {
    "focus": "FINOPS_FOCUS_PATHS",
    "gcp_billing_export": "FINOPS_GCP_BILLING_EXPORT_PATHS",
    "azure_cost_details": "FINOPS_AZURE_COST_DETAILS_PATHS",
    "aws_cur": "FINOPS_AWS_CUR_PATHS",
}
"""The file sources and the setting that locates each one's files."""
DEFAULT_SOURCES = ("focus",)
COST_COLUMNS = ("EffectiveCost", "BilledCost")
MONTH_COLUMNS = ("ChargePeriodStart", "BillingPeriodStart")
DEFAULT_TAG_KEYS = ("app-id", "application", "app")


@dataclass(frozen=True)
class PublicCloudSettings:
    sources: tuple[str, ...]
    export_paths: dict[str, tuple[str, ...]]
    """Per file source, the directories or globs of its files."""
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
        export_paths={name: env_list(setting) for name, setting in EXPORT_PATHS.items() if name in sources},
        tag_keys=env_list("FINOPS_PUBLIC_CLOUD_TAG_KEYS", DEFAULT_TAG_KEYS),
        cost_column=env_choice("FINOPS_FOCUS_COST_COLUMN", COST_COLUMNS),
        month_column=env_choice("FINOPS_FOCUS_MONTH_COLUMN", MONTH_COLUMNS),
        product_by_sku=env_bool("FINOPS_PUBLIC_CLOUD_PRODUCT_BY_SKU", False),
        reporting_currency=reporting_currency(),
    )
    for name, paths in settings.export_paths.items():
        if not paths:
            raise SettingError(
                f"{EXPORT_PATHS[name]} is not set: the directories or globs of the {name} files "
                f"(or leave {name} out of FINOPS_PUBLIC_CLOUD_SOURCES)"
            )
    return settings
