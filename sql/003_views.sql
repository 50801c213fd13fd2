-- The materialized views of the data mart: what the read API and Backstage serve.
--
-- Every view is created WITH NO DATA; the pipeline populates it with a plain
-- REFRESH MATERIALIZED VIEW the first time (a view never populated cannot be refreshed concurrently),
-- then with REFRESH MATERIALIZED VIEW CONCURRENTLY, which needs the UNIQUE index each view has.
-- Every unique index covers non-nullable columns only (NOT NULL by construction, no COALESCE in keys).
--
-- REFRESH ORDER (a view may read a view above it, never one below it):
--   1. base
--        finops.mv_cost_domain_month
--        finops.mv_cost_family_month
--        finops.mv_cost_application_month
--        finops.mv_cost_group_month            (reads mv_cost_application_month)
--   2. drill-downs
--        finops.mv_cost_app_domain_month
--        finops.mv_cost_app_family_month
--        finops.mv_cost_app_product_month
--        finops.mv_cost_app_quarter            (reads mv_cost_application_month)
--   3. rankings / anomalies
--        finops.mv_rank_app_month             (reads mv_cost_application_month)
--        finops.mv_anomalies_month            (reads mv_cost_app_domain_month)
--   4. history
--        finops.mv_history_domain             (reads mv_cost_domain_month)
--
-- Conventions:
--   * Money is numeric (sums of numeric(24,6)), never floating point; ratios are numeric too.
--   * Every cost view carries `currency` and has it in its grouping and unique key: costs in
--     different currencies are never added together.
--   * period_month is the first day of the month (date), as in fact_releve.
--   * A month with no relevé simply has no row in the per-month views; the views that compare
--     months (ranking, anomalies, history) compare calendar months, not "the previous row".
--   * An empty fact table gives empty views, not errors.


-- =====================================================================================
-- 1. Base views
-- =====================================================================================

CREATE MATERIALIZED VIEW finops.mv_cost_domain_month AS
SELECT
    f.period_month,
    f.domain_id,
    f.currency,
    sum(f.total_cost)                AS total_cost,
    count(*)                         AS releve_count,
    count(DISTINCT f.application_id) AS application_count
FROM finops.fact_releve AS f
GROUP BY f.period_month, f.domain_id, f.currency
WITH NO DATA;

CREATE UNIQUE INDEX mv_cost_domain_month_key
    ON finops.mv_cost_domain_month (period_month, domain_id, currency);

COMMENT ON MATERIALIZED VIEW finops.mv_cost_domain_month IS
    'How much did each technology domain cost each month (per currency), over how many relevés and applications?';


CREATE MATERIALIZED VIEW finops.mv_cost_family_month AS
SELECT
    f.period_month,
    f.domain_id,
    f.family_id,
    f.currency,
    sum(f.total_cost) AS total_cost,
    count(*)          AS releve_count
FROM finops.fact_releve AS f
GROUP BY f.period_month, f.domain_id, f.family_id, f.currency
WITH NO DATA;

CREATE UNIQUE INDEX mv_cost_family_month_key
    ON finops.mv_cost_family_month (period_month, domain_id, family_id, currency);

COMMENT ON MATERIALIZED VIEW finops.mv_cost_family_month IS
    'How much did each product family (within its domain) cost each month, per currency?';


-- group_id comes from dim_application as it is at refresh time. It is NULL for an application
-- that fact_releve knows and dim_application does not: its cost is kept here (nothing lost),
-- and group_id is not part of the key. Such costs cannot appear in mv_cost_group_month.
CREATE MATERIALIZED VIEW finops.mv_cost_application_month AS
SELECT
    c.period_month,
    c.application_id,
    a.group_id,
    c.currency,
    c.total_cost,
    c.releve_count
FROM (
    SELECT
        f.period_month,
        f.application_id,
        f.currency,
        sum(f.total_cost) AS total_cost,
        count(*)          AS releve_count
    FROM finops.fact_releve AS f
    GROUP BY f.period_month, f.application_id, f.currency
) AS c
LEFT JOIN finops.dim_application AS a ON a.application_id = c.application_id
WITH NO DATA;

CREATE UNIQUE INDEX mv_cost_application_month_key
    ON finops.mv_cost_application_month (period_month, application_id, currency);

COMMENT ON MATERIALIZED VIEW finops.mv_cost_application_month IS
    'How much did each application cost each month, per currency, and which application group is it in (NULL when the application is unknown to dim_application)?';


-- Built from mv_cost_application_month (one row per application, month and currency), so
-- application_count is the number of applications of the group with a cost that month.
-- Applications without a group (unknown to dim_application) are left out: group_id is a key column.
CREATE MATERIALIZED VIEW finops.mv_cost_group_month AS
SELECT
    m.period_month,
    m.group_id,
    m.currency,
    sum(m.total_cost) AS total_cost,
    count(*)          AS application_count
FROM finops.mv_cost_application_month AS m
WHERE m.group_id IS NOT NULL
GROUP BY m.period_month, m.group_id, m.currency
WITH NO DATA;

CREATE UNIQUE INDEX mv_cost_group_month_key
    ON finops.mv_cost_group_month (period_month, group_id, currency);

COMMENT ON MATERIALIZED VIEW finops.mv_cost_group_month IS
    'How much did each application group cost each month, per currency, and how many of its applications had a cost?';


-- =====================================================================================
-- 2. Drill-downs
-- =====================================================================================

CREATE MATERIALIZED VIEW finops.mv_cost_app_domain_month AS
SELECT
    f.period_month,
    f.application_id,
    f.domain_id,
    f.currency,
    sum(f.total_cost) AS total_cost,
    count(*)          AS releve_count
FROM finops.fact_releve AS f
GROUP BY f.period_month, f.application_id, f.domain_id, f.currency
WITH NO DATA;

CREATE UNIQUE INDEX mv_cost_app_domain_month_key
    ON finops.mv_cost_app_domain_month (period_month, application_id, domain_id, currency);

COMMENT ON MATERIALIZED VIEW finops.mv_cost_app_domain_month IS
    'For an application and a month, how is its cost split across technology domains (per currency)?';


CREATE MATERIALIZED VIEW finops.mv_cost_app_family_month AS
SELECT
    f.period_month,
    f.application_id,
    f.domain_id,
    f.family_id,
    f.currency,
    sum(f.total_cost) AS total_cost,
    count(*)          AS releve_count
FROM finops.fact_releve AS f
GROUP BY f.period_month, f.application_id, f.domain_id, f.family_id, f.currency
WITH NO DATA;

CREATE UNIQUE INDEX mv_cost_app_family_month_key
    ON finops.mv_cost_app_family_month (period_month, application_id, domain_id, family_id, currency);

COMMENT ON MATERIALIZED VIEW finops.mv_cost_app_family_month IS
    'For an application and a month, how is its cost split across product families (with their domain), per currency?';


-- One product may be reported by several sources (fact_releve's key includes source): they are
-- added up here. usage_unit is part of the grouping and of the key, so quantities in different
-- units are never added together; the key is exactly the grouping, so a refresh cannot fail on it.
CREATE MATERIALIZED VIEW finops.mv_cost_app_product_month AS
SELECT
    f.period_month,
    f.application_id,
    f.domain_id,
    f.family_id,
    f.product_id,
    f.usage_unit,
    f.currency,
    sum(f.usage_quantity) AS usage_quantity,
    sum(f.total_cost)     AS total_cost,
    count(*)              AS releve_count
FROM finops.fact_releve AS f
GROUP BY f.period_month, f.application_id, f.domain_id, f.family_id, f.product_id, f.usage_unit, f.currency
WITH NO DATA;

CREATE UNIQUE INDEX mv_cost_app_product_month_key
    ON finops.mv_cost_app_product_month
       (period_month, application_id, domain_id, family_id, product_id, usage_unit, currency);

COMMENT ON MATERIALIZED VIEW finops.mv_cost_app_product_month IS
    'For an application and a month, what did it consume and pay per product (quantity in the product''s unit, cost per currency)?';


-- period_quarter is the first day of the quarter. months_count is the number of months of the
-- quarter in which the application had a cost row (1 to 3; a quarter still running counts the
-- months loaded so far). group_id is functionally dependent on application_id (see
-- mv_cost_application_month), so grouping by it does not split rows.
CREATE MATERIALIZED VIEW finops.mv_cost_app_quarter AS
SELECT
    date_trunc('quarter', m.period_month)::date AS period_quarter,
    m.application_id,
    m.group_id,
    m.currency,
    sum(m.total_cost) AS total_cost,
    count(*)          AS months_count
FROM finops.mv_cost_application_month AS m
GROUP BY date_trunc('quarter', m.period_month)::date, m.application_id, m.group_id, m.currency
WITH NO DATA;

CREATE UNIQUE INDEX mv_cost_app_quarter_key
    ON finops.mv_cost_app_quarter (period_quarter, application_id, currency);

COMMENT ON MATERIALIZED VIEW finops.mv_cost_app_quarter IS
    'How much did each application cost each quarter, per currency, and over how many months with data?';


-- =====================================================================================
-- 3. Rankings and anomalies
-- =====================================================================================

-- cost_rank: dense rank within (period_month, currency), 1 = most expensive; equal costs share a rank.
-- previous_month_cost: the application's cost in the previous calendar month (same currency),
--   0 when it had no cost row that month (a month with no data is a 0, not "the last row before").
-- month_over_month_change = total_cost - previous_month_cost (absolute, in the currency).
-- month_over_month_ratio  = total_cost / previous_month_cost (1.25 = +25 %), NULL when the previous cost is 0.
-- Only applications with a cost row in the month are ranked; an application whose cost fell to
-- nothing shows up in mv_anomalies_month (DROP with total_cost 0), not here.
CREATE MATERIALIZED VIEW finops.mv_rank_app_month AS
SELECT
    c.period_month,
    c.application_id,
    c.currency,
    c.total_cost,
    dense_rank() OVER (PARTITION BY c.period_month, c.currency ORDER BY c.total_cost DESC) AS cost_rank,
    COALESCE(p.total_cost, 0)                          AS previous_month_cost,
    c.total_cost - COALESCE(p.total_cost, 0)           AS month_over_month_change,
    c.total_cost / NULLIF(p.total_cost, 0)             AS month_over_month_ratio
FROM finops.mv_cost_application_month AS c
LEFT JOIN finops.mv_cost_application_month AS p
       ON p.application_id = c.application_id
      AND p.currency = c.currency
      AND p.period_month = (c.period_month - interval '1 month')::date
WITH NO DATA;

CREATE UNIQUE INDEX mv_rank_app_month_key
    ON finops.mv_rank_app_month (period_month, application_id, currency);

COMMENT ON MATERIALIZED VIEW finops.mv_rank_app_month IS
    'Which applications cost the most each month (per currency), and how did each one move against the previous calendar month?';


-- Grain: application x domain x month x currency (from mv_cost_app_domain_month), so a spike in one
-- domain is not hidden by the application's other domains.
--
-- Thresholds (trailing window = the 3 calendar months before period_month; a month without a cost
-- row counts as 0; trailing_avg_cost = (sum of those 3 months) / 3):
--   SPIKE : trailing_avg_cost > 0 AND total_cost > 1.5 x trailing_avg_cost
--   DROP  : trailing_avg_cost > 0 AND total_cost < 0.5 x trailing_avg_cost
--   NEW   : no non-zero cost in any of the 3 previous months AND total_cost > 0
-- The three are mutually exclusive, so each row has exactly one anomaly_kind. The comparisons are
-- done on the exact 3-month sum (2 x cost > sum, 6 x cost < sum), not on the rounded average.
-- deviation_ratio = total_cost / trailing_avg_cost (so SPIKE > 1.5, DROP < 0.5), NULL for NEW.
-- trailing_months_present = how many of the 3 previous months have a cost row (0 to 3).
--
-- Disappearances: an application whose cost fell to nothing has no row in the month. Candidate rows
-- are therefore built from the month itself AND from each of the 3 previous months' rows (each cost
-- row at month m is projected onto m, m+1, m+2, m+3), so such an application appears as a DROP
-- with total_cost 0. Months after the latest month present in the mart are not evaluated (they are
-- not loaded yet, so "no row" there means "unknown", not "zero"). A disappeared application is
-- reported as DROP in each of the (up to) 3 months after its last cost, while its trailing average is > 0.
-- Note: the first months of the mart have no history before them, so they read as 0 (NEW, SPIKE).
CREATE MATERIALIZED VIEW finops.mv_anomalies_month AS
WITH last_month AS (
    SELECT max(period_month) AS period_month
    FROM finops.mv_cost_app_domain_month
),
projected AS (
    -- k = 0: the month's own cost; k = 1..3: this cost seen as one of the trailing months of month m + k.
    SELECT
        (c.period_month + make_interval(months => k.k))::date AS period_month,
        c.application_id,
        c.domain_id,
        c.currency,
        k.k              AS months_back,
        c.total_cost
    FROM finops.mv_cost_app_domain_month AS c
    CROSS JOIN generate_series(0, 3) AS k (k)
    CROSS JOIN last_month AS l
    WHERE (c.period_month + make_interval(months => k.k))::date <= l.period_month
),
scored AS (
    SELECT
        p.period_month,
        p.application_id,
        p.domain_id,
        p.currency,
        -- each (month, application, domain, currency) has at most one row in the source view,
        -- so each months_back value contributes at most one row here.
        COALESCE(sum(p.total_cost) FILTER (WHERE p.months_back = 0), 0)         AS total_cost,
        COALESCE(sum(p.total_cost) FILTER (WHERE p.months_back > 0), 0)         AS trailing_sum,
        count(*) FILTER (WHERE p.months_back > 0)                                  AS trailing_months_present,
        count(*) FILTER (WHERE p.months_back > 0 AND p.total_cost <> 0)            AS trailing_months_with_cost
    FROM projected AS p
    GROUP BY p.period_month, p.application_id, p.domain_id, p.currency
)
SELECT
    s.period_month,
    s.application_id,
    s.domain_id,
    s.currency,
    s.total_cost,
    s.trailing_sum / 3                                                   AS trailing_avg_cost,
    s.trailing_months_present::integer                                   AS trailing_months_present,
    CASE WHEN s.trailing_sum > 0 THEN 3 * s.total_cost / s.trailing_sum END AS deviation_ratio,
    CASE
        WHEN s.trailing_sum > 0 AND 2 * s.total_cost > s.trailing_sum THEN 'SPIKE'   -- cost > 1.5 x avg
        WHEN s.trailing_sum > 0 AND 6 * s.total_cost < s.trailing_sum THEN 'DROP'    -- cost < 0.5 x avg
        ELSE 'NEW'
    END::text                                                            AS anomaly_kind
FROM scored AS s
WHERE (s.trailing_sum > 0 AND 2 * s.total_cost > s.trailing_sum)          -- SPIKE
   OR (s.trailing_sum > 0 AND 6 * s.total_cost < s.trailing_sum)          -- DROP (including to 0)
   OR (s.trailing_months_with_cost = 0 AND s.total_cost > 0)              -- NEW
WITH NO DATA;

CREATE UNIQUE INDEX mv_anomalies_month_key
    ON finops.mv_anomalies_month (period_month, application_id, domain_id, currency);

COMMENT ON MATERIALIZED VIEW finops.mv_anomalies_month IS
    'Which applications (per domain and currency) spiked (> 1.5 x), dropped (< 0.5 x, including to nothing) or appeared this month, against their average over the 3 previous calendar months?';


-- =====================================================================================
-- 4. History
-- =====================================================================================

-- One row per domain, currency and calendar month, from the domain's first month with a cost in
-- that currency up to the latest month in the mart: months without data are present with
-- total_cost 0, so the series has no holes.
--   cumulative_cost_year_to_date: January .. period_month of the same calendar year.
--   rolling_12m_cost: the 12 months ending with period_month (period_month included).
--   previous_year_cost: the same month a year earlier, 0 when absent.
CREATE MATERIALIZED VIEW finops.mv_history_domain AS
WITH bounds AS (
    SELECT
        d.domain_id,
        d.currency,
        min(d.period_month) AS first_month,
        (SELECT max(period_month) FROM finops.mv_cost_domain_month) AS last_month
    FROM finops.mv_cost_domain_month AS d
    GROUP BY d.domain_id, d.currency
),
series AS (
    SELECT
        b.domain_id,
        b.currency,
        m.month::date AS period_month
    FROM bounds AS b
    CROSS JOIN LATERAL generate_series(b.first_month::timestamp, b.last_month::timestamp, interval '1 month') AS m (month)
),
dense AS (
    SELECT
        s.domain_id,
        s.currency,
        s.period_month,
        COALESCE(d.total_cost, 0) AS total_cost
    FROM series AS s
    LEFT JOIN finops.mv_cost_domain_month AS d
           ON d.domain_id = s.domain_id
          AND d.currency = s.currency
          AND d.period_month = s.period_month
)
SELECT
    x.domain_id,
    x.currency,
    x.period_month,
    x.total_cost,
    sum(x.total_cost) OVER (
        PARTITION BY x.domain_id, x.currency, date_trunc('year', x.period_month)
        ORDER BY x.period_month
        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    ) AS cumulative_cost_year_to_date,
    sum(x.total_cost) OVER (
        PARTITION BY x.domain_id, x.currency
        ORDER BY x.period_month
        RANGE BETWEEN interval '11 months' PRECEDING AND CURRENT ROW
    ) AS rolling_12m_cost,
    -- the series is dense from the first month with a cost, so 12 rows back is 12 months back;
    -- before the series starts there was no cost.
    lag(x.total_cost, 12, 0::numeric) OVER (
        PARTITION BY x.domain_id, x.currency
        ORDER BY x.period_month
    ) AS previous_year_cost
FROM dense AS x
WITH NO DATA;

CREATE UNIQUE INDEX mv_history_domain_key
    ON finops.mv_history_domain (domain_id, currency, period_month);

COMMENT ON MATERIALIZED VIEW finops.mv_history_domain IS
    'How has each domain''s cost evolved month by month (per currency): year to date, rolling 12 months, and against the same month a year earlier?';
