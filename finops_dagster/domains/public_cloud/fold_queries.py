"""The SQL the charge fold runs in its DuckDB, in the order it runs it.

1. `allocated_charges` receives every source's charges, each already placed on an application
   (the export reader inserts its sums straight from its own scan; the fold inserts the groups of
   the other sources).
2. `rates` holds the month's exchange rates into the reporting currency (1 for that currency):
   charges in a currency without one are rejects, never converted with a guess.
3. `priced` (a view) names each charge's product; `products` gives what the catalogue needs of each one,
   and `product_families` comes back with the family the fold chose for it.
4. `CREATE_RELEVES` sums per application × product × source × billed currency and computes each
   relevé's quantity, conversion and unit cost with exact decimals and banker's rounding, the
   rounding `releve.quantize_money` applies everywhere else.
"""

from __future__ import annotations

from finops_dagster.releve import MONEY_SCALE

AMOUNT = "DECIMAL(38, 18)"
"""The charges' sums: exact to 18 decimals, up to 10^20."""

CONVERTED_LIMIT = "10^10"
"""A billed sum (scale 18) times a rate (DECIMAL(20, 10)) keeps every decimal (scale 28) for results
up to 10^10 in the reporting currency; beyond, DuckDB stops with an overflow rather than round."""

CREATE_ALLOCATED_CHARGES = f"""
    CREATE TABLE allocated_charges (
        source VARCHAR NOT NULL,
        application VARCHAR NOT NULL,
        provider VARCHAR NOT NULL,
        service_name VARCHAR,
        service_category VARCHAR,
        charge_category VARCHAR,
        sku_id VARCHAR,
        currency VARCHAR NOT NULL,
        pricing_unit VARCHAR,
        cost {AMOUNT} NOT NULL,
        line_items BIGINT NOT NULL,
        quantified BIGINT NOT NULL,
        pricing_quantity {AMOUNT}
    )
"""
"""`quantified`: how many of the row's line items have a pricing quantity (summed, in
`pricing_quantity`): a relevé keeps a quantity only when all of its line items have one, whatever
way its rows were grouped on the way."""

INSERT_GROUPS = f"""
    INSERT INTO allocated_charges
    SELECT unnest($source), unnest($application), unnest($provider), unnest($service_name),
           unnest($service_category), unnest($charge_category), unnest($sku_id), unnest($currency),
           unnest($pricing_unit), CAST(unnest($cost) AS {AMOUNT}), unnest($line_items),
           unnest($quantified), CAST(unnest($pricing_quantity) AS {AMOUNT})
"""
"""Amounts travel as text: a Python Decimal given to DuckDB as a number could become a float."""

CREATE_RATES = """
    CREATE TEMP TABLE rates AS
    SELECT unnest($currency) AS currency, CAST(unnest($rate) AS DECIMAL(20, 10)) AS rate
"""

UNCONVERTIBLE = """
    SELECT source, provider, service_name, charge_category, application, currency,
           CAST(sum(cost) AS VARCHAR), sum(line_items)::BIGINT
    FROM allocated_charges
    WHERE currency NOT IN (SELECT currency FROM rates)
    GROUP BY ALL
    ORDER BY ALL
"""
"""Charges in a currency the month has no rate for: one reject per product and application."""


def create_priced(by_sku: bool) -> str:
    """`priced`: each charge with its product (provider and service, `<provider>:<ChargeCategory>`
    for a charge without a service: a tax, an account-level credit; with the SKU when products are
    by SKU) and its exchange rate. A view: the two queries that read it cost less than storing it."""
    sku = "NULLIF(c.sku_id, '')" if by_sku else "NULL::VARCHAR"
    return f"""
    CREATE TEMP VIEW priced AS
    WITH named AS (
        SELECT c.*, r.rate,
               coalesce(NULLIF(c.service_name, ''), NULLIF(c.charge_category, ''), 'Other')
                   AS product_service,
               {sku} AS product_sku
        FROM allocated_charges AS c
        JOIN rates AS r USING (currency)
    )
    SELECT *,
           provider || ':' || product_service || coalesce(':' || product_sku, '') AS product_id
    FROM named
    """


PRODUCTS = """
    SELECT product_id, min(provider), min(product_service), min(product_sku),
           list(DISTINCT service_category ORDER BY service_category)
               FILTER (WHERE service_category IS NOT NULL),
           min(pricing_unit)
    FROM priced
    GROUP BY product_id
    ORDER BY product_id
"""

CREATE_PRODUCT_FAMILIES = """
    CREATE TEMP TABLE product_families AS
    SELECT unnest($product_id) AS product_id, unnest($family_id) AS family_id
"""

CREATE_RELEVES = f"""
    CREATE TEMP TABLE releves AS
    WITH sums AS (
        SELECT application, product_id, source, currency, any_value(rate) AS rate,
               sum(cost) AS billed, sum(line_items)::BIGINT AS line_items,
               CASE WHEN sum(quantified) = sum(line_items)
                     AND count(*) = count(NULLIF(pricing_unit, ''))
                     AND min(pricing_unit) = max(pricing_unit)
                    THEN min(pricing_unit) END AS unit,
               sum(pricing_quantity) AS quantity
        FROM priced
        GROUP BY application, product_id, source, currency
    ), measured AS (
        SELECT *,
               CASE WHEN currency = $reporting THEN round_even(billed, 6)
                    ELSE round_even(billed * rate, 6) END AS total,
               CASE WHEN unit IS NULL THEN CAST(line_items AS DECIMAL(28, 6))
                    ELSE round_even(quantity, 6) END AS usage_quantity
        FROM sums
    ), in_micros AS (
        SELECT *,
               abs(CAST(total * 1000000 AS HUGEINT) * 1000000) AS numerator,
               abs(CAST(usage_quantity * 1000000 AS HUGEINT)) AS denominator,
               sign(total) * sign(usage_quantity) AS unit_cost_sign
        FROM measured
    ), divided AS (
        SELECT *, numerator // NULLIF(denominator, 0) AS whole FROM in_micros
    ), unit_costs AS (
        SELECT *,
               CASE WHEN denominator = 0 THEN CAST(0 AS DECIMAL(24, 6)) ELSE
                   CAST(unit_cost_sign * (whole + CASE
                       WHEN 2 * (numerator - whole * denominator) > denominator THEN 1
                       WHEN 2 * (numerator - whole * denominator) = denominator AND whole % 2 = 1 THEN 1
                       ELSE 0 END) AS DECIMAL(38, 0)) * {MONEY_SCALE}
               END AS unit_cost
        FROM divided
    )
    SELECT $month AS period_month, m.application AS application_id, m.product_id, f.family_id,
           $domain AS domain_id, CAST(m.usage_quantity AS DECIMAL(28, 6)) AS usage_quantity,
           coalesce(m.unit, $line_items_unit) AS usage_unit,
           CAST(m.unit_cost AS DECIMAL(24, 6)) AS unit_cost,
           CAST(m.total AS DECIMAL(24, 6)) AS total_cost, $reporting AS currency,
           CASE WHEN m.currency = $reporting THEN m.source ELSE m.source || ':' || m.currency END AS source,
           $run_id AS run_id, NULL::VARCHAR AS rate_card_version, m.line_items AS source_record_count,
           $computed_at AS computed_at,
           CASE WHEN m.currency <> $reporting THEN CAST(round_even(m.billed, 6) AS DECIMAL(24, 6)) END
               AS billed_cost,
           CASE WHEN m.currency <> $reporting THEN m.currency END AS billed_currency
    FROM unit_costs AS m
    JOIN product_families AS f USING (product_id)
"""
"""The month's relevés, columns in RELEVE_COLUMNS order. A relevé whose charges share one pricing
unit has their quantity in that unit; otherwise it counts line items. The unit cost is total ÷
quantity to the micro-unit, rounded half to even, computed in integers: DuckDB divides decimals as
binary floats, which money never goes through."""

RELEVE_TOTALS = """
    SELECT count(*), CAST(coalesce(sum(total_cost), 0) AS VARCHAR),
           CAST(coalesce(sum(total_cost) FILTER (WHERE application_id = $unallocated), 0) AS VARCHAR)
    FROM releves
"""
"""Decimals come back as text: DuckDB hands a Python Decimal over slowly, and text is exact."""
