"""`otlp-bridge serve` as a separate OS process on loopback, for crash and signal tests."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.prometheus_server import free_port, wait_ready
from tests.support import Scrape


class BridgeProcess:
    def __init__(self, workdir: Path, state_dir: Path, extra_toml: str = "") -> None:
        self.grpc, self.http, self.metrics = free_port(), free_port(), free_port()
        config = workdir / f"bridge-{self.http}.toml"
        config.write_text(
            f"[server]\ngrpc_port = {self.grpc}\nhttp_port = {self.http}\nmetrics_port = {self.metrics}\n"
            f"[state]\ndir = {json.dumps(str(state_dir))}\n{extra_toml}")
        self.log_path = workdir / f"bridge-{self.http}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen([sys.executable, "-m", "otlp_bridge", "serve", "--config", str(config)],
                                        stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self) -> None:
        try:
            wait_ready(f"http://127.0.0.1:{self.metrics}/readyz", self.process)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}: {self.log_path.read_text()}") from None

    @property
    def pid(self) -> int:
        return self.process.pid

    def post(self, body: bytes, path: str = "/v1/metrics", timeout: float = 10) -> int:
        request = urllib.request.Request(f"http://127.0.0.1:{self.http}{path}", data=body,
                                         headers={"Content-Type": "application/x-protobuf"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)

    def scrape(self) -> Scrape:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics}/metrics", timeout=10) as response:
            return Scrape(response.read().decode(), response.headers["Content-Type"])

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def stop(self, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout)
        self._log.close()
        return int(self.process.returncode)
