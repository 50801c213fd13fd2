"""The AWS Cost and Usage Report, legacy or 2.0 (Data Exports), as CSV or Parquet files.

CUR 2.0 and the legacy report as Athena reads it name their columns in snake case
(`line_item_unblended_cost`); the legacy report's own CSV writes `lineItem/UnblendedCost`, and a
Glue crawler over it `lineitem_unblendedcost`. Columns are matched on their letters and digits
only, without case, so all three are read alike; error messages use the CUR 2.0 names.

Cost: `line_item_unblended_cost` by default; a layout built with another cost column (such as
`line_item_net_unblended_cost`, after discounts) reads that one. Currency:
`line_item_currency_code`; a file without that column (some trimmed exports) is taken as USD, the
currency AWS bills in unless the payer chose another, but a row with an empty code is a reject.
Month: `line_item_usage_start_date` (consumption), or `bill_billing_period_start_date` (the
invoice's month) with FINOPS_FOCUS_MONTH_COLUMN=BillingPeriodStart when the file has it; a row
whose chosen column is empty falls back to its usage start. Service: `product_product_name`, else
`line_item_product_code`. `line_item_line_item_type` becomes the charge category: Usage,
DiscountedUsage, SavingsPlanCoveredUsage and SavingsPlanNegation → Usage; Fee, RIFee and the
savings plans' fees → Purchase; Credit, Refund and the discounts → Credit; Tax → Tax; an empty
one (or a file without the column) is Usage.

Tags: CUR 2.0's `resource_tags` (a map in Parquet, a JSON object in CSV) keyed `user_<key>`, or the
legacy report's one column per tag (`resource_tags_user_<key>`, `resourceTags/user:<key>`). Only
user-defined cost allocation tags are read, keyed as written after their `user` prefix (Athena
names have already turned the key's `-` and `:` into `_`). AWS-generated tags (`aws:createdBy`)
are not read.

A row is a reject, with its reason, when its cost is empty or not a number, its currency is not an
ISO 4217 code, its period is not a date, or its usage amount is not a number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from finops_dagster.domains.public_cloud.duckdb_columns import literal
from finops_dagster.domains.public_cloud.export_reader import ExportFile, problem_case
from finops_dagster.domains.public_cloud.tags import parse_tags

SOURCE = "aws_cur"
PROVIDER = "AWS"
DEFAULT_COST_COLUMN = "line_item_unblended_cost"
DEFAULT_CURRENCY = "USD"
USAGE_START_COLUMN = "line_item_usage_start_date"
INVOICE_MONTH_COLUMN = "bill_billing_period_start_date"
CURRENCY_COLUMN = "line_item_currency_code"
ACCOUNT_ID_COLUMN = "line_item_usage_account_id"
ACCOUNT_NAME_COLUMN = "line_item_usage_account_name"
PRODUCT_CODE_COLUMN = "line_item_product_code"
PRODUCT_NAME_COLUMN = "product_product_name"
LINE_ITEM_TYPE_COLUMN = "line_item_line_item_type"
QUANTITY_COLUMN = "line_item_usage_amount"
UNIT_COLUMN = "pricing_unit"
SKU_COLUMN = "product_sku"
TAGS_COLUMN = "resource_tags"
REQUIRED_COLUMNS = (USAGE_START_COLUMN, ACCOUNT_ID_COLUMN, PRODUCT_CODE_COLUMN)
"""Besides the cost column; CUR 2.0 names."""
USER_TAG_COLUMN = re.compile(r"resource_?tags[/_]user[:_](?P<key>.+)", re.IGNORECASE)
"""A legacy per-tag column: `resource_tags_user_<key>` (Athena) or `resourceTags/user:<key>` (CSV)."""
USER_TAG_KEY = re.compile(r"user[:_](?P<key>.+)")
"""A user-defined tag's key in CUR 2.0's `resource_tags` map."""
CHARGE_CATEGORIES = {
    "usage": "Usage",
    "discountedusage": "Usage",
    "savingsplancoveredusage": "Usage",
    "savingsplannegation": "Usage",
    "fee": "Purchase",
    "rifee": "Purchase",
    "savingsplanrecurringfee": "Purchase",
    "savingsplanupfrontfee": "Purchase",
    "credit": "Credit",
    "refund": "Credit",
    "bundleddiscount": "Credit",
    "edpdiscount": "Credit",
    "privateratediscount": "Credit",
    "distributordiscount": "Credit",
    "sppdiscount": "Credit",
    "tax": "Tax",
}


@dataclass(frozen=True)
class AwsCurLayout:
    """Cost and Usage Report columns → the fields of a charge group."""

    cost_column: str = DEFAULT_COST_COLUMN
    by_invoice_month: bool = False
    product_by_sku: bool = False
    source: str = SOURCE
    description: str = "AWS Cost and Usage Report"

    def missing_columns(self, file: ExportFile) -> list[str]:
        return [name for name in (self.cost_column, *REQUIRED_COLUMNS) if _column(file, name) is None]

    def fields(self, file: ExportFile) -> str:
        sku = _text(file, SKU_COLUMN) if self.product_by_sku else "NULL::VARCHAR"
        return ", ".join(
            (
                f"'{PROVIDER}' AS provider",
                f"coalesce({_text(file, PRODUCT_NAME_COLUMN)}, {_text(file, PRODUCT_CODE_COLUMN)}) "
                "AS service_name",
                "NULL::VARCHAR AS service_category",
                f"{self._charge_category(file)} AS charge_category",
                f"{sku} AS sku_id",
                f"{_text(file, ACCOUNT_ID_COLUMN)} AS sub_account_id",
                f"{_text(file, ACCOUNT_NAME_COLUMN)} AS sub_account_name",
                "NULL::VARCHAR AS resource_group",
                f"{self._tags(file)} AS tags",
                f"{self._currency(file)} AS currency",
                f"{_text(file, UNIT_COLUMN)} AS pricing_unit",
                f"{_number(file, self.cost_column)} AS cost",
                f"{_number(file, QUANTITY_COLUMN)} AS pricing_quantity",
                f"{self._period(file)} AS period",
            )
        )

    def problem(self, file: ExportFile) -> str:
        cost = self.cost_column
        currency = self._currency(file)
        period_column = self._period_columns(file)[0]
        quantity = _text(file, QUANTITY_COLUMN)
        checks = [
            (f"{_text(file, cost)} IS NULL", f"'{cost} is empty'"),
            (f"{_number(file, cost)} IS NULL", f"'{cost} ' || {_text(file, cost)} || ' is not a number'"),
            (
                f"coalesce(NOT regexp_full_match({currency}, '[A-Z]{{3}}'), true)",
                f"'{CURRENCY_COLUMN} ' || coalesce({currency}, '(empty)') || ' is not an ISO 4217 code'",
            ),
            (
                f"{self._period(file)} IS NULL",
                f"'{period_column} ' || coalesce({_text(file, period_column)}, '(empty)') "
                "|| ' is not a date'",
            ),
            (
                f"{quantity} IS NOT NULL AND {_number(file, QUANTITY_COLUMN)} IS NULL",
                f"'{QUANTITY_COLUMN} ' || {quantity} || ' is not a number'",
            ),
        ]
        return problem_case(checks)

    tags_are_json = False

    def ledger_cost_column(self, file: ExportFile) -> str | None:
        return _column(file, self.cost_column)

    def parse_tags(self, raw: str | None) -> dict[str, str]:
        """User-defined tags, keyed without their `user_` prefix (CUR 2.0's map keeps it)."""
        tags: dict[str, str] = {}
        for key, value in parse_tags(raw).items():
            user_key = USER_TAG_KEY.fullmatch(key)
            if user_key:
                tags[user_key["key"]] = value
        return tags

    def _period_columns(self, file: ExportFile) -> list[str]:
        """The month columns (CUR 2.0 names), the one that decides first."""
        if self.by_invoice_month and _column(file, INVOICE_MONTH_COLUMN) is not None:
            return [INVOICE_MONTH_COLUMN, USAGE_START_COLUMN]
        return [USAGE_START_COLUMN]

    def _period(self, file: ExportFile) -> str:
        return f"coalesce({', '.join(_timestamp(file, name) for name in self._period_columns(file))})"

    @staticmethod
    def _currency(file: ExportFile) -> str:
        if _column(file, CURRENCY_COLUMN) is None:
            return f"'{DEFAULT_CURRENCY}'"
        return f"upper({_text(file, CURRENCY_COLUMN)})"

    @staticmethod
    def _tags(file: ExportFile) -> str:
        """The row's tags as JSON object text: CUR 2.0's map, else the legacy per-tag columns."""
        if _column(file, TAGS_COLUMN) is not None:
            return _text(file, TAGS_COLUMN)
        pairs = _tag_pairs(file)
        if not pairs:
            return "NULL::VARCHAR"
        return f"CAST(json_object({', '.join(pairs)}) AS VARCHAR)"

    @staticmethod
    def _charge_category(file: ExportFile) -> str:
        line_item_type = _text(file, LINE_ITEM_TYPE_COLUMN)
        cases = " ".join(f"WHEN '{key}' THEN '{value}'" for key, value in CHARGE_CATEGORIES.items())
        return f"CASE lower({line_item_type}) {cases} ELSE coalesce({line_item_type}, 'Usage') END"


def _tag_pairs(file: ExportFile) -> list[str]:
    """`'user_<key>', <column>` for each legacy per-tag column."""
    return [
        f"{literal('user_' + match['key'])}, {file.text(name)}"
        for name in file.columns
        if (match := USER_TAG_COLUMN.fullmatch(name))
    ]


def _squeezed(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


def _column(file: ExportFile, name: str) -> str | None:
    """The file's own spelling of a CUR 2.0 column name (snake case, camel case or crawler's)."""
    wanted = _squeezed(name)
    return next((column for column in file.columns if _squeezed(column) == wanted), None)


def _text(file: ExportFile, name: str) -> str:
    column = _column(file, name)
    return file.text(column) if column is not None else "NULL::VARCHAR"


def _number(file: ExportFile, name: str) -> str:
    return file.number(_column(file, name) or name)


def _timestamp(file: ExportFile, name: str) -> str:
    return file.timestamp(_column(file, name) or name)
