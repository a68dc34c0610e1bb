"""`otlp-bridge serve` as a real process: listeners, readiness, SIGTERM."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.prometheus_server import free_port
from tests.support import CLAUDE


def _wait(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(url)


def test_serve_runs_answers_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    grpc_port, http_port, metrics_port = free_port(), free_port(), free_port()
    config = tmp_path / "bridge.toml"
    config.write_text(f"[server]\ngrpc_port = {grpc_port}\nmetrics_port = {metrics_port}\n"
                      f'[state]\ndir = "{tmp_path / "state"}"\n')
    env = {**os.environ, "OTLP_BRIDGE_SERVER__HTTP_PORT": str(http_port)}
    process = subprocess.Popen([sys.executable, "-m", "otlp_bridge", "serve", "--config", str(config)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait(f"http://127.0.0.1:{metrics_port}/readyz")
        body = (CLAUDE / "t1_http_protobuf_sayhi" / "0002_http_metrics.pb").read_bytes()
        request = urllib.request.Request(f"http://127.0.0.1:{http_port}/v1/metrics", data=body,
                                         headers={"Content-Type": "application/x-protobuf"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
            assert b'claude_code_token_usage_tokens_total{' in response.read()
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
    assert process.returncode == 0, output
    text = output.decode()
    assert f"OTLP/gRPC listening on 127.0.0.1:{grpc_port}" in text
    assert f"OTLP/HTTP listening on http://127.0.0.1:{http_port}" in text
    assert f"Prometheus metrics on http://127.0.0.1:{metrics_port}/metrics" in text


def test_serve_with_bad_config_lists_the_problem_and_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[server]\ngrpc_port = -1\n")
    result = subprocess.run([sys.executable, "-m", "otlp_bridge", "serve", "--config", str(config)],
                            capture_output=True, timeout=30, check=False)
    assert result.returncode == 2
    assert b"server.grpc_port" in result.stderr


def _serve_fails(env: dict[str, str], *args: str) -> str:
    """Run `serve` expecting a start-up failure: exit code 2 and one error line, no traceback."""
    ports = {"OTLP_BRIDGE_SERVER__GRPC_PORT": "0", "OTLP_BRIDGE_SERVER__HTTP_PORT": "0",
             "OTLP_BRIDGE_SERVER__METRICS_PORT": "0"}
    result = subprocess.run([sys.executable, "-m", "otlp_bridge", "serve", *args],
                            env={**os.environ, **ports, **env}, capture_output=True, text=True, timeout=30,
                            check=False)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line or line.startswith("otlp-bridge:")]
    assert len(errors) == 1, result.stderr
    assert not [line for line in result.stderr.splitlines() if line.startswith("E1")], result.stderr  # gRPC core
    return errors[0]


@pytest.mark.parametrize("setting", ["grpc_port", "http_port", "metrics_port"])
def test_a_port_in_use_names_its_setting(tmp_path: Path, setting: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = _serve_fails({f"OTLP_BRIDGE_SERVER__{setting.upper()}": str(port),
                             "OTLP_BRIDGE_STATE__DIR": str(tmp_path)})
    assert f"cannot start: server.{setting} = {port}: cannot listen on 127.0.0.1:{port}: address already in use" \
        in line


def test_a_host_not_of_this_machine_names_server_host(tmp_path: Path) -> None:
    line = _serve_fails({"OTLP_BRIDGE_SERVER__HOST": "192.0.2.1", "OTLP_BRIDGE_STATE__DIR": str(tmp_path)})
    assert "cannot start: server.host = 192.0.2.1: cannot listen on 192.0.2.1:0" in line


def test_an_unusable_state_dir_names_state_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a directory below a file cannot be made, whoever runs the test (root too)
    line = _serve_fails({"OTLP_BRIDGE_STATE__DIR": str(blocker / "state")})
    assert f"state.dir = {blocker / 'state'}" in line


def test_a_bad_log_level_joins_the_config_errors(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('log_level = "LOUD"\nlog_format = "xml"\n')
    result = subprocess.run([sys.executable, "-m", "otlp_bridge", "serve", "--config", str(config)],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "  log_level: Input should be 'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL'" in result.stderr
    assert "  log_format: Input should be 'text' or 'json'" in result.stderr


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """a.crt with its a.key, and b.key that belongs to no certificate here."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (make test-tools)")
    d = tmp_path_factory.mktemp("pem")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=t"]
    subprocess.run(["openssl", "req", "-x509", *ec, "-keyout", "a.key", "-out", "a.crt"], cwd=d, check=True,
                   capture_output=True, timeout=30)
    subprocess.run(["openssl", "req", "-x509", *ec, "-keyout", "b.key", "-out", "b.crt"], cwd=d, check=True,
                   capture_output=True, timeout=30)
    return d


@pytest.mark.parametrize(("cert", "key", "expected"), [
    ("missing.crt", "a.key", "tls.cert_file = {d}/missing.crt: cannot read it"),
    ("a.crt", "missing.key", "tls.key_file = {d}/missing.key: cannot read it"),
    ("a.key", "a.key", "tls.cert_file = {d}/a.key: not a PEM certificate"),
    ("a.crt", "b.key", "tls.key_file = {d}/b.key: not the PEM private key of tls.cert_file"),
])
def test_bad_tls_files_name_the_setting(tmp_path: Path, pem: Path, cert: str, key: str, expected: str) -> None:
    line = _serve_fails({"OTLP_BRIDGE_TLS__CERT_FILE": str(pem / cert), "OTLP_BRIDGE_TLS__KEY_FILE": str(pem / key),
                         "OTLP_BRIDGE_STATE__DIR": str(tmp_path)})
    assert expected.format(d=pem) in line


def test_json_logs_and_the_digest_say_what_arrived(tmp_path: Path) -> None:
    http_port, metrics_port = free_port(), free_port()
    config = tmp_path / "bridge.toml"
    config.write_text(f'log_format = "json"\nlog_level = "debug"\nlog_digest_interval = 0.5\n'
                      f"[server]\ngrpc_port = 0\nhttp_port = {http_port}\nmetrics_port = {metrics_port}\n"
                      f'[state]\ndir = "{tmp_path / "state"}"\n')
    process = subprocess.Popen([sys.executable, "-m", "otlp_bridge", "serve", "--config", str(config)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait(f"http://127.0.0.1:{metrics_port}/readyz")
        for name, kind in (("0002_http_metrics.pb", "metrics"), ("0001_http_logs.pb", "logs")):
            body = (CLAUDE / "t1_http_protobuf_sayhi" / name).read_bytes()
            request = urllib.request.Request(f"http://127.0.0.1:{http_port}/v1/{kind}", data=body,
                                             headers={"Content-Type": "application/x-protobuf"})
            urllib.request.urlopen(request, timeout=5).close()
        time.sleep(1.2)  # at least one digest after the exports
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
    records = [json.loads(line) for line in output.splitlines()]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert any(r["message"].startswith("OTLP/gRPC listening on") for r in records)
    digests = [r for r in records if r["logger"] == "otlp_bridge.digest" and r["exports_accepted"]]
    assert digests, output
    assert digests[0]["exports_accepted"] == 2
    assert digests[0]["series"] > 0
    assert "last client seen" in digests[-1]["message"]
    exports = [r for r in records if r["logger"] == "otlp_bridge.export"]  # at DEBUG, one line per export
    assert [(r["transport"], r["signal"], r["outcome"]) for r in exports] == [("http", "metrics", "success"),
                                                                            ("http", "logs", "success")]
    assert exports[0]["message"].startswith("http metrics export of ")
    assert "last_client_seen" in digests[-1]


def test_a_slow_protobuf_backend_is_warned_about_at_start(tmp_path: Path, monkeypatch, caplog) -> None:
    import asyncio  # noqa: PLC0415

    from google.protobuf.internal import api_implementation  # noqa: PLC0415

    from otlp_bridge.app import Bridge  # noqa: PLC0415
    from tests.support import settings_for_test  # noqa: PLC0415

    monkeypatch.setattr(api_implementation, "Type", lambda: "python")

    async def start_stop() -> None:
        bridge = Bridge(settings_for_test(tmp_path))
        await bridge.start()
        await bridge.stop(0)

    asyncio.run(start_stop())
    assert "protobuf is using its 'python' backend, not upb" in caplog.text
