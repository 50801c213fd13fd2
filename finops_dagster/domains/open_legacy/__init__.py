"""open_legacy: the legacy CMDB (ServiceNow-style) dumped nightly into MongoDB by another team."""
