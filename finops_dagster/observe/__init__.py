"""Observability: the run's metrics (pushed to a Pushgateway), the API's metrics, JSON logs."""
