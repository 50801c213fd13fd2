"""Deterministic demo data: the shared organisation and each domain's synthetic sources."""
