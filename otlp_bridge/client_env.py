"""`otlp-bridge env`: the environment that points Claude Code (or Gemini CLI, or Codex) at this bridge."""

from __future__ import annotations

import json
import urllib.parse
from typing import Literal

Protocol = Literal["grpc", "http/protobuf", "http/json"]
Shell = Literal["bash", "zsh", "fish", "powershell"]


def reachable(host: str, port: int, *, tls: bool = False) -> str:
    """The base URL a client on this machine uses for a listener bound to `host`."""
    name = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    if ":" in name:
        name = f"[{name}]"
    return f"{'https' if tls else 'http'}://{name}:{port}"


def default_endpoint(protocol: Protocol, host: str, grpc_port: int, http_port: int, *, tls: bool = False) -> str:
    return reachable(host, grpc_port if protocol == "grpc" else http_port, tls=tls)


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
    else:  # bash and zsh read the same POSIX quoting
        lines = [f"export {k}={_quote_posix(v)}" for k, v in pairs]
    return "\n".join(lines) + "\n"


# --- other coding agents ---------------------------------------------------------------------------
Agent = Literal["claude-code", "gemini", "codex"]


def gemini_variables(protocol: Protocol, endpoint: str, token: str | None = None) -> list[tuple[str, str]]:
    """Gemini CLI's telemetry settings as environment variables (each has a `telemetry.*` key in
    settings.json too). It sends OTLP/HTTP as JSON only, to `<endpoint>/v1/<signal>`."""
    if protocol == "http/protobuf":
        raise ValueError("Gemini CLI sends OTLP/HTTP as JSON only: use --protocol http/json or grpc")
    out = [
        ("GEMINI_TELEMETRY_ENABLED", "true"),
        ("GEMINI_TELEMETRY_TARGET", "local"),
        ("GEMINI_TELEMETRY_OTLP_ENDPOINT", endpoint.rstrip("/")),
        ("GEMINI_TELEMETRY_OTLP_PROTOCOL", "grpc" if protocol == "grpc" else "http"),
        # Prompt text stays on the machine (the bridge drops process.command_args by default too).
        ("GEMINI_TELEMETRY_LOG_PROMPTS", "false"),
    ]
    if token:  # read by the OpenTelemetry JS exporters Gemini CLI uses, for HTTP and gRPC alike
        out.append(("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=" + urllib.parse.quote(f"Bearer {token}")))
    return out


def _toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def codex_config(protocol: Protocol, endpoint: str, token: str | None = None) -> str:
    """The `[otel]` table of Codex's config.toml (`$CODEX_HOME/config.toml`, default ~/.codex).

    Codex uses an OTLP/HTTP endpoint verbatim, so each signal gets its full `/v1/<signal>` URL; its
    `metrics_exporter` defaults to OpenAI's own collector, so it is always set."""
    headers = f", headers = {{ authorization = {_toml_string(f'Bearer {token}')} }}" if token else ""
    base = endpoint.rstrip("/")

    def exporter(signal: str) -> str:
        if protocol == "grpc":
            return f"{{ otlp-grpc = {{ endpoint = {_toml_string(base)}{headers} }} }}"
        wire = "binary" if protocol == "http/protobuf" else "json"
        url = _toml_string(f"{base}/v1/{signal}")
        return f"{{ otlp-http = {{ endpoint = {url}, protocol = \"{wire}\"{headers} }} }}"

    return ("# in $CODEX_HOME/config.toml (default ~/.codex/config.toml)\n"
            "[otel]\n"
            "log_user_prompt = false\n"
            f"exporter = {exporter('logs')}\n"
            f"metrics_exporter = {exporter('metrics')}\n")


def agent_setup(agent: Agent, protocol: Protocol, endpoint: str, token: str | None, shell: Shell) -> str:
    """What to paste to point `agent` at the bridge: shell variables, or Codex's config table."""
    if agent == "codex":
        return codex_config(protocol, endpoint, token)
    if agent == "gemini":
        return render(gemini_variables(protocol, endpoint, token), shell)
    return render(variables(protocol, endpoint, token), shell)
