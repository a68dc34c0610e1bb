"""otlp_bridge: Claude Code's OpenTelemetry export as exact Prometheus series."""

__version__ = "0.1.0"
