"""Observability: the Grafana reconciler row, alert rules and dashboard checks."""
