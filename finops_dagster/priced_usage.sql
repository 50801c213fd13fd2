-- The set-based pricing of metered usage (priced_usage.py runs these by name). Every table is a
-- temporary table of the run's session: one month of one domain at a time.

-- name: create_usage
-- JIT compilation costs more than it saves on these statements (a few hundred thousand rows each)
SELECT set_config('jit', 'off', true);
DROP TABLE IF EXISTS pg_temp.metered_usage, pg_temp.usage_product, pg_temp.source_application,
    pg_temp.rule_answer, pg_temp.resolved_usage;
-- seq: the order the measures and the rejects were met in, which the rejects keep;
-- rule_key: the fields the mapping rules read, computed once per measure (rule_key in priced_usage.py)
CREATE TEMP TABLE metered_usage (
    seq         bigint  NOT NULL,
    source      text    NOT NULL,
    consumer    text    NOT NULL,
    product_id  text    NOT NULL,
    quantity    numeric NOT NULL,
    application text,
    fields      jsonb   NOT NULL,
    records     integer NOT NULL,
    rule_key    jsonb
);

-- name: copy_usage
COPY metered_usage (seq, source, consumer, product_id, quantity, application, fields, records) FROM STDIN

-- name: insert_usage
INSERT INTO metered_usage (seq, source, consumer, product_id, quantity, application, fields, records, rule_key)
SELECT %(after)s + row_number() OVER (), source, consumer, product_id, coalesce(quantity, 0), application,
       fields, records, {key}
FROM (
    SELECT source, consumer, product_id, quantity, application, coalesce(fields, '{{}}'::jsonb) AS fields,
           records
    FROM ({measures}) AS measures (source, consumer, product_id, quantity, application, fields, records)
) AS measures

-- name: key_copied_usage
-- the rule key of the measures staged by COPY
UPDATE metered_usage SET rule_key = {key} WHERE rule_key IS NULL

-- name: create_reference
-- statistics of the staged measures, so the joins below are planned for their real size
ANALYZE metered_usage;
-- the snapshot's products, with the unit cost valid for the month (NULL: no rate card)
CREATE TEMP TABLE usage_product (
    product_id text PRIMARY KEY,
    usage_unit text NOT NULL,
    unit_cost  numeric
);
-- the source's application codes that name a known application, normalised
CREATE TEMP TABLE source_application (
    raw            text PRIMARY KEY,
    application_id text NOT NULL
);
-- the rules' answer for each combination of the fields they read that names a known application
CREATE TEMP TABLE rule_answer (
    key            jsonb PRIMARY KEY,
    application_id text NOT NULL
);

-- name: copy_product
COPY usage_product (product_id, usage_unit, unit_cost) FROM STDIN

-- name: copy_source_application
COPY source_application (raw, application_id) FROM STDIN

-- name: copy_rule_answer
COPY rule_answer (key, application_id) FROM STDIN

-- name: source_applications
-- each application code the source gave (a product of the catalog): how many measures, first seen
SELECT m.application, count(*), min(m.seq)
FROM metered_usage m JOIN usage_product USING (product_id)
WHERE m.application <> ''
GROUP BY m.application

-- name: rule_keys
-- the distinct field combinations of the measures the source's code did not resolve
SELECT DISTINCT m.rule_key
FROM metered_usage m JOIN usage_product USING (product_id)
WHERE NOT EXISTS (SELECT 1 FROM source_application a WHERE a.raw = m.application)

-- name: resolve_usage
-- the measures resolved to applications and summed per source, product, application and how it was
-- resolved: every later step reads these sums, not the measures
CREATE TEMP TABLE resolved_usage AS
SELECT m.source, m.product_id, p.usage_unit,
       coalesce(a.application_id, r.application_id, %(unallocated)s) AS application_id,
       CASE
           WHEN a.application_id IS NOT NULL THEN 'source'
           WHEN r.application_id IS NOT NULL THEN 'rule'
           ELSE 'unallocated'
       END AS method,
       sum(m.quantity) AS quantity, sum(m.records) AS records, count(*) AS measures
FROM metered_usage m
JOIN usage_product p USING (product_id)
LEFT JOIN source_application a ON a.raw = m.application
LEFT JOIN rule_answer r ON a.raw IS NULL AND r.key = m.rule_key
GROUP BY 1, 2, 3, 4, 5

-- name: unknown_products
SELECT seq, source, consumer, product_id, quantity, fields, records
FROM metered_usage m
WHERE NOT EXISTS (SELECT 1 FROM usage_product p WHERE p.product_id = m.product_id)
ORDER BY seq

-- name: resolution_counts
SELECT method, sum(measures) FROM resolved_usage GROUP BY method

-- name: priced_groups
-- one row per application × product × source, in Python's string order; the quantity (divided by
-- the divisor, at 40 decimals so no digit the rounding reads is lost) rounded half-even to the
-- mart's scale, then priced and rounded half-even (NULL: no rate for the month)
SELECT g.application_id, g.product_id, g.source, g.quantity,
       finops.round_half_even(g.quantity * p.unit_cost, 6) AS total_cost,
       g.records
FROM (
    SELECT application_id, product_id, source,
           finops.round_half_even(
               CASE WHEN %(divisor)s = 1 THEN sum(quantity)
                    ELSE round(sum(quantity), 40) / %(divisor)s END, 6) AS quantity,
           sum(records) AS records
    FROM resolved_usage
    GROUP BY application_id, product_id, source
) g
JOIN usage_product p USING (product_id)
ORDER BY g.application_id COLLATE "C", g.product_id COLLATE "C", g.source COLLATE "C"

-- name: source_totals
SELECT usage_unit, sum(quantity) FROM resolved_usage GROUP BY usage_unit

-- name: drop_tables
DROP TABLE IF EXISTS pg_temp.metered_usage, pg_temp.usage_product, pg_temp.source_application,
    pg_temp.rule_answer, pg_temp.resolved_usage
