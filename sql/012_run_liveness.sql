-- A live run proves it is alive twice: it holds its run's advisory lock on its ledger connection, and it
-- stamps heartbeat_at every few seconds. A run is declared dead only when both proofs are gone, so a
-- dropped connection of a live run (its lock released for a moment) never makes it ABORTED.
ALTER TABLE finops.etl_runs ADD COLUMN heartbeat_at timestamptz;
UPDATE finops.etl_runs SET heartbeat_at = coalesce(ended_at, started_at);
ALTER TABLE finops.etl_runs ALTER COLUMN heartbeat_at SET DEFAULT now();
ALTER TABLE finops.etl_runs ALTER COLUMN heartbeat_at SET NOT NULL;

-- The headless nightly (`finops-dagster nightly`, a Kubernetes CronJob) records its runs as CRON.
ALTER TABLE finops.etl_runs DROP CONSTRAINT etl_runs_trigger_type_check;
ALTER TABLE finops.etl_runs ADD CONSTRAINT etl_runs_trigger_type_check
    CHECK (trigger_type IN ('SCHEDULE', 'BACKFILL', 'MANUAL', 'CRON'));
