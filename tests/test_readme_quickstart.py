"""The README's quick start, block by block, as written, in a fresh clone: `make serve` in the
background, then the second terminal's commands against it.

The clone shares this checkout's installed .venv (a symlink; installing again would take minutes
and the network) and runs the clone's own code (PYTHONPATH). Ports and state come from the
environment (OTLP_BRIDGE_*), so the commands stay exactly as the README has them.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from tests.prometheus_server import free_port, wait_ready

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
STAMP = VENV / ".installed-stamp"


def quickstart_blocks(readme: str) -> list[str]:
    """The ```sh blocks between "## Quick start" and the next section."""
    section = readme.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```sh\n(.*?)^```$", section, flags=re.DOTALL | re.MULTILINE)


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    if not (ROOT / ".git").exists() or not STAMP.exists():
        pytest.skip("needs a git checkout with its .venv installed (make serve or make test)")
    target = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(target)], check=True, timeout=120,
                   capture_output=True)
    (target / ".venv").symlink_to(VENV)
    # make must see the shared .venv as up to date: never reinstall it from the clone.
    older = STAMP.stat().st_mtime - 1
    os.utime(target / "pyproject.toml", (older, older))
    return target


def test_the_quick_start_runs_as_written(clone: Path, tmp_path: Path) -> None:
    serve_block, second_terminal = quickstart_blocks((clone / "README.md").read_text())
    assert "make serve" in serve_block
    grpc, http, metrics = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTLP_BRIDGE_", "OTEL_", "CLAUDE_CODE_", "VIRTUAL_ENV", "MAKE"))}
    env.update(PYTHONPATH=str(clone), OTLP_BRIDGE_STATE__DIR=str(tmp_path / "state"),
               OTLP_BRIDGE_SERVER__GRPC_PORT=str(grpc), OTLP_BRIDGE_SERVER__HTTP_PORT=str(http),
               OTLP_BRIDGE_SERVER__METRICS_PORT=str(metrics))
    log = (tmp_path / "serve.log").open("w+")
    server = subprocess.Popen(["bash", "-e", "-c", serve_block], cwd=clone, env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_ready(f"http://127.0.0.1:{metrics}/readyz", server, timeout=60)  # type: ignore[arg-type]
        # The second terminal's block, then `env` to see what it left in the shell.
        second = subprocess.run(["bash", "-e", "-c", second_terminal + "\nenv\n"], cwd=clone, env=env,
                                capture_output=True, text=True, timeout=120, check=False)
    finally:
        with contextlib.suppress(ProcessLookupError):  # it may have failed on its own: the log says why
            os.killpg(server.pid, signal.SIGTERM)  # make and the bridge, as Ctrl-C would
        server.wait(30)
    log.seek(0)
    served = log.read()
    assert second.returncode == 0, second.stderr + served
    assert f"ok: an export over grpc to http://127.0.0.1:{grpc} shows on http://127.0.0.1:{metrics}/metrics" \
        in second.stdout
    shell = dict(line.split("=", 1) for line in second.stdout.splitlines() if "=" in line)
    assert shell["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://127.0.0.1:{grpc}"
    assert shell["CLAUDE_CODE_ENABLE_TELEMETRY"] == "1"
    assert "otlp-bridge is .venv/bin/otlp-bridge" in served  # make serve says where the command is
    for line in (f"OTLP/gRPC listening on 127.0.0.1:{grpc}", f"Prometheus metrics on http://127.0.0.1:{metrics}"):
        assert line in served
    assert "Traceback" not in served
