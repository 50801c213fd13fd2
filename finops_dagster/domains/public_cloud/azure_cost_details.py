"""Azure Cost Management cost-details exports (actual or amortised cost), as CSV or Parquet files.

Three generations of the file name the same things differently, and one layout reads them all,
taking for each field the first of its column names the file has (names compared without case:
the newer exports write `costInBillingCurrency`, the older ones `CostInBillingCurrency`):

- Enterprise Agreement: `Cost`, `BillingCurrency`, `Date` as MM/DD/YYYY, `MeterCategory`;
- Microsoft Customer Agreement ("version 2"): `CostInBillingCurrency`, `BillingCurrencyCode` or
  `BillingCurrency`, `Date` as ISO date;
- legacy usage details: `PreTaxCost`, `Currency`, `UsageDateTime`, `SubscriptionGuid`,
  `UsageQuantity`.

Whether a file holds actual or amortised cost is the export's choice: a location must hold one kind
only, or its months count twice. Month: the line item's date (consumption), or its
`BillingPeriodStartDate` (the invoice's month) with FINOPS_FOCUS_MONTH_COLUMN=BillingPeriodStart
when the file has that column; a row whose chosen column is empty falls back to its date.
`Tags` is a JSON object, written without its braces by EA and MCA exports. `ChargeType` becomes the
charge category: Usage, UnusedReservation and UnusedSavingsPlan → Usage, Purchase → Purchase,
Refund → Credit, Tax → Tax, RoundingAdjustment → Adjustment; an empty one is Usage.

A row is a reject, with its reason, when its cost is empty or not a number, its billing currency
is not an ISO 4217 code, its date is not a date, or its quantity is not a number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from finops_dagster.domains.public_cloud.export_reader import ExportFile, problem_case
from finops_dagster.domains.public_cloud.tags import parse_tags

SOURCE = "azure_cost_details"
PROVIDER = "Microsoft"
COST_COLUMNS = ("CostInBillingCurrency", "Cost", "PreTaxCost")
CURRENCY_COLUMNS = ("BillingCurrencyCode", "BillingCurrency", "Currency")
DATE_COLUMNS = ("Date", "UsageDateTime", "UsageDate")
INVOICE_MONTH_COLUMN = "BillingPeriodStartDate"
SERVICE_COLUMNS = ("MeterCategory", "ServiceName", "ConsumedService")
SUBSCRIPTION_ID_COLUMNS = ("SubscriptionId", "SubscriptionGuid")
SUBSCRIPTION_NAME_COLUMNS = ("SubscriptionName",)
RESOURCE_GROUP_COLUMNS = ("ResourceGroup", "ResourceGroupName")
QUANTITY_COLUMNS = ("Quantity", "UsageQuantity")
UNIT_COLUMNS = ("UnitOfMeasure",)
SKU_COLUMNS = ("MeterId",)
TAGS_COLUMNS = ("Tags",)
REQUIRED = (COST_COLUMNS, CURRENCY_COLUMNS, DATE_COLUMNS, SUBSCRIPTION_ID_COLUMNS, TAGS_COLUMNS)
"""Each a choice: the file needs one of these names."""
DATE_FORMATS = ("%m/%d/%Y", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %I:%M:%S %p", "%Y%m%d")
"""Dates DuckDB's ISO reading does not take: EA's MM/DD/YYYY, the query API's yyyymmdd."""
DATE_SHAPES = r"[0-9]{1,2}/[0-9]{1,2}/[0-9]{4}( .*)?|[0-9]{8}"
"""What DATE_FORMATS may read: a four-digit year only (`4/1/25` is not a date: its year would be 25)."""
CHARGE_CATEGORIES = {
    "usage": "Usage",
    "unusedreservation": "Usage",
    "unusedsavingsplan": "Usage",
    "purchase": "Purchase",
    "refund": "Credit",
    "tax": "Tax",
    "roundingadjustment": "Adjustment",
}


@dataclass(frozen=True)
class AzureCostDetailsLayout:
    """Cost-details columns (EA, MCA or legacy names) → the fields of a charge group."""

    by_invoice_month: bool = False
    product_by_sku: bool = False
    source: str = SOURCE
    description: str = "Azure cost-details export"

    def missing_columns(self, file: ExportFile) -> list[str]:
        return [" or ".join(names) for names in REQUIRED if not _present(file, names)]

    def fields(self, file: ExportFile) -> str:
        cost = _present(file, COST_COLUMNS)[0]
        sku = file.text(*_present(file, SKU_COLUMNS)) if self.product_by_sku else "NULL::VARCHAR"
        return ", ".join(
            (
                f"'{PROVIDER}' AS provider",
                f"{_text(file, SERVICE_COLUMNS)} AS service_name",
                "NULL::VARCHAR AS service_category",
                f"{self._charge_category(file)} AS charge_category",
                f"{sku} AS sku_id",
                f"{_text(file, SUBSCRIPTION_ID_COLUMNS)} AS sub_account_id",
                f"{_text(file, SUBSCRIPTION_NAME_COLUMNS)} AS sub_account_name",
                f"{_text(file, RESOURCE_GROUP_COLUMNS)} AS resource_group",
                f"{_text(file, TAGS_COLUMNS)} AS tags",
                f"upper({_text(file, CURRENCY_COLUMNS)}) AS currency",
                f"{_text(file, UNIT_COLUMNS)} AS pricing_unit",
                f"{file.number(cost)} AS cost",
                f"{_number(file, QUANTITY_COLUMNS)} AS pricing_quantity",
                f"{self._period(file)} AS period",
            )
        )

    def problem(self, file: ExportFile) -> str:
        cost = _present(file, COST_COLUMNS)[0]
        currency_name = _present(file, CURRENCY_COLUMNS)[0]
        currency = _text(file, CURRENCY_COLUMNS)
        period_name = self._period_columns(file)[0]
        quantity = _present(file, QUANTITY_COLUMNS)
        checks = [
            (f"{file.text(cost)} IS NULL", f"'{cost} is empty'"),
            (f"{file.number(cost)} IS NULL", f"'{cost} ' || {file.text(cost)} || ' is not a number'"),
            (
                f"coalesce(NOT regexp_full_match(upper({currency}), '[A-Z]{{3}}'), true)",
                f"'{currency_name} ' || coalesce({currency}, '(empty)') || ' is not an ISO 4217 code'",
            ),
            (
                f"{self._period(file)} IS NULL",
                f"'{period_name} ' || coalesce({file.text(period_name)}, '(empty)') || ' is not a date'",
            ),
        ]
        if quantity:
            checks.append(
                (
                    f"{file.text(quantity[0])} IS NOT NULL AND {file.number(quantity[0])} IS NULL",
                    f"'{quantity[0]} ' || {file.text(quantity[0])} || ' is not a number'",
                )
            )
        return problem_case(checks)

    tags_are_json = True

    def parse_tags(self, raw: str | None) -> dict[str, str]:
        return parse_tags(raw)

    def ledger_cost_column(self, file: ExportFile) -> str | None:
        present = _present(file, COST_COLUMNS)
        return present[0] if present else None

    def _period_columns(self, file: ExportFile) -> list[str]:
        """The file's month columns, the one that decides first."""
        dates = _present(file, DATE_COLUMNS)[:1]
        invoice = _present(file, (INVOICE_MONTH_COLUMN,))
        return invoice + dates if self.by_invoice_month and invoice else dates

    def _period(self, file: ExportFile) -> str:
        return f"coalesce({', '.join(_date(file, name) for name in self._period_columns(file))})"

    @staticmethod
    def _charge_category(file: ExportFile) -> str:
        charge_type = _text(file, ("ChargeType",))
        cases = " ".join(f"WHEN '{key}' THEN '{value}'" for key, value in CHARGE_CATEGORIES.items())
        return f"CASE lower({charge_type}) {cases} ELSE coalesce({charge_type}, 'Usage') END"


def _present(file: ExportFile, names: Sequence[str]) -> list[str]:
    """The file's own spelling of each of these names it has (compared without case), in this order."""
    spelled = {column.lower(): column for column in file.columns}
    return [spelled[name.lower()] for name in names if name.lower() in spelled]


def _text(file: ExportFile, names: Sequence[str]) -> str:
    return file.text(*_present(file, names))


def _number(file: ExportFile, names: Sequence[str]) -> str:
    present = _present(file, names)
    return file.number(present[0]) if present else file.number(names[0])


def _date(file: ExportFile, name: str) -> str:
    """A timestamp from an ISO date or time, else from one of DATE_FORMATS."""
    formats = ", ".join(f"'{fmt}'" for fmt in DATE_FORMATS)
    text = file.text(name)
    shaped = f"CASE WHEN regexp_full_match({text}, '{DATE_SHAPES}') THEN {text} END"
    return f"coalesce({file.timestamp(name)}, try_strptime({shaped}, [{formats}]))"
