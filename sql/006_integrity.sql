-- Integrity fixes found in review.

-- A staged load whose month another run published after it was staged can never be published:
-- the publish marks it superseded, and its own publish then refuses, whatever its row counts.
ALTER TABLE finops.domain_load ADD COLUMN superseded_by text;

-- OpenCost entries refused when read (negative usage, unreadable window…), kept per day like the
-- allocations themselves, so a month's rejects outlive OpenCost's short history.
CREATE TABLE finops.opencost_refused_daily (
    source      text NOT NULL,
    day         date NOT NULL,
    ref         text NOT NULL,
    reason      text NOT NULL,
    raw         jsonb NOT NULL DEFAULT '{}'::jsonb,
    run_id      text NOT NULL,
    read_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, day, ref, reason)
);
