"""The HTTP source machinery every API domain shares: settings, auth, retries, circuit breaker, pagination."""
