"""`otlp-bridge env` sourced in a real shell drives the OTel SDK to the bridge; `check` explains failures."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from otlp_bridge.check import CHECK_SERIES, run_check
from otlp_bridge.client_env import render, variables
from tests.prometheus_server import free_port
from tests.support import RunningBridge, settings_for_test

# Exports one counter with whatever the environment says, like Claude Code would.
SDK_CLIENT = """
import os
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
if os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
else:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
provider = MeterProvider(metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter(),
                                                                       export_interval_millis=3600000)])
provider.get_meter("env-test").create_counter("env.test", unit="1").add(7)
assert provider.force_flush(10000)
provider.shutdown()
"""


def _run_env_in_bash(args: list[str]) -> dict[str, str]:
    script = f'eval "$({sys.executable} -m otlp_bridge env {" ".join(args)})" && env'
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CLAUDE_CODE_"))}
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60, check=True, env=clean)
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_env_sourced_in_bash_points_the_sdk_at_the_bridge(tmp_path: Path, protocol: str) -> None:
    bridge = RunningBridge(settings_for_test(tmp_path, auth={"tokens": [{"token": "s3cret tok"}]}))
    try:
        port = bridge.ports.grpc if protocol == "grpc" else bridge.ports.http
        env = _run_env_in_bash(["--protocol", protocol, "--endpoint", f"http://127.0.0.1:{port}",
                                "--token", "'s3cret tok'"])
        assert env["CLAUDE_CODE_ENABLE_TELEMETRY"] == "1"
        assert env["OTEL_METRICS_EXPORTER"] == env["OTEL_LOGS_EXPORTER"] == "otlp"
        assert env["OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"] == "delta"
        subprocess.run([sys.executable, "-c", SDK_CLIENT], env=env, check=True, timeout=60, capture_output=True)
        assert bridge.scrape().total("env_test_total") == 7
    finally:
        bridge.stop()


def test_env_defaults_follow_the_config(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[server]\nhost = "0.0.0.0"\ngrpc_port = 5317\nhttp_port = 5318\n')
    env = _run_env_in_bash(["--protocol", "http/json", "--config", str(config)])
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:5318"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/json"
    assert "OTEL_EXPORTER_OTLP_HEADERS" not in env
    config.write_text('[tls]\ncert_file = "/etc/t.crt"\nkey_file = "/etc/t.key"\n')  # only read by serve
    assert _run_env_in_bash(["--config", str(config)])["OTEL_EXPORTER_OTLP_ENDPOINT"] == "https://127.0.0.1:4317"


def test_other_shells_quote_safely() -> None:
    pairs = variables("grpc", "http://h:4317", token="it's")
    assert "set -gx OTEL_EXPORTER_OTLP_HEADERS 'Authorization=Bearer%20it%27s'" in render(pairs, "fish")
    assert "$env:OTEL_EXPORTER_OTLP_PROTOCOL = 'grpc'" in render(pairs, "powershell")
    assert render([("K", "a'b")], "bash") == "export K='a'\\''b'\n"
    assert render([("K", "a'b")], "powershell") == "$env:K = 'a''b'\n"


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf", "http/json"])
def test_check_confirms_a_working_bridge(bridge: RunningBridge, protocol: str) -> None:
    port = bridge.ports.grpc if protocol == "grpc" else bridge.ports.http
    result = run_check(f"http://127.0.0.1:{port}", bridge.metrics_url, protocol)  # type: ignore[arg-type]
    assert result.ok, result.message


def test_check_explains_connection_refused() -> None:
    port = free_port()
    result = run_check(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}/metrics", "http/protobuf", wait=2)
    assert not result.ok
    assert "nothing is listening" in result.message
    result = run_check(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}/metrics", "grpc", wait=2)
    assert "nothing is listening" in result.message


def test_check_tells_a_missing_token_from_an_unknown_one(tmp_path: Path) -> None:
    bridge = RunningBridge(settings_for_test(tmp_path, auth={"tokens": [{"token": "t"}]}))
    try:
        for protocol, port in (("grpc", bridge.ports.grpc), ("http/protobuf", bridge.ports.http),
                               ("http/json", bridge.ports.http)):
            endpoint = f"http://127.0.0.1:{port}"
            missing = run_check(endpoint, bridge.metrics_url, protocol)  # type: ignore[arg-type]
            expected = f"{endpoint} wants a token: pass --token (one of the bridge's [[auth.tokens]])."
            assert missing.message == expected, missing.message
            wrong = run_check(endpoint, bridge.metrics_url, protocol, token="not-t")  # type: ignore[arg-type]
            assert wrong.message.startswith(f"{endpoint} does not know this token: it matches none of the bridge's "
                                            "[[auth.tokens]]"), wrong.message
        assert run_check(f"http://127.0.0.1:{bridge.ports.http}", bridge.metrics_url, "http/protobuf",
                         token="t").ok
    finally:
        bridge.stop()


def _check_traces(scrape_text: str) -> list[str]:
    return [line for line in scrape_text.splitlines()
            if line.startswith((CHECK_SERIES, "target_info")) or "otlp-bridge-check" in line]


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_check_leaves_no_series_behind(tmp_path: Path, protocol: str) -> None:
    settings = settings_for_test(tmp_path, auth={"tokens": [{"token": "t"}]})
    bridge = RunningBridge(settings)
    try:
        port = bridge.ports.grpc if protocol == "grpc" else bridge.ports.http
        result = run_check(f"http://127.0.0.1:{port}", bridge.metrics_url, protocol, token="t")  # type: ignore[arg-type]
        assert result.ok, result.message
        assert result.message.endswith(bridge.metrics_url)  # nothing to report about the clean-up
        assert _check_traces(bridge.scrape().text) == []
        assert bridge.scrape().total("otlp_bridge_series") == 0
    finally:
        bridge.stop()
    again = RunningBridge(settings)  # and nothing comes back from the state file
    try:
        assert _check_traces(again.scrape().text) == []
        assert again.scrape().total("otlp_bridge_series") == 0
    finally:
        again.stop()


def test_check_reads_a_metrics_port_with_basic_auth(tmp_path: Path) -> None:
    metrics_auth = {"basic_username": "prom", "basic_password": "pw"}
    bridge = RunningBridge(settings_for_test(tmp_path, auth={"metrics": metrics_auth}))
    config = tmp_path / "bridge.toml"
    config.write_text('[auth.metrics]\nbasic_username = "prom"\nbasic_password = "pw"\n')
    base = [sys.executable, "-m", "otlp_bridge", "check", "--endpoint", f"http://127.0.0.1:{bridge.ports.grpc}",
            "--metrics-url", bridge.metrics_url, "--wait", "3"]
    try:
        without = subprocess.run(base, capture_output=True, text=True, timeout=60, check=False)
        assert without.returncode == 1
        assert f"{bridge.metrics_url} wants credentials: pass --metrics-token TOKEN or --metrics-user " \
               "USER:PASSWORD" in without.stderr
        wrong = subprocess.run([*base, "--metrics-user", "prom:nope"], capture_output=True, text=True, timeout=60,
                               check=False)
        assert "refused the credentials given" in wrong.stderr
        for extra in (["--metrics-user", "prom:pw"], ["--config", str(config)]):
            ok = subprocess.run([*base, *extra], capture_output=True, text=True, timeout=60, check=False)
            assert ok.returncode == 0, ok.stderr
    finally:
        bridge.stop()


def test_env_warns_when_the_config_wants_a_token(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[[auth.tokens]]\nsha256 = "' + "ab" * 32 + '"\n')
    command = [sys.executable, "-m", "otlp_bridge", "env", "--config", str(config)]
    without = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    assert without.stderr.startswith("otlp-bridge: warning: this config requires a token")
    assert without.stdout.startswith("export CLAUDE_CODE_ENABLE_TELEMETRY='1'")  # still usable with eval
    given = subprocess.run([*command, "--token", "x"], capture_output=True, text=True, timeout=60, check=True)
    assert given.stderr == ""


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed (make test-tools)")
def test_env_sourced_in_zsh() -> None:
    script = f'eval "$({sys.executable} -m otlp_bridge env --shell zsh --token \"it\'s\")" && env'
    result = subprocess.run(["zsh", "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert "OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20it%27s" in result.stdout.splitlines()


def test_check_explains_the_wrong_protocol_for_the_port(bridge: RunningBridge) -> None:
    result = run_check(f"http://127.0.0.1:{bridge.ports.grpc}", bridge.metrics_url, "http/protobuf", wait=3)
    assert "Wrong protocol for this port" in result.message, result.message
    result = run_check(f"http://127.0.0.1:{bridge.ports.http}", bridge.metrics_url, "grpc", wait=3)
    assert "Wrong protocol for this port" in result.message, result.message


def test_check_explains_data_that_never_shows(bridge: RunningBridge, tmp_path: Path) -> None:
    other = RunningBridge(settings_for_test(tmp_path / "other"))
    try:  # exported to one bridge, looked for on another's /metrics
        result = run_check(f"http://127.0.0.1:{bridge.ports.http}", other.metrics_url, "http/protobuf", wait=1)
    finally:
        other.stop()
    assert not result.ok
    assert "does not show it" in result.message


def test_check_command_exit_codes(bridge: RunningBridge) -> None:
    ok = subprocess.run([sys.executable, "-m", "otlp_bridge", "check", "--protocol", "grpc",
                         "--endpoint", f"http://127.0.0.1:{bridge.ports.grpc}", "--metrics-url", bridge.metrics_url],
                        capture_output=True, text=True, timeout=60, check=False)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("ok:")
    port = free_port()
    bad = subprocess.run([sys.executable, "-m", "otlp_bridge", "check", "--endpoint", f"http://127.0.0.1:{port}",
                          "--metrics-url", f"http://127.0.0.1:{port}/metrics", "--wait", "1"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 1
    assert "nothing is listening" in bad.stderr
