"""Pricing a month's quantity with the rate card valid for the month: a relevé, or a reject saying why not.

One place for every internally priced domain, so a price is applied, rounded and refused the same way.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from finops_dagster.reference.snapshot import ReferenceSnapshot
from finops_dagster.reject_reasons import RejectReason
from finops_dagster.releve import Reject, Releve, quantize_money


@dataclass(frozen=True)
class PricingRun:
    """What every relevé of one domain-month in one run shares."""

    snapshot: ReferenceSnapshot
    domain_id: str
    month: dt.date
    run_id: str
    computed_at: dt.datetime


def price(
    run: PricingRun, *, application: str, product_id: str, source: str, quantity: Decimal, records: int
) -> Releve | Reject:
    """The relevé of `quantity` (already at the mart's scale), or a reject when no rate is valid."""
    product = run.snapshot.products[product_id]
    rate = run.snapshot.rate_for(product_id, run.month)
    if rate is None:
        return Reject(
            domain_id=run.domain_id,
            period_month=run.month,
            run_id=run.run_id,
            source=source,
            source_ref=f"{application} / {product_id}",
            reason_code=RejectReason.NO_RATE,
            reason=f"no rate card for {product_id} valid in {run.month:%Y-%m}",
            usage_unit=product.usage_unit,
            usage_quantity=quantity,
        )
    return Releve(
        period_month=run.month,
        application_id=application,
        product_id=product_id,
        family_id=product.family_id,
        domain_id=run.snapshot.domain_of(product),
        usage_quantity=quantity,
        usage_unit=product.usage_unit,
        unit_cost=rate.unit_cost,
        total_cost=quantize_money(quantity * rate.unit_cost),
        currency=rate.currency,
        source=source,
        run_id=run.run_id,
        rate_card_version=rate.version,
        source_record_count=records,
        computed_at=run.computed_at,
    )
