-- A public-cloud month stages tens of thousands of relevés per run: a unique index over five text
-- columns made most of that COPY's time. Uniqueness is the fold's (one relevé per application,
-- product, source and billed currency, by its GROUP BY) and fact_releve's primary key enforces it
-- again at publish; the staging table only needs to find a run's month.
ALTER TABLE finops.public_cloud_releves DROP CONSTRAINT public_cloud_releves_pkey;
CREATE INDEX public_cloud_releves_run ON finops.public_cloud_releves (period_month, run_id);
