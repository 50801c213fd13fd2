-- The data mart: staged domain relevés, the published fact table, rejects and the run ledger.

-- What a domain asset produced for a month in a run: the manifest the publish and the checks read.
-- source_totals holds what was read from the source before any allocation, per unit
-- ({"vCPU": "123.5", ...}) as exact decimal strings; source_cost is NULL where the source has no cost.
CREATE TABLE finops.domain_load (
    domain_id           text NOT NULL REFERENCES finops.dim_domain (domain_id),
    period_month        date NOT NULL CHECK (period_month = date_trunc('month', period_month)),
    run_id              text NOT NULL,
    loaded_at           timestamptz NOT NULL DEFAULT now(),
    releve_count        integer NOT NULL,
    reject_count        integer NOT NULL,
    total_cost          numeric(24, 6) NOT NULL,
    source_record_count bigint NOT NULL,
    source_totals       jsonb NOT NULL,
    source_cost         numeric(24, 6),
    details             jsonb NOT NULL DEFAULT '{}'::jsonb,
    published_at        timestamptz,
    PRIMARY KEY (domain_id, period_month, run_id)
);

-- The published relevés, one partition per month (created by the publish when a month first appears).
CREATE TABLE finops.fact_releve (
    period_month        date NOT NULL,
    application_id      text NOT NULL,
    product_id          text NOT NULL,
    family_id           text NOT NULL,
    domain_id           text NOT NULL,
    usage_quantity      numeric(28, 6) NOT NULL,
    usage_unit          text NOT NULL,
    unit_cost           numeric(24, 6) NOT NULL,
    total_cost          numeric(24, 6) NOT NULL,
    currency            char(3) NOT NULL,
    source              text NOT NULL,
    run_id              text NOT NULL,
    rate_card_version   text,
    source_record_count bigint NOT NULL,
    computed_at         timestamptz NOT NULL,
    PRIMARY KEY (period_month, application_id, product_id, source)
) PARTITION BY RANGE (period_month);

CREATE INDEX fact_releve_month_domain ON finops.fact_releve (period_month, domain_id);
CREATE INDEX fact_releve_month_family ON finops.fact_releve (period_month, family_id);

-- The open_legacy asset: the domain's relevés per month and run, staged before the publish.
CREATE TABLE finops.open_legacy_releves (
    LIKE finops.fact_releve INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    PRIMARY KEY (period_month, run_id, application_id, product_id, source)
);

-- Whatever could not become a relevé, with why, and what it carried (unit and quantity, or cost).
CREATE TABLE finops.releve_reject (
    reject_id       bigserial PRIMARY KEY,
    domain_id       text NOT NULL REFERENCES finops.dim_domain (domain_id),
    period_month    date NOT NULL,
    run_id          text NOT NULL,
    source          text NOT NULL,
    source_ref      text NOT NULL,
    reason          text NOT NULL,
    usage_unit      text,
    usage_quantity  numeric(28, 6),
    cost            numeric(24, 6),
    currency        char(3),
    raw_payload     jsonb,
    rejected_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX releve_reject_load ON finops.releve_reject (domain_id, period_month, run_id);

-- One row per pipeline run, whatever started it (spec §6.2).
CREATE TABLE finops.etl_runs (
    run_id            text PRIMARY KEY,
    status            text NOT NULL CHECK (status IN ('RUNNING', 'SUCCESS', 'FAILED', 'ABORTED')),
    trigger_type      text NOT NULL CHECK (trigger_type IN ('SCHEDULE', 'BACKFILL', 'MANUAL')),
    job_name          text NOT NULL,
    periods           jsonb NOT NULL DEFAULT '[]'::jsonb,
    started_at        timestamptz NOT NULL DEFAULT now(),
    ended_at          timestamptz,
    records_inserted  bigint NOT NULL DEFAULT 0,
    records_rejected  bigint NOT NULL DEFAULT 0,
    errors_count      integer NOT NULL DEFAULT 0,
    error_summary     text,
    version           text NOT NULL
);

CREATE INDEX etl_runs_status ON finops.etl_runs (status) WHERE status = 'RUNNING';
