"""The real Dockerfile, built with Debian's docker.io and run as a deployment would run it:
read-only root, non-root, every capability dropped; real capture bodies in, `docker stop`, a new
container on the same volume, the same totals and a healthy HEALTHCHECK.

Base images cannot be pulled on every machine that runs CI, so when the Dockerfile's FROM is not
there a stand-in is made with debootstrap (the machine's Debian release, its python3) and tagged
with exactly that name; it stays cached in docker between runs. The container cannot reach PyPI
here (no route or no trust for the machine's proxy), so the lock's wheels are downloaded on the host
into .wheels/ and installed from there with their hashes checked, nothing fetched.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from otlp_bridge import __version__
from tests.support import CLAUDE, GRPC_PATHS, Scrape, capture_requests

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "otlp-bridge:ci-test"
RUNS = ("t1_http_protobuf_sayhi", "t3_grpc", "t18_git_commit", "t2_http_gzip")


def _run(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def _docker_binary() -> str:
    # Debian's client speaks to Debian's daemon; another client on PATH may want a newer API or buildx.
    return "/usr/bin/docker" if os.access("/usr/bin/docker", os.X_OK) else shutil.which("docker") or "docker"


DOCKER = _docker_binary()


def _docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _run(DOCKER, *args, timeout=timeout, check=check)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A docker daemon: the running one, or one started here (and stopped after)."""
    if shutil.which("dockerd") is None or not os.access(DOCKER, os.X_OK):
        pytest.skip("docker cannot run here: Debian's docker.io is not installed (`make test-tools` as root does)")
    if _docker("info", timeout=30, check=False).returncode == 0:
        yield
        return
    if os.geteuid() != 0:
        pytest.skip("docker cannot run here: no daemon is running and starting one needs root")
    log = (tmp_path_factory.mktemp("dockerd") / "dockerd.log").open("wb")
    process = subprocess.Popen(["dockerd"], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while _docker("info", timeout=30, check=False).returncode != 0:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            log.close()
            pytest.skip(f"docker cannot run here: dockerd did not start (see {log.name})")
        time.sleep(0.5)
    try:
        yield
    finally:
        process.terminate()
        process.wait(60)
        log.close()


def _base_name() -> str:
    match = re.search(r"^ARG BASE=(\S+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert match, "the Dockerfile names its base in ARG BASE"
    return match.group(1)


def _debian_release() -> str:
    fields = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line)
    return fields.get("VERSION_CODENAME", "").strip('"')


def _stand_in_base(name: str, workdir: Path) -> None:
    """A minimal Debian with python3 where the image's python is expected, tagged `name`."""
    release = _debian_release()
    if not release or shutil.which("debootstrap") is None:
        pytest.skip(f"{name} cannot be pulled and debootstrap/Debian is not here to make a stand-in")
    root = workdir / "root"
    _run("debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates", release, str(root),
         "http://deb.debian.org/debian", timeout=600)
    _run("chroot", str(root), "sh", "-c", "ln -sf /usr/bin/python3 /usr/local/bin/python3 && "
         "ln -sf /usr/bin/python3 /usr/local/bin/python && apt-get clean && rm -rf /var/lib/apt/lists/*")
    tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
    imported = subprocess.run([DOCKER, "import", "--change", "ENV LANG=C.UTF-8", "--change", 'CMD ["python3"]',
                               "-", name], stdin=tar.stdout, capture_output=True, text=True, timeout=300, check=False)
    tar.wait(60)
    assert imported.returncode == 0, imported.stderr
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def image(daemon: None, tmp_path_factory: pytest.TempPathFactory) -> str:
    base = _base_name()
    if _docker("image", "inspect", base, check=False).returncode != 0 and \
            _docker("pull", base, timeout=90, check=False).returncode != 0:
        _stand_in_base(base, tmp_path_factory.mktemp("base"))
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_FIND_LINKS", "PIP_CONSTRAINT")}
    download = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--require-hashes", "--no-deps", "--only-binary", ":all:",
         "-r", str(ROOT / "requirements.lock"), "-d", str(ROOT / ".wheels")],
        capture_output=True, text=True, timeout=300, check=False, env={**env, "PIP_CONFIG_FILE": os.devnull})
    assert download.returncode == 0, download.stderr
    _docker("build", "--quiet", "-t", IMAGE, str(ROOT), timeout=600)
    return IMAGE


class Container:
    def __init__(self, image: str, volume: str, *env: str) -> None:
        self.id = _docker(
            "run", "--detach", "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "--volume", f"{volume}:/var/lib/otlp-bridge", "--health-interval", "1s", "--health-start-period", "30s",
            "--publish", "127.0.0.1::4317", "--publish", "127.0.0.1::4318", "--publish", "127.0.0.1::9464",
            *(arg for pair in env for arg in ("--env", pair)), image).stdout.strip()

    def port(self, inside: int) -> int:
        return int(_docker("port", self.id, f"{inside}/tcp").stdout.split("\n")[0].rsplit(":", 1)[1])

    def inspect(self) -> dict[str, object]:
        return json.loads(_docker("inspect", self.id).stdout)[0]  # type: ignore[no-any-return]

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        state: dict[str, object] = {}
        while time.monotonic() < deadline:
            state = self.inspect()["State"]  # type: ignore[assignment]
            if state.get("Health", {}).get("Status") == "healthy":  # type: ignore[union-attr]
                return
            assert state["Running"], self.logs()
            time.sleep(0.5)
        raise AssertionError(f"never healthy: {state}\n{self.logs()}")

    def logs(self) -> str:
        result = _docker("logs", self.id, check=False)
        return result.stdout + result.stderr

    def scrape(self) -> Scrape:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port(9464)}/metrics", timeout=10) as response:
            return Scrape(response.read().decode(), response.headers["Content-Type"])

    def send(self, run: Path) -> None:
        """A run's real request bodies, over the transport each was recorded on."""
        with grpc.insecure_channel(f"127.0.0.1:{self.port(4317)}") as channel:
            for req in capture_requests(run):
                if req.transport == "grpc":
                    call = channel.unary_unary(GRPC_PATHS[req.signal])
                    call(req.body, timeout=10, compression=grpc.Compression.Gzip if "gzip" in run.name else None)
                    continue
                request = urllib.request.Request(f"http://127.0.0.1:{self.port(4318)}{req.http_path}", data=req.body,
                                                 headers=req.http_headers, method="POST")
                with urllib.request.urlopen(request, timeout=10) as response:
                    assert response.status == 200

    def remove(self) -> None:
        _docker("rm", "--force", self.id, check=False)


@pytest.fixture
def volume(daemon: None) -> Iterator[str]:
    name = f"otlp-bridge-ci-{uuid.uuid4().hex[:12]}"
    _docker("volume", "create", name)
    yield name
    _docker("volume", "rm", "--force", name, check=False)


TOTALS = re.compile(r"claude_code_.+_(total|bucket|count|sum)")  # not the gauges derived from the clock


def _claude_totals(scrape: Scrape) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {key: value for key, value in scrape.samples().items() if TOTALS.fullmatch(key[0])}


def test_image_is_labelled_non_root_and_carries_only_the_venv(image: str) -> None:
    config = json.loads(_docker("image", "inspect", image).stdout)[0]["Config"]
    assert config["User"] == "10001:10001"
    assert config["Labels"]["org.opencontainers.image.version"] == __version__
    assert config["Labels"]["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert config["Healthcheck"]["Test"] == ["CMD", "otlp-bridge", "health"]
    who = _docker("run", "--rm", "--entrypoint", "id", image).stdout
    assert who.strip() == "uid=10001(otlp-bridge) gid=10001(otlp-bridge) groups=10001(otlp-bridge)"
    listing = _docker("run", "--rm", "--entrypoint", "sh", image, "-c",
                      "ls -d /wheels /src 2>/dev/null; otlp-bridge --version").stdout
    assert listing.strip() == f"otlp-bridge {__version__}", "no build leftovers, the CLI on PATH"


def test_read_only_container_keeps_exact_totals_across_a_restart(image: str, volume: str) -> None:
    first = Container(image, volume)
    try:
        first.wait_healthy()
        for run in RUNS:
            first.send(CLAUDE / run)
        before = _claude_totals(first.scrape())
        assert any(name == "claude_code_cost_usage_USD_total" for name, _ in before)
        _docker("stop", "--time", "20", first.id, timeout=60)
        assert first.inspect()["State"]["ExitCode"] == 0, first.logs()  # type: ignore[index]
    finally:
        first.remove()
    second = Container(image, volume)
    try:
        second.wait_healthy()
        assert _claude_totals(second.scrape()) == before
        assert "series restored" in second.logs()
    finally:
        second.remove()


def test_unwritable_state_dir_fails_with_a_clear_reason(image: str, tmp_path: Path) -> None:
    state = tmp_path / "root-owned"
    state.mkdir(mode=0o755)  # owned by root: the image's user 10001 cannot write it
    result = _docker("run", "--rm", "--read-only", "--cap-drop", "ALL", "--volume", f"{state}:/var/lib/otlp-bridge",
                     image, timeout=60, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "/var/lib/otlp-bridge" in output, output
    assert "Traceback" not in output, output
    assert "--fresh-state" not in output, output
    assert "not writable by uid 10001" in output, output


def test_healthcheck_follows_a_moved_metrics_port(image: str, volume: str) -> None:
    container = Container(image, volume, "OTLP_BRIDGE_SERVER__METRICS_PORT=9500")
    try:
        container.wait_healthy()  # the HEALTHCHECK reads the same setting as serve
        assert "Prometheus metrics on http://0.0.0.0:9500/metrics" in container.logs()
    finally:
        container.remove()
