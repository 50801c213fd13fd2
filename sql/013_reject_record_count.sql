-- How many source records a reject accounts for, next to the relevés' source_record_count, so a
-- domain's record ledger (records read = records in relevés + records in rejects) adds up from the
-- mart's rows. NULL where a domain keeps no record ledger.
ALTER TABLE finops.releve_reject ADD COLUMN IF NOT EXISTS source_record_count bigint
    CHECK (source_record_count >= 0);
