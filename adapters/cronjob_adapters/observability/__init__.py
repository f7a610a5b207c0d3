"""Observability adapters: Prometheus metrics and JSON logs."""
