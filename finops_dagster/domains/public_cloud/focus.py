"""FOCUS exports (FinOps Open Cost and Usage Specification 1.0 to 1.3) of any provider.

Month: a line item belongs to the month of its `ChargePeriodStart` (when it was consumed, as in
every other domain), or of its `BillingPeriodStart` (the invoice's month) when
FINOPS_FOCUS_MONTH_COLUMN says so; a row whose month column is empty falls back to the other one.
Cost: `EffectiveCost` (amortised, after discounts: what the FinOps practice charges back) or
`BilledCost` (as invoiced) by FINOPS_FOCUS_COST_COLUMN.

A row is a reject, with its reason, when its cost is empty or not a number, its billing currency
is not an ISO 4217 code, its period is not a date, or its PricingQuantity is not a number.
Columns this pipeline does not read (extension `x_` columns included) are ignored; a file without
the columns it reads fails the run naming them. Provider: `ServiceProviderName` (FOCUS 1.3), else
`ProviderName` (1.0 to 1.2).
"""

from __future__ import annotations

from dataclasses import dataclass

from finops_dagster.domains.public_cloud.export_reader import (
    ExportFile,
    problem_case,
)
from finops_dagster.domains.public_cloud.tags import parse_tags

SOURCE = "focus"
PROVIDER_COLUMNS = ("ServiceProviderName", "ProviderName")
REQUIRED_COLUMNS = (
    "BilledCost",
    "EffectiveCost",
    "BillingCurrency",
    "BillingPeriodStart",
    "ChargePeriodStart",
    "ChargeCategory",
    "ServiceCategory",
    "ServiceName",
)
PERIOD_COLUMNS = ("ChargePeriodStart", "BillingPeriodStart")
COST_COLUMNS = ("EffectiveCost", "BilledCost")
RESOURCE_GROUP_COLUMNS = ("x_ResourceGroupName", "ResourceGroupName")


@dataclass(frozen=True)
class FocusLayout:
    """FOCUS columns → the fields of a charge group."""

    cost_column: str = "EffectiveCost"
    month_column: str = "ChargePeriodStart"
    product_by_sku: bool = False
    source: str = SOURCE
    description: str = "FOCUS export"

    def missing_columns(self, file: ExportFile) -> list[str]:
        missing = sorted(name for name in {*REQUIRED_COLUMNS, self.cost_column} if not file.has(name))
        if not any(file.has(name) for name in PROVIDER_COLUMNS):
            missing.append(" or ".join(PROVIDER_COLUMNS))
        return missing

    def fields(self, file: ExportFile) -> str:
        other_period = next(name for name in PERIOD_COLUMNS if name != self.month_column)
        return ", ".join(
            (
                f"{file.text(*PROVIDER_COLUMNS)} AS provider",
                f"{file.text('ServiceName')} AS service_name",
                f"{file.text('ServiceCategory')} AS service_category",
                f"{file.text('ChargeCategory')} AS charge_category",
                f"{file.text('SkuId') if self.product_by_sku else 'NULL::VARCHAR'} AS sku_id",
                f"{file.text('SubAccountId')} AS sub_account_id",
                f"{file.text('SubAccountName')} AS sub_account_name",
                f"{file.text(*RESOURCE_GROUP_COLUMNS)} AS resource_group",
                f"{file.text('Tags')} AS tags",
                f"upper({file.text('BillingCurrency')}) AS currency",
                f"{file.text('PricingUnit')} AS pricing_unit",
                f"{file.number(self.cost_column)} AS cost",
                f"{file.number('PricingQuantity')} AS pricing_quantity",
                f"coalesce({file.timestamp(self.month_column)}, {file.timestamp(other_period)}) AS period",
            )
        )

    def problem(self, file: ExportFile) -> str:
        cost, month = self.cost_column, self.month_column
        other_period = next(name for name in PERIOD_COLUMNS if name != month)
        currency = file.text("BillingCurrency")
        checks = [
            (f"{file.text(cost)} IS NULL", f"'{cost} is empty'"),
            (f"{file.number(cost)} IS NULL", f"'{cost} ' || {file.text(cost)} || ' is not a number'"),
            (
                f"coalesce(NOT regexp_full_match(upper({currency}), '[A-Z]{{3}}'), true)",
                f"'BillingCurrency ' || coalesce({currency}, '(empty)') || ' is not an ISO 4217 code'",
            ),
            (
                f"coalesce({file.timestamp(month)}, {file.timestamp(other_period)}) IS NULL",
                f"'{month} ' || coalesce({file.text(month)}, '(empty)') || ' is not a date'",
            ),
            (
                f"{file.text('PricingQuantity')} IS NOT NULL AND {file.number('PricingQuantity')} IS NULL",
                f"'PricingQuantity ' || {file.text('PricingQuantity')} || ' is not a number'",
            ),
        ]
        return problem_case(checks)

    def parse_tags(self, raw: str | None) -> dict[str, str]:
        return parse_tags(raw)
