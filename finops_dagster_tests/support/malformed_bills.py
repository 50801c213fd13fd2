"""Malformed bills of every kind (FOCUS, Azure cost details, AWS CUR; CSV or gzipped CSV), each
with good rows whose costs are known and one malformed element, and what reading it must give.

The bad-input tests hold the reader to each case's outcome; the reject-code tests hold each case's
reject to its stable reason code.
"""

from __future__ import annotations

import datetime as dt
import gzip
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from finops_dagster.domains.public_cloud.aws_cur import AwsCurLayout
from finops_dagster.domains.public_cloud.azure_cost_details import AzureCostDetailsLayout
from finops_dagster.domains.public_cloud.export_reader import ExportLayout, ExportReader
from finops_dagster.domains.public_cloud.focus import FocusLayout

MONTH = dt.date(2026, 10, 1)
NOW = dt.datetime(2026, 11, 20, 12, 0)
GOOD = ("1.25", "2.5", "4")
LIMIT = Decimal(10) ** 18
"""A reject's cost column holds amounts below this; a larger one stays in its payload only."""
HEADER = (
    "BilledCost,EffectiveCost,BillingCurrency,BillingPeriodStart,ChargePeriodStart,ChargeCategory,"
    "ServiceCategory,ServiceName,ProviderName"
)
COST_LAST_HEADER = (
    "BilledCost,BillingCurrency,BillingPeriodStart,ChargePeriodStart,ChargeCategory,"
    "ServiceCategory,ServiceName,ProviderName,EffectiveCost"
)
AZURE_HEADER = "SubscriptionId,Date,Cost,BillingCurrency,MeterCategory,Tags,ChargeType"
CUR_HEADER = (
    "line_item_usage_start_date,line_item_unblended_cost,line_item_currency_code,line_item_product_code,"
    "line_item_usage_account_id"
)


def focus(
    cost: str,
    *,
    charged: str = "2026-10-03T10:00:00Z",
    billed: str = "2026-10-01T00:00:00Z",
    currency: str = "EUR",
    service: str = "VM",
) -> str:
    return f"{cost},{cost},{currency},{billed},{charged},Usage,Compute,{service},AWS"


def cost_last(cost: str) -> str:
    return f"{cost},EUR,2026-10-01T00:00:00Z,2026-10-03T10:00:00Z,Usage,Compute,VM,AWS,{cost}"


def azure(cost: str, *, date: str = "10/03/2026", currency: str = "EUR") -> str:
    return f'sub-1,{date},{cost},{currency},Storage,"""app"": ""x""",Usage'


def cur(cost: str, *, start: str = "2026-10-03T00:00:00Z") -> str:
    return f"{start},{cost},EUR,AmazonEC2,111122223333"


@dataclass(frozen=True)
class Bill:
    """What a case writes: the header, the good rows (costs GOOD) and the malformed text after them."""

    header: str = HEADER
    row: Callable[[str], str] = focus
    bad: str = ""
    """Lines written after the good rows, as they are (line breaks included)."""
    layout: ExportLayout = field(default_factory=FocusLayout)
    encoding_damage: bytes | None = None
    """Bytes written in place of the text `\\x01` in the file (to put invalid UTF-8 or NUL in a field)."""
    ending: str = "\n"


@dataclass(frozen=True)
class Expected:
    rejects: tuple[tuple[str, Decimal | None], ...] = ()
    """(reason text, the reject's cost) for each rejected row."""
    failure: str | None = None
    """For a broken file: what the error says (after the file's name)."""
    published: tuple[str, ...] = GOOD


def csv_bytes(bill: Bill) -> bytes:
    text = bill.header + "\n" + "".join(bill.row(cost) + "\n" for cost in GOOD) + bill.bad
    data = text.encode("utf-8")
    if bill.encoding_damage is not None:
        data = data.replace(b"\x01", bill.encoding_damage)
    return data


def write(path: Path, bill: Bill, kind: str) -> Path:
    data = csv_bytes(bill)
    if kind == "gz":
        path = path.with_suffix(".csv.gz")
        path.write_bytes(gzip.compress(data))
    else:
        path = path.with_suffix(".csv")
        path.write_bytes(data)
    return path


def reject(reason: str, cost: str | None = None) -> tuple[tuple[str, Decimal | None], ...]:
    return ((reason, None if cost is None else Decimal(cost)),)


CASES: dict[str, tuple[Bill, Expected]] = {
    "digit separator": (
        Bill(bad=focus("1_000") + "\n"),
        Expected(reject("EffectiveCost 1_000 is not a number")),
    ),
    "thousands comma": (
        Bill(bad=focus('"1,000"') + "\n"),
        Expected(reject("EffectiveCost 1,000 is not a number")),
    ),
    "NaN text": (Bill(bad=focus("NaN") + "\n"), Expected(reject("EffectiveCost NaN is not a number"))),
    "Infinity text": (
        Bill(bad=focus("Infinity") + "\n"),
        Expected(reject("EffectiveCost Infinity is not a number")),
    ),
    "-inf text": (Bill(bad=focus("-inf") + "\n"), Expected(reject("EffectiveCost -inf is not a number"))),
    "empty cost": (Bill(bad=focus("") + "\n"), Expected(reject("EffectiveCost is empty"))),
    "hex cost": (Bill(bad=focus("0x10") + "\n"), Expected(reject("EffectiveCost 0x10 is not a number"))),
    "epoch": (
        Bill(bad=focus("5", charged="epoch") + "\n"),
        Expected(reject("ChargePeriodStart epoch is not an ISO 8601 date", "5")),
    ),
    "infinity": (
        Bill(bad=focus("5", charged="infinity") + "\n"),
        Expected(reject("ChargePeriodStart infinity is not an ISO 8601 date", "5")),
    ),
    "-infinity": (
        Bill(bad=focus("5", charged="-infinity") + "\n"),
        Expected(reject("ChargePeriodStart -infinity is not an ISO 8601 date", "5")),
    ),
    "two-digit US year": (
        Bill(bad=focus("5", charged="4/1/25") + "\n"),
        Expected(reject("ChargePeriodStart 4/1/25 is not an ISO 8601 date", "5")),
    ),
    "1970": (
        Bill(bad=focus("5", charged="1970-01-01T00:00:00Z", billed="1970-01-01T00:00:00Z") + "\n"),
        Expected(reject("date 1970-01-01 00:00:00 is outside the plausible window", "5")),
    ),
    "year 9999": (
        Bill(bad=focus("5", charged="9999-12-31T00:00:00Z", billed="9999-12-01T00:00:00Z") + "\n"),
        Expected(reject("date 9999-12-31 00:00:00 is outside the plausible window", "5")),
    ),
    "year 4": (
        Bill(bad=focus("5", charged="0004-01-25T00:00:00Z", billed="0004-01-01T00:00:00Z") + "\n"),
        Expected(reject("date 0004-01-25 00:00:00 is outside the plausible window", "5")),
    ),
    "after next month": (
        Bill(bad=focus("5", charged="2027-03-02T00:00:00Z", billed="2027-03-01T00:00:00Z") + "\n"),
        Expected(reject("date 2027-03-02 00:00:00 is outside the plausible window", "5")),
    ),
    "far from its billing period": (
        Bill(bad=focus("5", billed="2024-02-01T00:00:00Z") + "\n"),
        Expected(reject("is more than a year from BillingPeriodStart", "5")),
    ),
    "charge period empty": (
        Bill(bad=focus("5", charged="") + "\n"),
        Expected(reject("ChargePeriodStart (empty) is not an ISO 8601 date", "5")),
    ),
    "NUL byte": (
        Bill(bad=focus("5", service="V\x01M") + "\n", encoding_damage=b"\x00"),
        Expected(reject("the row holds a NUL byte", "5")),
    ),
    "not UTF-8": (
        Bill(bad=focus("5", service="V\x01M") + "\n", encoding_damage=b"\xff"),
        Expected(reject("bytes that are not UTF-8")),
    ),
    "fewer columns": (Bill(bad="5,5,EUR,2026-10-01\n"), Expected(reject("fewer columns than the header"))),
    "more columns": (Bill(bad=focus("5") + ",extra\n"), Expected(reject("more columns than the header"))),
    "cut inside the last row": (
        Bill(bad=focus("123.45")[:3], ending=""),
        Expected(reject("fewer columns than the header")),
    ),
    "cut inside the last value": (
        Bill(header=COST_LAST_HEADER, row=cost_last, bad=cost_last("123.45")[:-4]),
        Expected(reject("the file ends inside this row")),
    ),
    "a last line without its break, whole": (
        Bill(header=COST_LAST_HEADER, row=cost_last, bad=cost_last("9")),
        Expected(reject("the file ends inside this row")),
    ),
    "beyond a line's limit": (
        Bill(bad=focus("12345678901") + "\n"),
        Expected(reject("is beyond what one line item may carry", "12345678901")),
    ),
    "beyond the reject column": (
        Bill(bad=focus("1e19") + "\n"),
        Expected(reject("is beyond what one line item may carry", "1e19")),
    ),
    "beyond the engine": (
        Bill(bad=focus("1e25") + "\n"),
        Expected(reject("EffectiveCost 1e25 is not a number")),
    ),
    "currency not ISO": (
        Bill(bad=focus("5", currency="US Dollar") + "\n"),
        Expected(reject("billing currency US Dollar is not an ISO 4217 code", "5")),
    ),
    "currency empty": (
        Bill(bad=focus("5", currency="") + "\n"),
        Expected(reject("billing currency (empty) is not an ISO 4217 code", "5")),
    ),
    "blank lines": (Bill(bad="\n\n" + focus("5") + "\n\n"), Expected(published=(*GOOD, "5"))),
    "unclosed quote": (
        Bill(bad=focus('"5') + "\n"),
        Expected(reject("a value holds a quote it does not close")),
    ),
    "duplicated cost column": (
        Bill(header=HEADER + ",EffectiveCost", row=lambda cost: focus(cost) + ",99"),
        Expected(failure="the header names column 'EffectiveCost' twice"),
    ),
    "duplicated column in another case": (
        Bill(header=HEADER + ",effectivecost", row=lambda cost: focus(cost) + ",99"),
        Expected(failure="the header names column 'effectivecost' twice"),
    ),
    "Azure two-digit year": (
        Bill(
            header=AZURE_HEADER,
            row=azure,
            bad=azure("5", date="4/1/25") + "\n",
            layout=AzureCostDetailsLayout(),
        ),
        Expected(reject("Date 4/1/25 is not a date", "5")),
    ),
    "Azure epoch": (
        Bill(
            header=AZURE_HEADER,
            row=azure,
            bad=azure("5", date="epoch") + "\n",
            layout=AzureCostDetailsLayout(),
        ),
        Expected(reject("Date epoch is not a date", "5")),
    ),
    "Azure digit separator": (
        Bill(header=AZURE_HEADER, row=azure, bad=azure("1_000") + "\n", layout=AzureCostDetailsLayout()),
        Expected(reject("Cost 1_000 is not a number")),
    ),
    "CUR infinity": (
        Bill(header=CUR_HEADER, row=cur, bad=cur("5", start="infinity") + "\n", layout=AwsCurLayout()),
        Expected(reject("line_item_usage_start_date infinity is not a date", "5")),
    ),
    "CUR ragged": (
        Bill(header=CUR_HEADER, row=cur, bad="2026-10-03T00:00:00Z,5\n", layout=AwsCurLayout()),
        Expected(reject("fewer columns than the header")),
    ),
}


def read(path: Path, layout: ExportLayout) -> Any:
    return ExportReader(layout, [str(path)], "TEST_PATHS").read_month(MONTH, NOW)
