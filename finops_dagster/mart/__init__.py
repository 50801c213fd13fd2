"""The PostgreSQL data mart: migrations, staged domain loads, the publish, views and the run ledger."""
