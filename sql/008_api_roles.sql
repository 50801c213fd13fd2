-- The read API's access to the mart: a reader role that sees the materialized views and nothing else,
-- a writer role for the pipeline, the publish ledger the API may read, and indexes for its lookups.
--
-- Roles are cluster-wide in PostgreSQL while grants are per database: the roles are created once
-- (tolerating a role another database's migration created, even concurrently), the grants are made
-- in every database this file is applied to. Both roles are NOLOGIN: the operator creates login roles
-- that are members of them (`CREATE ROLE finops_api LOGIN PASSWORD '…' IN ROLE finops_reader`), or the
-- API connects with any role that may `SET ROLE finops_reader` (FINOPS_API_DB_ROLE).

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'finops_reader') THEN
        BEGIN
            CREATE ROLE finops_reader NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- created meanwhile by the migration of another database of the cluster
        END;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'finops_writer') THEN
        BEGIN
            CREATE ROLE finops_writer NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
END
$$;

-- (No COMMENT ON ROLE: a role is a shared object, and migrations of two databases of the cluster
-- running at once would update the same catalog row.)


-- =====================================================================================
-- What the API may know of the run ledger
-- =====================================================================================

-- One row per month that a successful run published: when the last such run ended, and which run it
-- was. A month counts as published by a run when the run ended SUCCESS and one of its domain loads
-- of that month was published (a successful run that only refreshed the views publishes nothing).
-- A plain view runs with its owner's rights, so the reader sees these four columns without any
-- access to etl_runs or domain_load themselves (no error summaries, no run details).
CREATE VIEW finops.api_month_publish AS
SELECT
    l.period_month,
    max(r.ended_at)                                         AS last_published_at,
    (array_agg(r.run_id ORDER BY r.ended_at DESC, r.run_id DESC))[1] AS last_run_id,
    count(DISTINCT r.run_id)                                AS publish_count
FROM finops.etl_runs AS r
JOIN finops.domain_load AS l
  ON l.run_id = r.run_id
 AND l.published_at IS NOT NULL
WHERE r.status = 'SUCCESS'
  AND r.ended_at IS NOT NULL
GROUP BY l.period_month;

COMMENT ON VIEW finops.api_month_publish IS
    'For each published month, when did the last successful run that published it end, and which run was it?';


-- The last successful publish, whatever the month: what every response's ETag and Last-Modified are
-- tied to. One row, or none before the first publish; cheap enough to read on every request
-- (etl_runs gains a row a night; the probe stops at the latest run that published).
CREATE VIEW finops.api_publish_version AS
SELECT r.run_id AS last_run_id, r.ended_at AS last_published_at
FROM finops.etl_runs AS r
WHERE r.status = 'SUCCESS'
  AND r.ended_at IS NOT NULL
  AND EXISTS (
      SELECT 1 FROM finops.domain_load AS l WHERE l.run_id = r.run_id AND l.published_at IS NOT NULL
  )
ORDER BY r.ended_at DESC, r.run_id DESC
LIMIT 1;

COMMENT ON VIEW finops.api_publish_version IS
    'Which successful run published last, and when did it end? (the version of everything the views hold)';


-- =====================================================================================
-- Grants
-- =====================================================================================

DO $$
DECLARE
    view_name text;
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO finops_reader, finops_writer', current_database());

    -- reader: the views, read only
    GRANT USAGE ON SCHEMA finops TO finops_reader;
    FOR view_name IN
        SELECT matviewname FROM pg_matviews WHERE schemaname = 'finops' AND matviewname LIKE 'mv\_%'
    LOOP
        EXECUTE format('GRANT SELECT ON finops.%I TO finops_reader', view_name);
    END LOOP;
    GRANT SELECT ON finops.api_month_publish, finops.api_publish_version TO finops_reader;

    -- writer: the pipeline's reads and writes (tables, sequences, partitions it creates)
    GRANT USAGE, CREATE ON SCHEMA finops TO finops_writer;
    GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA finops TO finops_writer;
    GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA finops TO finops_writer;
    ALTER DEFAULT PRIVILEGES IN SCHEMA finops
        GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLES TO finops_writer;
    ALTER DEFAULT PRIVILEGES IN SCHEMA finops
        GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO finops_writer;
    -- PostgreSQL 17 lets a non-owner refresh a materialized view (MAINTAIN); before 17, refreshing a
    -- view and creating a month's partition need the owner of the mart (see README).
    IF current_setting('server_version_num')::integer >= 170000 THEN
        FOR view_name IN SELECT matviewname FROM pg_matviews WHERE schemaname = 'finops' LOOP
            EXECUTE format('GRANT MAINTAIN ON finops.%I TO finops_writer', view_name);
        END LOOP;
    END IF;
END
$$;


-- =====================================================================================
-- Indexes for the API's lookups (the unique keys start with period_month)
-- =====================================================================================

-- An application's series over all months; a group's applications in a month (in page order), and
-- the list of applications of a group.
CREATE INDEX mv_cost_application_month_app ON finops.mv_cost_application_month (application_id, period_month);
CREATE INDEX mv_cost_application_month_group
    ON finops.mv_cost_application_month (group_id, period_month, application_id, currency);
CREATE INDEX mv_cost_app_quarter_app ON finops.mv_cost_app_quarter (application_id, period_quarter);
-- An application's breakdown by domain, family and product over a period range.
CREATE INDEX mv_cost_app_domain_month_app ON finops.mv_cost_app_domain_month (application_id, period_month);
CREATE INDEX mv_cost_app_family_month_app ON finops.mv_cost_app_family_month (application_id, period_month);
CREATE INDEX mv_cost_app_product_month_app ON finops.mv_cost_app_product_month (application_id, period_month);
CREATE INDEX mv_cost_app_product_month_product ON finops.mv_cost_app_product_month (product_id, period_month);
-- Top applications of a month, and an application's rank and anomalies over time.
CREATE INDEX mv_rank_app_month_rank ON finops.mv_rank_app_month (period_month, currency, cost_rank);
CREATE INDEX mv_rank_app_month_change
    ON finops.mv_rank_app_month (period_month, month_over_month_change DESC NULLS LAST);
CREATE INDEX mv_rank_app_month_app ON finops.mv_rank_app_month (application_id, period_month);
CREATE INDEX mv_anomalies_month_app ON finops.mv_anomalies_month (application_id, period_month);
-- The publish probes above look up a run's published loads.
CREATE INDEX domain_load_published_run ON finops.domain_load (run_id) WHERE published_at IS NOT NULL;
