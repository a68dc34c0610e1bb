"""`otlp-bridge serve` as a real process: listeners, readiness, SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

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


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    import socket  # noqa: PLC0415

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {**os.environ, "OTLP_BRIDGE_SERVER__HTTP_PORT": str(port),
               "OTLP_BRIDGE_SERVER__GRPC_PORT": str(free_port()),
               "OTLP_BRIDGE_SERVER__METRICS_PORT": str(free_port()),
               "OTLP_BRIDGE_STATE__DIR": str(tmp_path)}
        result = subprocess.run([sys.executable, "-m", "otlp_bridge", "serve"], env=env, capture_output=True,
                                timeout=30, check=False)
    assert result.returncode == 1
    assert b"cannot start" in result.stderr
    assert b"Traceback" not in result.stderr


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
