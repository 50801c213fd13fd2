-- domain_load.source_cost (one amount, no currency) was never filled: source_costs (per billing
-- currency, since 007) is what the reconciliation reads.
ALTER TABLE finops.domain_load DROP COLUMN source_cost;
