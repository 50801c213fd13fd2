"""open_legacy: the legacy CMDB (ServiceNow-style) dumped nightly into MongoDB by another team."""

DOMAIN_ID = "open_legacy"
"""The domain's id: its relevés' domain_id, its asset group and its `<id>_releves` asset."""
