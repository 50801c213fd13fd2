-- Months closed and restated: a month is OPEN until someone closes it; a closed month is never
-- rewritten by the nightly, and changes only through an approved restatement, which bumps its version.
--
-- Who writes them: the publish (mart/publish.py) records each month it publishes and the fingerprints
-- of its inputs (mart/month_inputs.py); `finops-dagster close` / the job close_month close it
-- (mart/month_close.py); a run over a closed month computes a restatement (mart/restatement.py) and
-- `finops-dagster restate --approve` / the job approve_restatement publishes it.

-- One row per published month. version counts the month's closed states: 1 until a restatement is
-- approved. inputs: what the current version was computed from, as fingerprints (source data per
-- domain load, rate cards, mapping rules, allocation rules valid for the month).
CREATE TABLE finops.month_status (
    period_month     date        PRIMARY KEY CHECK (period_month = date_trunc('month', period_month)),
    status           text        NOT NULL DEFAULT 'OPEN' CHECK (status IN ('OPEN', 'CLOSED')),
    version          integer     NOT NULL DEFAULT 1 CHECK (version >= 1),
    published_run_id text,
    published_at     timestamptz,
    inputs           jsonb       NOT NULL DEFAULT '{}'::jsonb,
    closed_by        text,
    closed_at        timestamptz,
    note             text,
    approved_by      text,
    approved_at      timestamptz,
    changed_at       timestamptz,
    CHECK (status = 'OPEN' OR (closed_by IS NOT NULL AND closed_at IS NOT NULL))
);
COMMENT ON TABLE finops.month_status IS
    'Is each published month open or closed, at which version, who closed it and who approved its last restatement, and when?';

-- A run over a closed month: the new version it would publish, waiting for approval.
-- changed_inputs: which inputs' fingerprints differ from the published version's (source_data,
-- rate_card, mapping, allocation_rule). after_fingerprint: the month's allocated lines as computed,
-- which the approval must reproduce exactly.
CREATE TABLE finops.month_restatement (
    period_month      date           NOT NULL REFERENCES finops.month_status (period_month),
    run_id            text           NOT NULL,
    base_version      integer        NOT NULL,
    status            text           NOT NULL DEFAULT 'PENDING'
                                     CHECK (status IN ('PENDING', 'APPROVED', 'SUPERSEDED')),
    computed_at       timestamptz    NOT NULL DEFAULT now(),
    inputs            jsonb          NOT NULL,
    changed_inputs    text[]         NOT NULL,
    after_fingerprint text           NOT NULL,
    lines_changed     integer        NOT NULL,
    direct_before     numeric(24, 6) NOT NULL,
    direct_after      numeric(24, 6) NOT NULL,
    approved_by       text,
    approved_at       timestamptz,
    new_version       integer,
    PRIMARY KEY (period_month, run_id)
);
COMMENT ON TABLE finops.month_restatement IS
    'Which runs recomputed a closed month, what changed (inputs, totals), and was the new version approved?';

-- What a restatement changes, per application x product x currency, in both views.
CREATE TABLE finops.month_restatement_line (
    period_month     date           NOT NULL,
    run_id           text           NOT NULL,
    application_id   text           NOT NULL,
    product_id       text           NOT NULL,
    currency         char(3)        NOT NULL,
    direct_before    numeric(24, 6) NOT NULL,
    direct_after     numeric(24, 6) NOT NULL,
    allocated_before numeric(24, 6) NOT NULL,
    allocated_after  numeric(24, 6) NOT NULL,
    changed_inputs   text[]         NOT NULL,
    PRIMARY KEY (period_month, run_id, application_id, product_id, currency),
    FOREIGN KEY (period_month, run_id) REFERENCES finops.month_restatement (period_month, run_id)
        ON DELETE CASCADE
);
COMMENT ON TABLE finops.month_restatement_line IS
    'For a restatement, by how much does each application''s cost of a product change (direct and allocated), and which input changed?';

-- Months published before this migration: open, version 1, inputs unknown.
INSERT INTO finops.month_status (period_month)
SELECT DISTINCT period_month FROM finops.fact_releve;

-- The API's version of everything it serves: the last successful publish, or a later close or
-- approval (which change what /months says, and, for an approval, the month's facts).
CREATE OR REPLACE VIEW finops.api_publish_version AS
SELECT last_run_id, last_published_at
FROM (
    (SELECT r.run_id AS last_run_id, r.ended_at AS last_published_at
     FROM finops.etl_runs AS r
     WHERE r.status = 'SUCCESS'
       AND r.ended_at IS NOT NULL
       AND EXISTS (
           SELECT 1 FROM finops.domain_load AS l WHERE l.run_id = r.run_id AND l.published_at IS NOT NULL
       )
     ORDER BY r.ended_at DESC, r.run_id DESC
     LIMIT 1)
    UNION ALL
    (SELECT 'month ' || to_char(period_month, 'YYYY-MM') || ' v' || version || ' ' || status, changed_at
     FROM finops.month_status
     WHERE changed_at IS NOT NULL
     ORDER BY changed_at DESC
     LIMIT 1)
) AS latest
ORDER BY last_published_at DESC, last_run_id DESC
LIMIT 1;

CREATE INDEX month_status_changed ON finops.month_status (changed_at DESC) WHERE changed_at IS NOT NULL;

GRANT SELECT ON finops.month_status, finops.month_restatement, finops.month_restatement_line TO finops_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON finops.month_status, finops.month_restatement,
    finops.month_restatement_line TO finops_writer;
