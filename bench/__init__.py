"""Benchmarks that print figures and ratios (`python -m bench.pipeline`)."""
