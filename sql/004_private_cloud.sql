-- The private_cloud domain: its asset's relevés, and what OpenCost said each day.

CREATE TABLE finops.private_cloud_releves (
    LIKE finops.fact_releve INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    PRIMARY KEY (period_month, run_id, application_id, product_id, source)
);

-- OpenCost keeps a short history (about two weeks), so every run persists the complete days it can
-- still read; a month is computed from what was persisted for it. A day read again replaces itself
-- (same numbers for a complete day), so nightly re-reads are idempotent.
CREATE TABLE finops.opencost_allocation_daily (
    source          text NOT NULL,
    day             date NOT NULL,
    allocation_key  text NOT NULL,
    cpu_core_hours  numeric NOT NULL CHECK (cpu_core_hours >= 0),
    ram_byte_hours  numeric NOT NULL CHECK (ram_byte_hours >= 0),
    pv_byte_hours   numeric NOT NULL CHECK (pv_byte_hours >= 0),
    properties      jsonb NOT NULL DEFAULT '{}'::jsonb,
    run_id          text NOT NULL,
    read_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, day, allocation_key)
);
