-- A run's relevés of a month are appended together by one COPY, so a block-range index finds them
-- as well as a B-tree does, for a fraction of what maintaining a B-tree costs that COPY (a
-- public-cloud month stages tens of thousands of relevés per run).
DROP INDEX finops.public_cloud_releves_run;
CREATE INDEX public_cloud_releves_run ON finops.public_cloud_releves USING brin (period_month, run_id);
