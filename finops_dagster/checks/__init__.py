"""Asset checks: nothing lost (reconciliation), volume anomalies, views consistent with fact_releve."""
