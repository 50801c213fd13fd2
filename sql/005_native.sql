-- The native domain: its asset's relevés, and the nightly snapshots of services that only know today.

CREATE TABLE finops.native_releves (
    LIKE finops.fact_releve INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    PRIMARY KEY (period_month, run_id, application_id, product_id, source)
);

-- One row per source and night (and the month the night's figures belong to): which nights exist,
-- even when a night read nothing, and what could not be read that night.
CREATE TABLE finops.native_snapshot_night (
    source        text NOT NULL,
    period_month  date NOT NULL CHECK (period_month = date_trunc('month', period_month)),
    night         date NOT NULL,
    items         integer NOT NULL,
    problems      jsonb NOT NULL DEFAULT '[]'::jsonb,
    run_id        text NOT NULL,
    read_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, period_month, night)
);

-- What each service said, per consumer (project, repository, team…) and product, that night.
-- kind: 'gauge' (a level such as bytes stored: the month is the average of its nights) or
-- 'counter' (month-to-date, such as CI minutes: the month is its last night).
CREATE TABLE finops.native_snapshot (
    source        text NOT NULL,
    period_month  date NOT NULL,
    night         date NOT NULL,
    consumer      text NOT NULL,
    product_id    text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('gauge', 'counter')),
    quantity      numeric NOT NULL CHECK (quantity >= 0),
    application   text,
    attributes    jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (source, period_month, night, consumer, product_id),
    FOREIGN KEY (source, period_month, night) REFERENCES finops.native_snapshot_night ON DELETE CASCADE
);
