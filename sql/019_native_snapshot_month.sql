-- The month of every native source, kept up to date as nights are saved (domains/native/snapshots.py,
-- save_snapshot), so computing a month reads one row per consumer and product instead of every
-- night's: per source, month, consumer, product and kind, the sum of the nights' quantities and
-- records, how many nights listed it, and its latest night's quantity, application and attributes.
CREATE TABLE finops.native_snapshot_month (
    source             text    NOT NULL,
    period_month       date    NOT NULL,
    consumer           text    NOT NULL,
    product_id         text    NOT NULL,
    kind               text    NOT NULL,
    quantity_sum       numeric NOT NULL,
    records            bigint  NOT NULL,
    nights             integer NOT NULL CHECK (nights >= 0),  -- 0 only inside save_snapshot
    latest_night       date    NOT NULL,
    latest_quantity    numeric NOT NULL,
    latest_application text,
    latest_attributes  jsonb   NOT NULL,
    PRIMARY KEY (period_month, source, consumer, product_id, kind)
);

-- the nights already saved
INSERT INTO finops.native_snapshot_month
SELECT s.source, s.period_month, s.consumer, s.product_id, s.kind,
       sum(s.quantity), sum(s.records), count(*),
       (array_agg(s.night ORDER BY s.night DESC))[1],
       (array_agg(s.quantity ORDER BY s.night DESC))[1],
       (array_agg(s.application ORDER BY s.night DESC))[1],
       (array_agg(s.attributes ORDER BY s.night DESC))[1]
FROM finops.native_snapshot s
GROUP BY s.source, s.period_month, s.consumer, s.product_id, s.kind;
