-- Shared costs allocated by rules: the rules as the mart holds them, the allocation of every published
-- month with its lineage, and the allocated view of the aggregates.
--
-- Who writes them: the reference asset loads the rule file (allocation/rules.py, like the rate cards);
-- the publish (mart/publish.py → mart/allocation.py) recomputes a month's allocation from its
-- fact_releve rows in the transaction that replaces them, and the aggregates of both views with it.
-- fact_releve itself (the direct view) is never changed by an allocation.

-- The rule file's rows as read (text, as in the file) with their line: the publish parses them again
-- with the file's own parser, so the mart never applies a rule the file would refuse.
CREATE TABLE finops.allocation_rule (
    rule_id            text    NOT NULL,
    version            text    NOT NULL,
    line               integer NOT NULL,
    sequence           text    NOT NULL,
    valid_from         date    NOT NULL,
    valid_to           date,
    source_application text    NOT NULL,
    source_domain      text    NOT NULL DEFAULT '',
    source_family      text    NOT NULL DEFAULT '',
    source_product     text    NOT NULL DEFAULT '',
    target_kind        text    NOT NULL,
    targets            text    NOT NULL,
    method             text    NOT NULL,
    basis_product      text    NOT NULL DEFAULT '',
    PRIMARY KEY (rule_id, version)
);
COMMENT ON TABLE finops.allocation_rule IS
    'Which allocation rules (rule file rows, valid by month) apply, in sequence order, to the published months?';

-- One row per amount a rule moved (FOCUS 1.3 allocation columns: AllocatedMethodId is the method,
-- AllocatedResourceId the application the cost was allocated to). The source keeps its product, so
-- the family and domain of the amount are those of the direct relevé it came from.
CREATE TABLE finops.fact_allocation (
    period_month          date           NOT NULL,
    rule_id               text           NOT NULL,
    rule_version          text           NOT NULL,
    rule_sequence         integer        NOT NULL,
    allocated_method_id   text           NOT NULL CHECK (allocated_method_id IN ('even', 'proportional', 'fixed', 'quantity')),
    source_application_id text           NOT NULL,
    allocated_resource_id text           NOT NULL,
    product_id            text           NOT NULL,
    family_id             text           NOT NULL,
    domain_id             text           NOT NULL,
    currency              char(3)        NOT NULL,
    allocated_cost        numeric(24, 6) NOT NULL,
    run_id                text           NOT NULL,
    PRIMARY KEY (period_month, rule_id, product_id, currency, allocated_resource_id)
);
CREATE INDEX fact_allocation_target ON finops.fact_allocation (period_month, allocated_resource_id);
COMMENT ON TABLE finops.fact_allocation IS
    'Which rule (id, version, method) moved how much of which source application''s cost of a product to which application, each month?';

-- The month's cost per application x product x currency after the rules: direct cost, what rules
-- gave it, what they took from it. total_cost = direct_cost + allocated_in - allocated_out; the
-- quantity is the application's own consumption (allocation moves cost, not usage).
CREATE TABLE finops.fact_releve_allocated (
    period_month   date           NOT NULL,
    application_id text           NOT NULL,
    product_id     text           NOT NULL,
    family_id      text           NOT NULL,
    domain_id      text           NOT NULL,
    usage_unit     text           NOT NULL,
    currency       char(3)        NOT NULL,
    usage_quantity numeric(28, 6) NOT NULL,
    direct_cost    numeric(24, 6) NOT NULL,
    allocated_in   numeric(24, 6) NOT NULL,
    allocated_out  numeric(24, 6) NOT NULL,
    total_cost     numeric(24, 6) NOT NULL,
    run_id         text           NOT NULL,
    PRIMARY KEY (period_month, application_id, product_id, currency),
    CHECK (total_cost = direct_cost + allocated_in - allocated_out)
);
COMMENT ON TABLE finops.fact_releve_allocated IS
    'After the month''s allocation rules, what does each application pay per product (direct, received, given away)?';

-- The allocated view of the aggregates: the same tables, columns and keys as finops.mv_*, computed
-- from fact_releve_allocated by the same SQL (mart/aggregates.py). The read API picks the schema
-- with ?view=direct|allocated. releve_count counts allocated lines there.
CREATE SCHEMA finops_allocated;
COMMENT ON SCHEMA finops_allocated IS 'The aggregates (mv_*) of the allocated view: cost after the allocation rules.';

DO $$
DECLARE
    table_name text;
BEGIN
    FOR table_name IN
        SELECT tablename FROM pg_tables WHERE schemaname = 'finops' AND tablename LIKE 'mv\_%' ORDER BY 1
    LOOP
        EXECUTE format('CREATE TABLE finops_allocated.%I (LIKE finops.%I INCLUDING ALL)', table_name, table_name);
        EXECUTE format('GRANT SELECT ON finops_allocated.%I TO finops_reader', table_name);
        EXECUTE format(
            'GRANT SELECT, INSERT, UPDATE, DELETE ON finops_allocated.%I TO finops_writer', table_name
        );
    END LOOP;
END
$$;

-- Months published before this migration have no rule applied: their allocated view is their direct
-- view, line for line, so the allocation check balances from the first run after the upgrade.
INSERT INTO finops.fact_releve_allocated
SELECT period_month, application_id, product_id, family_id, domain_id, min(usage_unit), currency,
       sum(usage_quantity), sum(total_cost), 0, 0, sum(total_cost), max(run_id)
FROM finops.fact_releve
GROUP BY period_month, application_id, product_id, family_id, domain_id, currency;

DO $$
DECLARE
    table_name text;
BEGIN
    FOR table_name IN
        SELECT tablename FROM pg_tables WHERE schemaname = 'finops' AND tablename LIKE 'mv\_%' ORDER BY 1
    LOOP
        EXECUTE format('INSERT INTO finops_allocated.%I SELECT * FROM finops.%I', table_name, table_name);
    END LOOP;
END
$$;

GRANT USAGE ON SCHEMA finops_allocated TO finops_reader, finops_writer;
GRANT SELECT, INSERT, UPDATE, DELETE ON finops.allocation_rule, finops.fact_allocation,
    finops.fact_releve_allocated TO finops_writer;
