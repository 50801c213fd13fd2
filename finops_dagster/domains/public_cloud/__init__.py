"""The public_cloud domain: provider bills (FOCUS exports, the GCP billing export, cost APIs) as relevés."""

DOMAIN_ID = "public_cloud"
"""The domain's id: its relevés' domain_id, its asset group and its `<id>_releves` asset."""
