"""Hostile and careless senders over real sockets, with bounds in the assertions.

Each attack runs against a bridge in its own OS process (so its RSS and its event loop are its
own), with short timeouts so the file stays fast. Good exports are sent alongside and must keep
succeeding; what the attack cost is measured and bounded.
"""

from __future__ import annotations

import gzip
import http.client
import importlib
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import h2.config
import h2.connection
import h2.events
import pytest

from otlp_bridge import cli
from otlp_bridge.store import journal
from otlp_bridge.store.statedir import StateGuard, StateLost
from tests.bridge_process import BridgeProcess
from tests.support import CLAUDE, GRPC_PATHS

GOOD = (CLAUDE / "t7_write_edit_acceptEdits" / "0014_http_metrics.pb").read_bytes()
MiB = 1024 * 1024
FAST = """
[limits]
read_timeout = "PT2S"
body_idle_timeout = "PT1S"
"""


@pytest.fixture
def work(tmp_path: Path) -> Path:
    return tmp_path


def _bridge(work: Path, extra_toml: str = FAST, state: str = "state") -> BridgeProcess:
    return BridgeProcess(work, work / state, extra_toml)


@pytest.fixture
def bridge(work: Path) -> Iterator[BridgeProcess]:
    process = _bridge(work)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeProcess]:
    """One bridge for the attacks that leave no state behind (each starts in ~2 s)."""
    process = _bridge(tmp_path_factory.mktemp("shared"))
    yield process
    process.stop()


def good_http(bridge: BridgeProcess) -> int:
    try:
        return bridge.post(GOOD, timeout=10)
    except urllib.error.HTTPError as exc:
        return exc.code


def good_grpc(bridge: BridgeProcess, token: str | None = None) -> grpc.StatusCode:
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    with grpc.insecure_channel(f"127.0.0.1:{bridge.grpc}") as channel:
        try:
            channel.unary_unary(GRPC_PATHS["metrics"])(GOOD, timeout=10, metadata=metadata)
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


def get(bridge: BridgeProcess, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{bridge.metrics}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


# --- slow and partial HTTP bodies ------------------------------------------------------------------
def _held_request(port: int, *, chunked: bool) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    framing = b"Transfer-Encoding: chunked\r\n\r\n" + b"400\r\n" + b"\0" * 1024 if chunked \
        else b"Content-Length: 8388608\r\n\r\n"
    sock.sendall(b"POST /v1/metrics HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n" + framing)
    return sock


def test_slow_http_bodies_hold_no_budget_and_time_out(work: Path) -> None:
    # Before: 16 declared 8 MiB bodies reserved the whole 128 MiB budget; every export got 503.
    # Now a body still arriving holds only the bytes it has sent, and no request slot (4 here).
    bridge = _bridge(work, FAST + "max_inflight_requests = 4\n")
    try:
        _slow_bodies(bridge)
    finally:
        bridge.stop()


def _slow_bodies(bridge: BridgeProcess) -> None:
    rss_before = bridge.rss_bytes()
    held = [_held_request(bridge.http, chunked=False) for _ in range(16)]
    held += [_held_request(bridge.http, chunked=True) for _ in range(4)]
    time.sleep(0.3)
    assert good_http(bridge) == 200
    assert good_grpc(bridge) == grpc.StatusCode.OK
    # Each held body is dropped after the idle/read timeout with a retryable 503, and its slot freed.
    started = time.monotonic()
    for sock in held:
        sock.settimeout(5)
        assert sock.recv(64).startswith(b"HTTP/1.1 503")
        sock.close()
    assert time.monotonic() - started < 4.0
    scrape = bridge.scrape()
    assert scrape.total("otlp_bridge_requests_total", outcome="timeout") == 20
    assert good_http(bridge) == 200
    assert bridge.rss_bytes() - rss_before < 40 * MiB


def test_connections_past_the_limit_get_503_and_idle_ones_are_closed(work: Path) -> None:
    bridge = _bridge(work, FAST + 'max_connections = 4\nconnection_idle_timeout = "PT1.5S"\n')
    try:
        idle = [socket.create_connection(("127.0.0.1", bridge.http)) for _ in range(3)]
        idle.append(socket.create_connection(("127.0.0.1", bridge.http)))
        idle[-1].sendall(b"POST /v1/metrics HTTP/1.1\r\nHost: x\r\n")  # headers that never finish
        time.sleep(0.2)
        refused = socket.create_connection(("127.0.0.1", bridge.http))
        refused.settimeout(5)
        assert refused.recv(64).startswith(b"HTTP/1.1 503")
        # Idle connections (a half-sent header included) are closed after connection_idle_timeout.
        started = time.monotonic()
        for sock in idle:
            sock.settimeout(5)
            assert sock.recv(64) == b""
            sock.close()
        assert time.monotonic() - started < 3.0
        assert good_http(bridge) == 200
        assert bridge.scrape().total("otlp_bridge_connections_refused_total", reason="connection_limit") >= 1
    finally:
        bridge.stop()


# --- gRPC: raw HTTP/2 streams that announce big messages and never finish --------------------------
class RawGrpc:
    """One HTTP/2 connection speaking gRPC by hand, to send what no well-behaved client would."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())
        self.status: dict[int, str] = {}  # stream -> grpc-status, once answered
        self.reset: set[int] = set()
        self._pending: dict[int, bytes] = {}  # stream -> what is left to send

    def start(self, path: str, announce: int, send: int, token: str | None = None) -> int:
        """A stream whose message announces `announce` bytes, of which `send` are sent (flow control allowing)."""
        headers = [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "x"),
                   ("content-type", "application/grpc"), ("te", "trailers")]
        if token:
            headers.append(("authorization", f"Bearer {token}"))
        stream = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream, headers)
        self._pending[stream] = b"\0" + announce.to_bytes(4, "big") + bytes(send)
        return stream

    def pump(self, seconds: float) -> int:
        """Send what flow control allows and read answers for `seconds`; returns bytes sent."""
        sent = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for stream, data in list(self._pending.items()):
                if stream in self.reset or stream in self.status or not data:
                    continue
                window = min(self.conn.local_flow_control_window(stream), self.conn.max_outbound_frame_size)
                if window > 0:
                    self.conn.send_data(stream, data[:window])
                    self._pending[stream] = data[window:]
                    sent += min(window, len(data))
            if out := self.conn.data_to_send():
                self.sock.sendall(out)
            if select.select([self.sock], [], [], 0.05)[0]:
                chunk = self.sock.recv(1 << 16)
                if not chunk:
                    break
                for event in self.conn.receive_data(chunk):
                    self._note(event)
                if out := self.conn.data_to_send():
                    self.sock.sendall(out)
        return sent

    def _note(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.StreamReset):
            self.reset.add(event.stream_id)
        elif isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived):
            for name, value in event.headers:
                if name in (b"grpc-status", "grpc-status"):
                    self.status[event.stream_id] = value.decode() if isinstance(value, bytes) else value

    def close(self) -> None:
        self.sock.close()


def settle(connections: list[RawGrpc], streams: list[tuple[RawGrpc, int]], seconds: float) -> None:
    """Pump every connection in turn until each stream is answered, for at most `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not all(c.status.get(s) or s in c.reset for c, s in streams):
        for connection in connections:
            connection.pump(0.05)


def test_grpc_messages_are_bounded_in_size_count_and_time(work: Path) -> None:
    # 1 MiB messages and an 8 MiB budget: at most 8 RPCs in flight, 4 streams per connection.
    bridge = _bridge(work, FAST + "max_request_bytes = 1048576\nmax_inflight_bytes = 8388608\n"
                     "grpc_max_concurrent_streams = 4\ngrpc_max_concurrent_rpcs = 8\n")
    path = GRPC_PATHS["metrics"]
    try:
        rss_before = bridge.rss_bytes()
        # Before: 6 connections x 10 streams announcing 30 MiB held 1.8 GB, kept after they left.
        big = RawGrpc(bridge.grpc)
        streams = [(big, big.start(path, 30 * MiB, 2 * MiB)) for _ in range(4)]
        settle([big], streams, 5.0)
        assert all(big.status.get(s) == "8" or s in big.reset for _, s in streams)  # RESOURCE_EXHAUSTED
        # Partial messages just under the limit fill the RPC budget and are dropped after the read timeout.
        held = [RawGrpc(bridge.grpc) for _ in range(3)]
        partial = [(c, c.start(path, MiB - 100, MiB - 200)) for c in held for _ in range(4)]
        started = time.monotonic()
        settle(held, partial, 0.5)
        rss_held = bridge.rss_bytes()
        assert rss_held - rss_before < 8 * MiB + 48 * MiB
        # While they hold the RPC budget: HTTP is untouched, gRPC is told to retry (OTLP exporters do).
        assert good_http(bridge) == 200
        assert good_grpc(bridge) == grpc.StatusCode.RESOURCE_EXHAUSTED
        settle(held, partial, 6.0)
        statuses = sorted(str(c.status.get(s)) for c, s in partial)
        # 8 admitted ones: DEADLINE_EXCEEDED after the 2 s read timeout; the 4 past the RPC limit: refused.
        assert statuses == ["4"] * 8 + ["8"] * 4, statuses
        assert time.monotonic() - started < 4.0
        assert good_grpc(bridge) == grpc.StatusCode.OK
        assert good_http(bridge) == 200
        for c in [big, *held]:
            c.close()
        assert bridge.scrape().total("otlp_bridge_requests_total", transport="grpc", outcome="timeout") == 8
    finally:
        bridge.stop()


def test_grpc_token_is_checked_before_the_message_is_read(work: Path) -> None:
    bridge = _bridge(work, FAST + '[[auth.tokens]]\ntoken = "secret"\n')
    try:
        raw = RawGrpc(bridge.grpc)
        stream = raw.start(GRPC_PATHS["metrics"], 1024 * 1024, 16)  # announces 1 MiB, sends 16 bytes
        raw.pump(1.0)
        assert raw.status.get(stream) == "16"  # UNAUTHENTICATED without waiting for the message
        raw.close()
        assert good_grpc(bridge, token="secret") == grpc.StatusCode.OK
        assert good_grpc(bridge) == grpc.StatusCode.UNAUTHENTICATED
    finally:
        bridge.stop()


def test_grpc_on_the_http_port_gets_one_clear_line(shared: BridgeProcess) -> None:
    bridge = shared
    with grpc.insecure_channel(f"127.0.0.1:{bridge.http}") as channel, pytest.raises(grpc.RpcError) as info:
        channel.unary_unary(GRPC_PATHS["metrics"])(GOOD, timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "http1.x server (HTTP status 505)" in info.value.details()
    assert bridge.scrape().total("otlp_bridge_connections_refused_total", reason="http2_on_http_port") >= 1
    log = bridge.log_path.read_text()
    assert "Traceback" not in log
    assert log.count("refused HTTP/2") == 1


# --- work bombs: small bodies with huge item counts ------------------------------------------------
def _varint_field(tag: int, payload: bytes) -> bytes:
    length, size = b"", len(payload)
    while True:
        low, size = size & 0x7F, size >> 7
        length += bytes([low | (0x80 if size else 0)])
        if not size:
            return bytes([tag]) + length + payload


def _protobuf_bomb(points: int) -> bytes:
    """A metrics request with `points` empty gauge points (2 bytes each on the wire)."""
    metric = b"\x0a\x01x" + _varint_field(0x2A, b"\x0a\x00" * points)
    return _varint_field(0x0A, _varint_field(0x12, _varint_field(0x12, metric)))


def _json_bomb(points: int) -> bytes:
    return (b'{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"x","gauge":{"dataPoints":['
            + b"{}," * (points - 1) + b"{}]}}]}]}]}")


def _json_nested(depth: int) -> bytes:
    return b'{"resourceMetrics":' + b"[" * depth + b"]" * depth + b"}"


class HealthProbe:
    """Polls /healthz from a thread and keeps the longest answer time."""

    def __init__(self, bridge: BridgeProcess) -> None:
        self.url = f"http://127.0.0.1:{bridge.metrics}/healthz"
        self.worst = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            with urllib.request.urlopen(self.url, timeout=60) as response:
                response.read()
            self.worst = max(self.worst, time.perf_counter() - started)
            time.sleep(0.02)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(60)


@pytest.mark.parametrize(("build", "size", "content_type", "status"), [
    (_json_bomb, 10_000_000, "application/json", 413),
    (_protobuf_bomb, 10_000_000, "application/x-protobuf", 413),
    (_json_nested, 10_000, "application/json", 400),
])
def test_work_bombs_are_refused_while_healthz_answers(shared: BridgeProcess, build: Callable[[int], bytes],
                                                      size: int, content_type: str, status: int) -> None:
    # Before: the 29 KB gzip JSON bomb took 52-80 s of CPU and held /healthz for up to 52 s.
    bridge, name = shared, build.__name__
    compressed = gzip.compress(build(size), 6)
    assert len(compressed) < 64 * 1024
    rss_before = bridge.rss_bytes()
    with HealthProbe(bridge) as probe:
        time.sleep(0.1)
        started = time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", bridge.http, timeout=60)
        connection.request("POST", "/v1/metrics", body=compressed,
                           headers={"Content-Type": content_type, "Content-Encoding": "gzip"})
        response = connection.getresponse()
        answer = response.read()
        took = time.perf_counter() - started
        time.sleep(0.1)
    assert response.status == status, answer
    # JSON is refused from a C-speed pre-scan; 10M protobuf items are counted without decoding
    # them, in a worker thread (~0.1-0.3 s of /healthz delay, more on a loaded machine).
    # Before: the JSON one took 52-80 s of CPU and held /healthz up to 52 s.
    assert took < 5.0, (name, took)
    assert probe.worst < 2.0, (name, probe.worst)
    assert bridge.rss_bytes() - rss_before < 200 * MiB
    assert good_http(bridge) == 200


def test_item_limit_refuses_the_whole_request_with_a_reason(work: Path) -> None:
    bridge = _bridge(work, FAST + "max_points_per_request = 5\n")
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{bridge.http}/v1/metrics", data=GOOD,
                                         headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as info:  # 11 points as protobuf sent as... JSON: refused
            urllib.request.urlopen(request, timeout=10)
        assert info.value.code in (400, 413)
        with grpc.insecure_channel(f"127.0.0.1:{bridge.grpc}") as channel, pytest.raises(grpc.RpcError) as rpc:
            channel.unary_unary(GRPC_PATHS["metrics"])(GOOD, timeout=10)
        assert rpc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "11 data points in one request, at most 5" in rpc.value.details()
        assert bridge.scrape().total("otlp_bridge_requests_total", outcome="too_many_items") >= 1
        assert bridge.scrape().total("claude_code_token_usage_tokens_total") == 0
    finally:
        bridge.stop()


# --- the state directory ----------------------------------------------------------------------------
def test_second_process_on_one_state_dir_refuses_to_start(shared: BridgeProcess, work: Path) -> None:
    bridge = shared
    state = bridge.log_path.parent / "state"
    with pytest.raises(RuntimeError) as info:
        BridgeProcess(work, state)
    message = str(info.value)
    assert "in use by another otlp-bridge" in message
    assert f"pid {bridge.pid}" in message
    assert str(state) in message
    assert good_http(bridge) == 200  # the first one is untouched


@pytest.mark.parametrize("damage", ["delete", "truncate", "replace", "journal"])
def test_state_file_lost_while_running_stops_acknowledging(work: Path, damage: str) -> None:
    bridge = _bridge(work)
    db = work / "state" / "bridge.db"
    try:
        assert good_http(bridge) == 200
        if damage == "journal":  # the segment acknowledged exports are appended to, before its checkpoint
            segments = sorted(p for p in db.parent.iterdir() if p.name.startswith(journal.PREFIX))
            assert segments
            for segment in segments:
                segment.unlink()
            db = segments[-1]
        elif damage == "delete":
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
        elif damage == "truncate":
            os.truncate(db, 0)
        else:
            db.rename(db.with_name("elsewhere.db"))
            db.write_bytes(b"")
        assert good_http(bridge) == 503  # retryable: nothing is acknowledged into a lost file
        status, text = get(bridge, "/readyz")
        assert status == 503
        assert str(db) in text
    finally:
        bridge.stop()
    if damage == "delete":
        with pytest.raises(RuntimeError) as info:
            _bridge(work)
        assert "refusing to start from zero" in str(info.value)


def test_fresh_state_after_a_loss_starts_empty(work: Path) -> None:
    bridge = _bridge(work)
    config = next(work.glob("bridge-*.toml"))
    assert good_http(bridge) == 200
    bridge.stop()
    (work / "state" / "bridge.db").unlink()
    with pytest.raises(RuntimeError):
        _bridge(work)
    # --fresh-state accepts the loss (under the directory lock), then serves as usual
    process = subprocess.Popen([sys.executable, "-m", "otlp_bridge", "serve", "--fresh-state", "--config", str(config)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        text = config.read_text()
        metrics_port = int(text.split("metrics_port = ")[1].split()[0])
        wait_for(lambda: _ready(metrics_port), timeout=20)
    finally:
        process.terminate()
        process.wait(15)


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _as_nobody(argv: list[str]) -> tuple[int, str]:
    """`otlp-bridge ARGV` in a forked child that dropped to uid/gid 65534 (the interpreter under
    /root is not reachable for that user, so no exec: the modules are already imported)."""
    for lazily_imported in ("tomllib",):  # what the child would import from the unreachable stdlib
        importlib.import_module(lazily_imported)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 99
        try:
            os.dup2(write, 1)
            os.dup2(write, 2)
            sys.stdout = sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115 - pytest replaced both
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            code = cli.main(argv)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as output:
        text = output.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), text


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another uid")
def test_unwritable_state_dir_names_the_dir_and_uid() -> None:
    base = Path(tempfile.mkdtemp(prefix="otlp-bridge-nobody-"))
    try:
        base.chmod(0o755)
        state = base / "state"
        state.mkdir(mode=0o755)  # root's: uid 65534 cannot write it
        config = base / "bridge.toml"
        config.write_text(f'[server]\ngrpc_port = 0\nhttp_port = 0\nmetrics_port = 0\n[state]\ndir = "{state}"\n')
        config.chmod(0o644)
        code, text = _as_nobody(["serve", "--config", str(config)])
        assert code != 0
        assert f"state directory {state} is not writable by uid 65534" in text
        code, text = _as_nobody(["serve", "--fresh-state", "--config", str(config)])
        assert code != 0
        assert "uid 65534" in text
        assert "--fresh-state renames it" in text
    finally:
        shutil.rmtree(base)


def test_an_unlinked_open_state_file_is_lost_too(work: Path) -> None:
    # The journal segment being appended to is passed as an open fd: once unlinked, nothing more
    # is acknowledged, and the guard stays lost (a restart, not a retry, is the way back).
    guard = StateGuard.acquire(work / "bridge.db")
    try:
        (work / "bridge.db").write_bytes(b"\0" * 4096)
        guard.watch()
        segment = work / "journal-1"
        fd = os.open(segment, os.O_WRONLY | os.O_CREAT)
        guard.check((fd, segment))
        segment.unlink()
        with pytest.raises(StateLost, match="journal-1 was deleted while running"):
            guard.check((fd, segment))
        with pytest.raises(StateLost):
            guard.check()
        os.close(fd)
    finally:
        guard.release()


def test_a_failed_state_write_is_reported_until_one_succeeds(work: Path) -> None:
    guard = StateGuard.acquire(work / "bridge.db")
    try:
        (work / "bridge.db").write_bytes(b"\0" * 4096)
        guard.watch()
        guard.wrote(OSError(28, "No space left on device"))
        assert guard.problem == f"cannot write state in {work}: [Errno 28] No space left on device"
        guard.wrote(None)
        assert guard.problem is None
    finally:
        guard.release()
