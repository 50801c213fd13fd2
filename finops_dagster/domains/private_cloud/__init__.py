"""private_cloud: usage per tenant/project read from internal HTTP APIs (OpenStack Nova, OpenCost)."""

DOMAIN_ID = "private_cloud"
"""The domain's id: its relevés' domain_id, its asset group and its `<id>_releves` asset."""
