"""FOCUS bills written by hand: a header, rows of known cost, as CSV or gzipped CSV.

The end-to-end and ledger tests of the public_cloud domain write their bills the same way.
"""

from __future__ import annotations

import gzip
from pathlib import Path

FOCUS_HEADER = (
    "BilledCost,EffectiveCost,BillingCurrency,BillingPeriodStart,ChargePeriodStart,ChargeCategory,"
    "ServiceCategory,ServiceName,ProviderName,SubAccountId,SubAccountName,PricingQuantity,PricingUnit,Tags,"
    "x_Extra"
)


def write_focus(path: Path, rows: list[str], *, header: str = FOCUS_HEADER, bom: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = ("\ufeff" if bom else "") + header + "\n" + "".join(row + "\n" for row in rows)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode("utf-8")))
    else:
        path.write_text(text, encoding="utf-8")
    return path


def focus_row(
    cost: str,
    *,
    month: str = "2026-10",
    currency: str = "EUR",
    service: str = "Virtual Machines",
    category: str = "Compute",
    charge: str = "Usage",
    provider: str = "Microsoft",
    sub_account: str = "sub-1",
    sub_account_name: str = "shared",
    tags: str = "NULL",
    quantity: str = "1",
    unit: str = "Hours",
) -> str:
    return ",".join(
        (
            cost,
            cost,
            currency,
            f"{month}-01 00:00:00",
            f"{month}-03 10:00:00",
            charge,
            category,
            service,
            provider,
            sub_account,
            sub_account_name,
            quantity,
            unit,
            tags,
            "ignored",
        )
    )
