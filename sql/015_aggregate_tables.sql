-- The aggregates become tables maintained month by month inside the publish transaction.
--
-- The materialized views of 003_views.sql were refreshed entirely after every run, whatever the
-- number of months published, and readers saw the new facts before the new views. Every
-- finops.mv_* name is now a plain TABLE with the same columns (plus mv_anomalies_month.compared_months)
-- and the same unique key: the read API and Backstage read the same names.
--
-- Who writes them: finops_dagster/mart/aggregates.py, in the transaction that replaces a month's
-- fact_releve rows (mart/publish.py), for the month published and the rows that depend on it
-- (its quarter, the rankings and anomalies of the following months, the history series). Readers
-- see facts and aggregates switch together. `finops-dagster rebuild-aggregates` (or the Dagster job
-- rebuild_aggregates) recomputes every row from fact_releve: run it once after this migration, and
-- after any change that rewrites history (rate cards, mappings).
--
-- The SQL that computes each table lives next to the code that runs it (mart/aggregates.py);
-- 003_views.sql stays as the history of the previous definitions.

DROP MATERIALIZED VIEW finops.mv_history_domain;
DROP MATERIALIZED VIEW finops.mv_anomalies_month;
DROP MATERIALIZED VIEW finops.mv_rank_app_month;
DROP MATERIALIZED VIEW finops.mv_cost_app_quarter;
DROP MATERIALIZED VIEW finops.mv_cost_app_product_month;
DROP MATERIALIZED VIEW finops.mv_cost_app_family_month;
DROP MATERIALIZED VIEW finops.mv_cost_app_domain_month;
DROP MATERIALIZED VIEW finops.mv_cost_group_month;
DROP MATERIALIZED VIEW finops.mv_cost_application_month;
DROP MATERIALIZED VIEW finops.mv_cost_family_month;
DROP MATERIALIZED VIEW finops.mv_cost_domain_month;


CREATE TABLE finops.mv_cost_domain_month (
    period_month      date    NOT NULL,
    domain_id         text    NOT NULL,
    currency          char(3) NOT NULL,
    total_cost        numeric NOT NULL,
    releve_count      bigint  NOT NULL,
    application_count bigint  NOT NULL,
    PRIMARY KEY (period_month, domain_id, currency)
);
COMMENT ON TABLE finops.mv_cost_domain_month IS
    'How much did each technology domain cost each month (per currency), over how many relevés and applications?';

CREATE TABLE finops.mv_cost_family_month (
    period_month date    NOT NULL,
    domain_id    text    NOT NULL,
    family_id    text    NOT NULL,
    currency     char(3) NOT NULL,
    total_cost   numeric NOT NULL,
    releve_count bigint  NOT NULL,
    PRIMARY KEY (period_month, domain_id, family_id, currency)
);
COMMENT ON TABLE finops.mv_cost_family_month IS
    'How much did each product family (within its domain) cost each month, per currency?';

-- group_id: from dim_application when the month was last published; NULL for an application
-- dim_application does not know (its cost is kept, and left out of mv_cost_group_month).
CREATE TABLE finops.mv_cost_application_month (
    period_month   date    NOT NULL,
    application_id text    NOT NULL,
    group_id       text,
    currency       char(3) NOT NULL,
    total_cost     numeric NOT NULL,
    releve_count   bigint  NOT NULL,
    PRIMARY KEY (period_month, application_id, currency)
);
COMMENT ON TABLE finops.mv_cost_application_month IS
    'How much did each application cost each month, per currency, and which application group is it in (NULL when the application is unknown to dim_application)?';

CREATE TABLE finops.mv_cost_group_month (
    period_month      date    NOT NULL,
    group_id          text    NOT NULL,
    currency          char(3) NOT NULL,
    total_cost        numeric NOT NULL,
    application_count bigint  NOT NULL,
    PRIMARY KEY (period_month, group_id, currency)
);
COMMENT ON TABLE finops.mv_cost_group_month IS
    'How much did each application group cost each month, per currency, and how many of its applications had a cost?';

CREATE TABLE finops.mv_cost_app_domain_month (
    period_month   date    NOT NULL,
    application_id text    NOT NULL,
    domain_id      text    NOT NULL,
    currency       char(3) NOT NULL,
    total_cost     numeric NOT NULL,
    releve_count   bigint  NOT NULL,
    PRIMARY KEY (period_month, application_id, domain_id, currency)
);
COMMENT ON TABLE finops.mv_cost_app_domain_month IS
    'For an application and a month, how is its cost split across technology domains (per currency)?';

CREATE TABLE finops.mv_cost_app_family_month (
    period_month   date    NOT NULL,
    application_id text    NOT NULL,
    domain_id      text    NOT NULL,
    family_id      text    NOT NULL,
    currency       char(3) NOT NULL,
    total_cost     numeric NOT NULL,
    releve_count   bigint  NOT NULL,
    PRIMARY KEY (period_month, application_id, domain_id, family_id, currency)
);
COMMENT ON TABLE finops.mv_cost_app_family_month IS
    'For an application and a month, how is its cost split across product families (with their domain), per currency?';

CREATE TABLE finops.mv_cost_app_product_month (
    period_month   date    NOT NULL,
    application_id text    NOT NULL,
    domain_id      text    NOT NULL,
    family_id      text    NOT NULL,
    product_id     text    NOT NULL,
    usage_unit     text    NOT NULL,
    currency       char(3) NOT NULL,
    usage_quantity numeric NOT NULL,
    total_cost     numeric NOT NULL,
    releve_count   bigint  NOT NULL,
    PRIMARY KEY (period_month, application_id, domain_id, family_id, product_id, usage_unit, currency)
);
COMMENT ON TABLE finops.mv_cost_app_product_month IS
    'For an application and a month, what did it consume and pay per product (quantity in the product''s unit, cost per currency)?';

CREATE TABLE finops.mv_cost_app_quarter (
    period_quarter date    NOT NULL,
    application_id text    NOT NULL,
    group_id       text,
    currency       char(3) NOT NULL,
    total_cost     numeric NOT NULL,
    months_count   bigint  NOT NULL,
    PRIMARY KEY (period_quarter, application_id, currency)
);
COMMENT ON TABLE finops.mv_cost_app_quarter IS
    'How much did each application cost each quarter, per currency, and over how many months with data?';

CREATE TABLE finops.mv_rank_app_month (
    period_month            date    NOT NULL,
    application_id          text    NOT NULL,
    currency                char(3) NOT NULL,
    total_cost              numeric NOT NULL,
    cost_rank               bigint  NOT NULL,
    previous_month_cost     numeric NOT NULL,
    month_over_month_change numeric NOT NULL,
    month_over_month_ratio  numeric,
    PRIMARY KEY (period_month, application_id, currency)
);
COMMENT ON TABLE finops.mv_rank_app_month IS
    'Which applications cost the most each month (per currency), and how did each one move against the previous calendar month?';

-- compared_months: how many of the 3 calendar months before period_month are in the mart (0 to 3);
-- trailing_avg_cost is the trailing sum divided by it. See mart/aggregates.py for the rules.
CREATE TABLE finops.mv_anomalies_month (
    period_month            date    NOT NULL,
    application_id          text    NOT NULL,
    domain_id               text    NOT NULL,
    currency                char(3) NOT NULL,
    total_cost              numeric NOT NULL,
    trailing_avg_cost       numeric NOT NULL,
    trailing_months_present integer NOT NULL,
    deviation_ratio         numeric,
    anomaly_kind            text    NOT NULL CHECK (anomaly_kind IN ('SPIKE', 'DROP', 'NEW')),
    compared_months         integer NOT NULL,
    PRIMARY KEY (period_month, application_id, domain_id, currency)
);
COMMENT ON TABLE finops.mv_anomalies_month IS
    'Which applications (per domain and currency) spiked (> 1.5 x), dropped (< 0.5 x, including to nothing) or appeared in a completed month, against their average over the previous calendar months present in the mart (up to 3), when the change is at least FINOPS_ANOMALY_MIN_COST?';

CREATE TABLE finops.mv_history_domain (
    domain_id                    text    NOT NULL,
    currency                     char(3) NOT NULL,
    period_month                 date    NOT NULL,
    total_cost                   numeric NOT NULL,
    cumulative_cost_year_to_date numeric NOT NULL,
    rolling_12m_cost             numeric NOT NULL,
    previous_year_cost           numeric NOT NULL,
    PRIMARY KEY (domain_id, currency, period_month)
);
COMMENT ON TABLE finops.mv_history_domain IS
    'How has each domain''s cost evolved month by month (per currency): year to date, rolling 12 months, and against the same month a year earlier?';


-- The API's lookups (as in 008_api_roles.sql, on the tables now).
CREATE INDEX mv_cost_application_month_app ON finops.mv_cost_application_month (application_id, period_month);
CREATE INDEX mv_cost_application_month_group
    ON finops.mv_cost_application_month (group_id, period_month, application_id, currency);
CREATE INDEX mv_cost_app_quarter_app ON finops.mv_cost_app_quarter (application_id, period_quarter);
CREATE INDEX mv_cost_app_domain_month_app ON finops.mv_cost_app_domain_month (application_id, period_month);
CREATE INDEX mv_cost_app_family_month_app ON finops.mv_cost_app_family_month (application_id, period_month);
CREATE INDEX mv_cost_app_product_month_app ON finops.mv_cost_app_product_month (application_id, period_month);
CREATE INDEX mv_cost_app_product_month_product ON finops.mv_cost_app_product_month (product_id, period_month);
CREATE INDEX mv_rank_app_month_rank ON finops.mv_rank_app_month (period_month, currency, cost_rank);
CREATE INDEX mv_rank_app_month_change
    ON finops.mv_rank_app_month (period_month, month_over_month_change DESC NULLS LAST);
CREATE INDEX mv_rank_app_month_app ON finops.mv_rank_app_month (application_id, period_month);
CREATE INDEX mv_anomalies_month_app ON finops.mv_anomalies_month (application_id, period_month);


-- Grants: the reader reads the aggregates; the writer (the pipeline) maintains them.
DO $$
DECLARE
    table_name text;
BEGIN
    FOR table_name IN
        SELECT tablename FROM pg_tables WHERE schemaname = 'finops' AND tablename LIKE 'mv\_%'
    LOOP
        EXECUTE format('GRANT SELECT ON finops.%I TO finops_reader', table_name);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON finops.%I TO finops_writer', table_name);
    END LOOP;
END
$$;
