-- The two largest aggregates, application x family and application x product per month, become
-- partitioned by month, like fact_releve, in both views (finops and finops_allocated).
--
-- Each night replaces a month's rows (mart/aggregates.py). In one table spanning every month, the
-- month's rows are inserted across indexes that lead with the application or the product and hold
-- the whole history, and the work grew with history. A month's partition holds only that month:
-- its indexes are the month's size, the month's dead rows stay in it, and the night's work is the
-- same in the second month of the mart as in the fiftieth.
--
-- Same names, columns, keys and indexes for the read API and Backstage: they read the parent table.
-- A month's partitions are created with fact_releve's, before the publish transaction
-- (mart/month_partitions.py), since creating one locks its parent table.

DO $$
DECLARE
    target record;
    month date;
    staged text;
BEGIN
    FOR target IN
        SELECT schema_name, table_name, key_columns
        FROM (VALUES ('finops'), ('finops_allocated')) AS s(schema_name)
        CROSS JOIN (VALUES
            ('mv_cost_app_family_month',
             'period_month, application_id, domain_id, family_id, currency'),
            ('mv_cost_app_product_month',
             'period_month, application_id, domain_id, family_id, product_id, usage_unit, currency')
        ) AS t(table_name, key_columns)
    LOOP
        staged := target.table_name || '_by_month';
        EXECUTE format(
            'CREATE TABLE %I.%I (LIKE %I.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS) PARTITION BY RANGE (period_month)',
            target.schema_name, staged, target.schema_name, target.table_name
        );
        FOR month IN
            EXECUTE format('SELECT DISTINCT period_month FROM %I.%I', target.schema_name, target.table_name)
        LOOP
            EXECUTE format(
                'CREATE TABLE %I.%I PARTITION OF %I.%I FOR VALUES FROM (%L) TO (%L)',
                target.schema_name, target.table_name || '_' || to_char(month, 'YYYY_MM'),
                target.schema_name, staged, month, (month + interval '1 month')::date
            );
        END LOOP;
        EXECUTE format(
            'INSERT INTO %I.%I SELECT * FROM %I.%I',
            target.schema_name, staged, target.schema_name, target.table_name
        );
        EXECUTE format('DROP TABLE %I.%I', target.schema_name, target.table_name);
        EXECUTE format('ALTER TABLE %I.%I RENAME TO %I', target.schema_name, staged, target.table_name);
        EXECUTE format(
            'ALTER TABLE %I.%I ADD PRIMARY KEY (%s)',
            target.schema_name, target.table_name, target.key_columns
        );
        EXECUTE format(
            'CREATE INDEX %I ON %I.%I (application_id, period_month)',
            target.table_name || '_app', target.schema_name, target.table_name
        );
        EXECUTE format('GRANT SELECT ON %I.%I TO finops_reader', target.schema_name, target.table_name);
        EXECUTE format(
            'GRANT SELECT, INSERT, UPDATE, DELETE ON %I.%I TO finops_writer',
            target.schema_name, target.table_name
        );
    END LOOP;
END
$$;

CREATE INDEX mv_cost_app_product_month_product ON finops.mv_cost_app_product_month (product_id, period_month);
CREATE INDEX mv_cost_app_product_month_product
    ON finops_allocated.mv_cost_app_product_month (product_id, period_month);

COMMENT ON TABLE finops.mv_cost_app_family_month IS
    'For an application and a month, how is its cost split across product families (with their domain), per currency? Partitioned by month.';
COMMENT ON TABLE finops.mv_cost_app_product_month IS
    'For an application and a month, what did it consume and pay per product (quantity in the product''s unit, cost per currency)? Partitioned by month.';
COMMENT ON TABLE finops_allocated.mv_cost_app_family_month IS
    'The allocated view of finops.mv_cost_app_family_month. Partitioned by month.';
COMMENT ON TABLE finops_allocated.mv_cost_app_product_month IS
    'The allocated view of finops.mv_cost_app_product_month. Partitioned by month.';
