-- The public_cloud domain: provider bills converted to the reporting currency, with what was billed.

-- What the provider billed, in the currency of the bill, before conversion to the relevé's currency.
-- NULL for relevés priced internally (the other domains): their total_cost is the original amount.
ALTER TABLE finops.fact_releve
    ADD COLUMN billed_cost numeric(24, 6),
    ADD COLUMN billed_currency char(3);
ALTER TABLE finops.open_legacy_releves
    ADD COLUMN billed_cost numeric(24, 6),
    ADD COLUMN billed_currency char(3);
ALTER TABLE finops.private_cloud_releves
    ADD COLUMN billed_cost numeric(24, 6),
    ADD COLUMN billed_currency char(3);
ALTER TABLE finops.native_releves
    ADD COLUMN billed_cost numeric(24, 6),
    ADD COLUMN billed_currency char(3);

CREATE TABLE finops.public_cloud_releves (
    LIKE finops.fact_releve INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    PRIMARY KEY (period_month, run_id, application_id, product_id, source)
);

-- What the source billed per currency ({"USD": "1234.56"}), for domains whose sources carry cost:
-- the reconciliation check proves relevés (billed amounts) + rejects add back up to it.
ALTER TABLE finops.domain_load ADD COLUMN source_costs jsonb NOT NULL DEFAULT '{}'::jsonb;

-- Monthly exchange rates into the reporting currency, loaded from reference/data/exchange_rates.csv.
-- One rate per month and currency pair: a bill of that month converts at that rate.
CREATE TABLE finops.exchange_rate (
    period_month    date NOT NULL CHECK (period_month = date_trunc('month', period_month)),
    from_currency   char(3) NOT NULL,
    to_currency     char(3) NOT NULL,
    rate            numeric(20, 10) NOT NULL CHECK (rate > 0),
    source          text NOT NULL,
    PRIMARY KEY (period_month, from_currency, to_currency),
    CHECK (from_currency <> to_currency)
);
