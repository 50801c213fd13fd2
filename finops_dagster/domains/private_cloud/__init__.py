"""private_cloud: usage per tenant/project read from internal HTTP APIs (OpenStack Nova, OpenCost)."""
