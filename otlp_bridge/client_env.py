"""`otlp-bridge env`: the environment that points Claude Code at this bridge, for a shell."""

from __future__ import annotations

import urllib.parse
from typing import Literal

Protocol = Literal["grpc", "http/protobuf", "http/json"]
Shell = Literal["bash", "fish", "powershell"]


def default_endpoint(protocol: Protocol, host: str, grpc_port: int, http_port: int) -> str:
    reachable = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    if ":" in reachable:
        reachable = f"[{reachable}]"
    return f"http://{reachable}:{grpc_port if protocol == 'grpc' else http_port}"


def variables(protocol: Protocol, endpoint: str, token: str | None = None,
              metric_interval_ms: int = 60_000, logs_interval_ms: int = 5_000) -> list[tuple[str, str]]:
    """Every variable Claude Code needs, in the order a person reads them."""
    out = [
        ("CLAUDE_CODE_ENABLE_TELEMETRY", "1"),
        ("OTEL_METRICS_EXPORTER", "otlp"),
        ("OTEL_LOGS_EXPORTER", "otlp"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.rstrip("/")),
        ("OTEL_METRIC_EXPORT_INTERVAL", str(metric_interval_ms)),
        ("OTEL_LOGS_EXPORT_INTERVAL", str(logs_interval_ms)),
        # Claude Code's default already; stated so nobody "fixes" it to cumulative by accident.
        ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta"),
    ]
    if token:
        # Percent-encoded as the OTLP spec asks; the bridge decodes it either way.
        out.append(("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=" + urllib.parse.quote(f"Bearer {token}")))
    return out


def _quote_posix(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def _quote_fish(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _quote_powershell(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def render(pairs: list[tuple[str, str]], shell: Shell) -> str:
    if shell == "fish":
        lines = [f"set -gx {k} {_quote_fish(v)}" for k, v in pairs]
    elif shell == "powershell":
        lines = [f"$env:{k} = {_quote_powershell(v)}" for k, v in pairs]
    else:
        lines = [f"export {k}={_quote_posix(v)}" for k, v in pairs]
    return "\n".join(lines) + "\n"
