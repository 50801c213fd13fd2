-- Every saved night updates each of the month's rows of finops.native_snapshot_month once (its sums
-- and latest values; never a column of the primary key). With room left on each page those updates
-- are HOT: the new version goes on the same page and the previous nights' versions are pruned as the
-- page is next used, so the table stays about twice its live size without waiting for a VACUUM. Full
-- pages (the default fillfactor of 100) would instead leave one dead version per row per night
-- wherever autovacuum is late or off, and every month's query would read them all.
-- The setting applies to pages written from now on; `VACUUM FULL finops.native_snapshot_month`
-- rewrites an existing table with it.
ALTER TABLE finops.native_snapshot_month SET (fillfactor = 45);
