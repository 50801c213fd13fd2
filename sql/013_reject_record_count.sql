-- How many source records a reject accounts for, next to the relevés' source_record_count, so a
-- domain's record ledger (records read = records in relevés + records in rejects) adds up from the
-- mart's rows. NULL where a domain keeps no record ledger.
ALTER TABLE finops.releve_reject ADD COLUMN IF NOT EXISTS source_record_count bigint
    CHECK (source_record_count >= 0);

-- The native services' record ledger: what each night's answer held (records, counted as the pages
-- arrived; NULL for nights persisted before it was counted) and the records behind each stored row.
ALTER TABLE finops.native_snapshot_night ADD COLUMN IF NOT EXISTS records_received bigint
    CHECK (records_received >= 0);
ALTER TABLE finops.native_snapshot ADD COLUMN IF NOT EXISTS records integer NOT NULL DEFAULT 1
    CHECK (records >= 0);
