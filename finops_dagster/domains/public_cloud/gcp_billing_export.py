"""The Google Cloud billing export (BigQuery's standard usage cost table), as flattened files.

BigQuery's nested records arrive as dotted column names (`service.description`, `project.id`) and
its repeated records (`labels`, `project.labels`, `credits`) as Python-repr lists with single
quotes, not JSON. A row's net cost is `cost` plus its credits' amounts (credits are negative).
Month: `usage_start_time` (consumption), or `invoice.month` (yyyymm) with
FINOPS_FOCUS_MONTH_COLUMN=BillingPeriodStart, the same choice as for FOCUS exports.
`cost_type` becomes the charge category: regular → Usage, tax → Tax, adjustment and rounding
error → Adjustment. Google Cloud's own FOCUS export is read as a FOCUS export.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass

from finops_dagster.domains.public_cloud.duckdb_columns import DECIMAL, literal
from finops_dagster.domains.public_cloud.export_reader import ExportFile, problem_case

SOURCE = "gcp_billing_export"
PROVIDER = "Google Cloud"
REQUIRED_COLUMNS = (
    "service.description",
    "cost",
    "currency",
    "usage_start_time",
    "invoice.month",
    "project.id",
    "labels",
    "credits",
)
CREDIT_AMOUNTS = r"""['"]amount['"]\s*:\s*([^,}\s]+)"""
"""Each credit's amount in the list of credits as text (Python repr, or JSON)."""
CREDIT_KEYS = r"""['"]amount['"]\s*:"""
"""Each credit's amount key: as many amounts as keys must be read, or the row is a reject."""
LABEL_SEPARATOR = "\x1f"


@dataclass(frozen=True)
class GcpBillingExportLayout:
    """Flattened billing export columns → the fields of a charge group."""

    by_invoice_month: bool = False
    product_by_sku: bool = False
    source: str = SOURCE
    description: str = "Google Cloud billing export"

    def missing_columns(self, file: ExportFile) -> list[str]:
        return [name for name in REQUIRED_COLUMNS if not file.has(name)]

    def fields(self, file: ExportFile) -> str:
        return ", ".join(
            (
                f"'{PROVIDER}' AS provider",
                f"{file.text('service.description')} AS service_name",
                "NULL::VARCHAR AS service_category",
                f"{self._charge_category(file)} AS charge_category",
                f"{file.text('sku.id') if self.product_by_sku else 'NULL::VARCHAR'} AS sku_id",
                f"{file.text('project.id')} AS sub_account_id",
                f"{file.text('project.name')} AS sub_account_name",
                "NULL::VARCHAR AS resource_group",
                f"concat_ws(chr(31), {file.text('project.labels')}, {file.text('labels')}) AS tags",
                f"upper({file.text('currency')}) AS currency",
                f"{file.text('usage.pricing_unit')} AS pricing_unit",
                f"{file.number('cost')} + coalesce({self._credits(file)}, 0) AS cost",
                f"{file.number('usage.amount_in_pricing_units')} AS pricing_quantity",
                f"{self._period(file)} AS period",
            )
        )

    def problem(self, file: ExportFile) -> str:
        currency = file.text("currency")
        credits = file.text("credits")
        checks = [
            (f"{file.text('cost')} IS NULL", "'cost is empty'"),
            (f"{file.number('cost')} IS NULL", f"'cost ' || {file.text('cost')} || ' is not a number'"),
            (
                f"{self._credits(file)} IS NULL AND {credits} IS NOT NULL AND {credits} <> '[]'",
                f"'credits ' || {credits} || ' has an amount that is not a number'",
            ),
            (
                f"coalesce(NOT regexp_full_match(upper({currency}), '[A-Z]{{3}}'), true)",
                f"'currency ' || coalesce({currency}, '(empty)') || ' is not an ISO 4217 code'",
            ),
            (
                f"{self._period(file)} IS NULL",
                f"'{self._period_column} ' || coalesce({file.text(self._period_column)}, '(empty)') "
                "|| ' is not a date'",
            ),
        ]
        return problem_case(checks)

    tags_are_json = False

    def ledger_cost_column(self, file: ExportFile) -> str | None:
        """None: a row's cost is `cost` plus its credits, so the ledger balances its rows only."""
        return None

    def parse_tags(self, raw: str | None) -> dict[str, str]:
        """Project labels, then the resource's labels (which win): `[{'key': …, 'value': …}]` lists."""
        tags: dict[str, str] = {}
        for part in (raw or "").split(LABEL_SEPARATOR):
            tags.update(_labels(part))
        return tags

    @property
    def _period_column(self) -> str:
        return "invoice.month" if self.by_invoice_month else "usage_start_time"

    def _period(self, file: ExportFile) -> str:
        if self.by_invoice_month:
            month = file.text("invoice.month")
            return f"TRY_CAST(strptime({month} || '01', '%Y%m%d') AS TIMESTAMP)"
        return file.timestamp("usage_start_time")

    @staticmethod
    def _credits(file: ExportFile) -> str:
        """Sum of the credits' amounts; NULL when one of them cannot be read. Flattened files hold the
        list as text (Python repr or JSON); Parquet keeps it a list of records."""
        if file.columns["credits"].upper().endswith("[]"):
            amounts = f'list_transform("credits", lambda credit: TRY_CAST(credit.amount AS {DECIMAL}))'
            expected = 'len("credits")'
        else:
            text = file.text("credits")
            amounts = (
                f"list_transform(regexp_extract_all({text}, {literal(CREDIT_AMOUNTS)}, 1), "
                f"lambda amount: TRY_CAST(amount AS {DECIMAL}))"
            )
            expected = f"len(regexp_extract_all(coalesce({text}, ''), {literal(CREDIT_KEYS)}))"
        return (
            f"CASE WHEN coalesce(list_count({amounts}), 0) = coalesce({expected}, 0) "
            f"THEN coalesce(list_sum({amounts}), 0) ELSE NULL END"
        )

    @staticmethod
    def _charge_category(file: ExportFile) -> str:
        cost_type = f"lower({file.text('cost_type')})"
        return (
            f"CASE {cost_type} WHEN 'regular' THEN 'Usage' WHEN 'tax' THEN 'Tax' "
            f"WHEN 'adjustment' THEN 'Adjustment' WHEN 'rounding error' THEN 'Adjustment' "
            f"ELSE coalesce({file.text('cost_type')}, 'Usage') END"
        )


def _labels(text: str) -> dict[str, str]:
    """`[{'key': …, 'value': …}]` as BigQuery's flattened rows write it (Python repr), or as JSON."""
    text = text.strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return {}
    if not isinstance(value, list):
        return {}
    return {
        str(item["key"]): str(item.get("value") or "")
        for item in value
        if isinstance(item, dict) and item.get("key") is not None
    }
