"""Observability: the run's metrics (pushed to a Pushgateway) and optional traces, JSON logs."""
