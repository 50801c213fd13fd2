"""Reference data: domains, families, products, rate cards and mapping rules (versioned files),
and the application referential (from the CMDB)."""
