"""native: usage of internal shared services (GitLab storage and CI minutes, Artifactory storage)."""
