"""Why a record could not become a relevé: a small, stable set of codes.

Every reject carries one of these codes (`reason_code`) next to its details (`reason`: the variable
part, the class name, the field, the value as written), so rejects can be counted, filtered and
compared month to month by cause, whatever the wording of their details. The codes are data in the
mart too (`finops.reject_reason`, sql/016_reject_reason_codes.sql, with the same descriptions): a
reject row cannot hold a code the table does not list. Adding a code means adding it here and in a
new migration.
"""

from __future__ import annotations

from enum import StrEnum


class RejectReason(StrEnum):
    """The cause of a reject. Values are the codes stored in `finops.releve_reject.reason_code`."""

    NO_RATE = "NO_RATE"
    UNKNOWN_PRODUCT = "UNKNOWN_PRODUCT"
    MALFORMED_RECORD = "MALFORMED_RECORD"
    NEGATIVE_QUANTITY = "NEGATIVE_QUANTITY"
    INVALID_QUANTITY = "INVALID_QUANTITY"
    UNKNOWN_CI_CLASS = "UNKNOWN_CI_CLASS"
    MISSING_CI_ID = "MISSING_CI_ID"
    DUPLICATE_DOCUMENT = "DUPLICATE_DOCUMENT"
    UNDATED_DOCUMENT = "UNDATED_DOCUMENT"
    MALFORMED_ROW = "MALFORMED_ROW"
    MISSING_COST = "MISSING_COST"
    INVALID_AMOUNT = "INVALID_AMOUNT"
    AMOUNT_OUT_OF_RANGE = "AMOUNT_OUT_OF_RANGE"
    INVALID_CURRENCY = "INVALID_CURRENCY"
    INVALID_PERIOD = "INVALID_PERIOD"
    NO_EXCHANGE_RATE = "NO_EXCHANGE_RATE"
    LEGACY_UNCLASSIFIED = "LEGACY_UNCLASSIFIED"


DESCRIPTIONS: dict[RejectReason, str] = {
    RejectReason.NO_RATE: "no rate card of the product is valid in the month",
    RejectReason.UNKNOWN_PRODUCT: "a measure of a product neither in the catalog nor in the source's "
    "product mapping",
    RejectReason.MALFORMED_RECORD: "a source entry (API record, document, report row) missing a field or "
    "holding a value of the wrong type",
    RejectReason.NEGATIVE_QUANTITY: "a quantity or usage below zero, which has no meaning for usage",
    RejectReason.INVALID_QUANTITY: "a numeric field that is missing, not a number, NaN, infinite or "
    "implausibly large",
    RejectReason.UNKNOWN_CI_CLASS: "a CMDB document of a class that is missing or not billable "
    "(not in cmdb_classes.csv)",
    RejectReason.MISSING_CI_ID: "a CMDB document without sys_id, which cannot be tied to a CI",
    RejectReason.DUPLICATE_DOCUMENT: "the same CI more than once in one dump (the first document counts)",
    RejectReason.UNDATED_DOCUMENT: "a CMDB document whose dump time (_ingested_at) cannot be read",
    RejectReason.MALFORMED_ROW: "a bill file line that cannot be split against the header (ragged, "
    "unclosed quote, bad encoding, NUL byte, cut at the end of the file)",
    RejectReason.MISSING_COST: "a bill row or charge without a cost",
    RejectReason.INVALID_AMOUNT: "a cost, credit or quantity of a bill that is not a number",
    RejectReason.AMOUNT_OUT_OF_RANGE: "an amount beyond what one line item may carry",
    RejectReason.INVALID_CURRENCY: "a billing currency that is missing or not an ISO 4217 code",
    RejectReason.INVALID_PERIOD: "a charge date that is missing, unreadable or outside the plausible "
    "window or month",
    RejectReason.NO_EXCHANGE_RATE: "a charge in a currency the month has no exchange rate for",
    RejectReason.LEGACY_UNCLASSIFIED: "a reject stored before reason codes existed whose reason matched "
    "no code",
}
