"""Pushing the bridge's exact totals to Prometheus remote-write receivers."""
