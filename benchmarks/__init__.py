"""Benchmarks: runnable modules (`python -m benchmarks.<name>`) that print figures against a baseline."""
