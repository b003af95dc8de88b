"""Seeing what a running instance does: Prometheus metrics (metrics), JSON logs (logs) and the per-request
middleware that feeds both (requests). Nothing here is global: each app makes its own registry."""
