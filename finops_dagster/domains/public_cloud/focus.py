"""FOCUS exports (FinOps Open Cost and Usage Specification 1.0 to 1.3) of any provider.

Month: a line item belongs to the month of its `ChargePeriodStart` (when it was consumed, as in
every other domain), or of its `BillingPeriodStart` (the invoice's month) when
FINOPS_FOCUS_MONTH_COLUMN says so. Dates are ISO 8601, as FOCUS writes them; a month column that
is empty or not such a date is a reject (never a fallback to the other column), and so is a
`ChargePeriodStart` more than a year away from its row's `BillingPeriodStart` (a misread year).
Cost: `EffectiveCost` (amortised, after discounts: what the FinOps practice charges back) or
`BilledCost` (as invoiced) by FINOPS_FOCUS_COST_COLUMN.

A row is a reject, with its reason, when its cost is empty or not a number, its billing currency
is not an ISO 4217 code, its period is not a date (or far from its billing period), or its
PricingQuantity is not a number.
Keys are read as written and trimmed once per group, not per line item: at tens of millions of
rows, per-row string work is most of a scan's time.
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
BILLING_PERIOD_DISTANCE = "INTERVAL 366 DAYS"
"""How far a charge's period may lie from its billing period: corrections of earlier periods come
late, but not by years."""
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
        """Keys as written (trimmed once per group by the reader), exact amounts, the period."""
        return ", ".join(
            (
                f"{file.raw(*PROVIDER_COLUMNS)} AS provider",
                f"{file.raw('ServiceName')} AS service_name",
                f"{file.raw('ServiceCategory')} AS service_category",
                f"{file.raw('ChargeCategory')} AS charge_category",
                f"{file.raw('SkuId') if self.product_by_sku else 'NULL::VARCHAR'} AS sku_id",
                f"{file.raw('SubAccountId')} AS sub_account_id",
                f"{file.raw('SubAccountName')} AS sub_account_name",
                f"{file.raw(*RESOURCE_GROUP_COLUMNS)} AS resource_group",
                f"{file.raw('Tags')} AS tags",
                f"{file.raw('BillingCurrency')} AS currency",
                f"{file.raw('PricingUnit')} AS pricing_unit",
                f"{file.number(self.cost_column)} AS cost",
                f"{file.number('PricingQuantity')} AS pricing_quantity",
                f"{self._period(file)} AS period",
            )
        )

    def problem(self, file: ExportFile) -> str:
        """Per row, only what a group cannot tell (the billing currency is checked per group)."""
        cost, month = self.cost_column, self.month_column
        checks = [
            (file.is_blank(cost), f"'{cost} is empty'"),
            (file.not_a_number(cost), f"'{cost} ' || {file.text(cost)} || ' is not a number'"),
            (
                f"{file.timestamp(month)} IS NULL",
                f"'{month} ' || coalesce({file.text(month)}, '(empty)') || ' is not an ISO 8601 date'",
            ),
            (
                f"{self._period(file)} IS NULL",
                f"'ChargePeriodStart ' || {file.text('ChargePeriodStart')} || ' is more than a year from "
                f"BillingPeriodStart ' || {file.text('BillingPeriodStart')}",
            ),
            (
                file.not_a_number("PricingQuantity"),
                f"'PricingQuantity ' || {file.text('PricingQuantity')} || ' is not a number'",
            ),
        ]
        return problem_case(checks)

    tags_are_json = True

    def parse_tags(self, raw: str | None) -> dict[str, str]:
        return parse_tags(raw)

    def ledger_cost_column(self, file: ExportFile) -> str | None:
        return self.cost_column if file.has(self.cost_column) else None

    def _period(self, file: ExportFile) -> str:
        """The month column's date, unless the charge's period is implausibly far from its billing period."""
        charge, billing = file.timestamp("ChargePeriodStart"), file.timestamp("BillingPeriodStart")
        return (
            f"CASE WHEN {charge} IS NULL OR {billing} IS NULL "
            f"OR {charge} BETWEEN {billing} - {BILLING_PERIOD_DISTANCE} "
            f"AND {billing} + {BILLING_PERIOD_DISTANCE} "
            f"THEN {file.timestamp(self.month_column)} END"
        )
