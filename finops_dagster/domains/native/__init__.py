"""native: usage of internal shared services (GitLab storage and CI minutes, Artifactory storage)."""

DOMAIN_ID = "native"
"""The domain's id: its relevés' domain_id, its asset group and its `<id>_releves` asset."""
