"""remote_write: the wire format decoded by protobuf itself, the retry rules against a scripted
receiver, and exact totals in a real VictoriaMetrics and a real Prometheus through an outage."""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cramjam
import pytest
import yaml
from aiohttp import web
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from pydantic import ValidationError

from otlp_bridge.config import RemoteWriteSettings
from otlp_bridge.push.wire import Encoder
from tests.prometheus_server import binary, free_port, wait_ready
from tests.support import CLAUDE, RunningBridge, replay, settings_for_test
from tests.tls_certs import make_certs

ROOT = Path(__file__).resolve().parent.parent
WAVE_1 = ("t1_http_protobuf_sayhi", "t3_grpc", "t18_git_commit")
WAVE_2 = ("t7_write_edit_acceptEdits", "t20_model_haiku", "t8_bash_sleep_multi_export")
COUNTERS = re.compile(r"claude_code_.+_(total|bucket|count|sum)")  # counters and histograms: exact totals


def _write_request_class() -> Any:
    """prometheus.WriteRequest from prompb/remote.proto and types.proto (the 1.0 subset)."""
    proto = descriptor_pb2.FileDescriptorProto(name="prompb_test.proto", package="prometheus", syntax="proto3")
    field = descriptor_pb2.FieldDescriptorProto
    repeated, optional = field.LABEL_REPEATED, field.LABEL_OPTIONAL

    def message(name: str, *fields: tuple[str, int, int, int, str]) -> None:
        msg = proto.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            added = msg.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                added.type_name = type_name

    message("Label", ("name", 1, field.TYPE_STRING, optional, ""), ("value", 2, field.TYPE_STRING, optional, ""))
    message("Sample", ("value", 1, field.TYPE_DOUBLE, optional, ""), ("timestamp", 2, field.TYPE_INT64, optional, ""))
    message("TimeSeries", ("labels", 1, field.TYPE_MESSAGE, repeated, ".prometheus.Label"),
            ("samples", 2, field.TYPE_MESSAGE, repeated, ".prometheus.Sample"))
    message("WriteRequest", ("timeseries", 1, field.TYPE_MESSAGE, repeated, ".prometheus.TimeSeries"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("prometheus.WriteRequest"))


WriteRequest = _write_request_class()


def _decode(body: bytes) -> list[tuple[dict[str, str], list[tuple[int, float]]]]:
    request = WriteRequest()
    request.ParseFromString(bytes(cramjam.snappy.decompress_raw(body)))
    out = []
    for ts in request.timeseries:
        names = [label.name for label in ts.labels]
        assert names == sorted(names), names
        out.append(({label.name: label.value for label in ts.labels},
                    [(s.timestamp, s.value) for s in ts.samples]))
    return out


def test_encoded_request_is_a_write_request_protobuf_parses() -> None:
    encoder = Encoder({"instance": "bridge-1", "model": "overridden"})
    labels = (("model", "claude-opus-4-6"), ("user_email", 'a"b\\c@é.example'))
    body = encoder.request([
        ("claude_code_cost_usage_USD_total", labels, [(1795382900123, 0.0), (1795382930123, 0.4884411)]),
        ("up_down", (), [(-5, -1.5e300), (2**62, float("inf"))]),
    ])
    assert _decode(body) == [
        ({"__name__": "claude_code_cost_usage_USD_total", "instance": "bridge-1", "model": "claude-opus-4-6",
          "user_email": 'a"b\\c@é.example'}, [(1795382900123, 0.0), (1795382930123, 0.4884411)]),
        ({"__name__": "up_down", "instance": "bridge-1", "model": "overridden"},
         [(-5, -1.5e300), (2**62, float("inf"))]),
    ]
    again = encoder.request([("up_down", (), [(-5, -1.5e300), (2**62, float("inf"))])])  # from the label cache
    assert _decode(again) == _decode(body)[1:]


def test_remote_settings_name_the_receiver_without_credentials_and_refuse_reserved_headers() -> None:
    assert RemoteWriteSettings(url="https://u:secret@vm.example:8428/api/v1/write?t=1").remote == \
        "https://vm.example:8428/api/v1/write"
    with pytest.raises(ValidationError, match="Content-Encoding"):
        RemoteWriteSettings(url="http://vm/api/v1/write", headers={"Content-Encoding": "gzip"})
    with pytest.raises(ValidationError, match="go together"):
        RemoteWriteSettings(url="http://vm/api/v1/write", basic_username="u")


# --- a scripted receiver: which statuses it answers, what it was sent ------------------------------------
class ScriptedReceiver:
    def __init__(self, statuses: list[int], ssl_context: ssl.SSLContext | None = None) -> None:
        self.statuses = statuses  # answered in turn; 204 once they run out
        self.ssl_context = ssl_context
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.accepted: list[bytes] = []
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        self.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{self.port}/api/v1/write"

    async def _start(self) -> int:
        async def write(request: web.Request) -> web.Response:
            status = self.statuses.pop(0) if self.statuses else 204
            self.received.append((dict(request.headers), await request.read()))
            if status < 300:
                self.accepted.append(self.received[-1][1])
            return web.Response(status=status, text="" if status < 300 else f"scripted {status}\n")

        app = web.Application()
        app.router.add_post("/api/v1/write", write)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        return int(self.runner.addresses[0][1])

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


def _remote(url: str, **extra: Any) -> dict[str, Any]:
    return {"url": url, "interval": 0.3, "timeout": 3, "min_backoff": 0.05, "max_backoff": 0.2,
            "max_retries": 2, **extra}


def _bridge_total(bridge: RunningBridge, name: str, **match: str) -> float:
    return bridge.scrape().total(name, **match)


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"never: {what}")


def test_retries_server_errors_drops_refusals_and_sends_auth(tmp_path: Path) -> None:
    receiver = ScriptedReceiver([503, 429, 400])
    settings = settings_for_test(tmp_path, remote_write=[_remote(receiver.url, name="scripted",
                                                                 bearer_token="s3cret", headers={"X-Scope-OrgID": "t1"},
                                                                 max_samples_per_request=100000)])
    bridge = RunningBridge(settings)
    try:
        replay(bridge, CLAUDE / "t3_grpc")
        _wait(lambda: _bridge_total(bridge, "otlp_bridge_remote_write_samples_total") > 0, "a push acknowledged")
        stats = bridge.scrape()
        remote = {"remote": "scripted"}
        # 503 and 429 were retried; the 400 was not: that request's samples were dropped and the next went on.
        assert stats.total("otlp_bridge_remote_write_failed_requests_total", reason="server_error", **remote) == 1
        assert stats.total("otlp_bridge_remote_write_failed_requests_total", reason="throttled", **remote) == 1
        assert stats.total("otlp_bridge_remote_write_failed_requests_total", reason="rejected", **remote) == 1
        assert stats.total("otlp_bridge_remote_write_dropped_samples_total", reason="rejected", **remote) > 0
        assert stats.total("otlp_bridge_remote_write_last_success_timestamp_seconds", **remote) > time.time() - 60
        headers, body = receiver.received[-1]
        assert headers["Content-Encoding"] == "snappy"
        assert headers["Content-Type"] == "application/x-protobuf"
        assert headers["X-Prometheus-Remote-Write-Version"] == "0.1.0"
        assert headers["Authorization"] == "Bearer s3cret"
        assert headers["X-Scope-OrgID"] == "t1"
        names = {labels["__name__"] for labels, _ in _decode(body)}
        assert "claude_code_cost_usage_USD_total" in names
        assert not any(n.startswith("otlp_bridge_internal") for n in names)
    finally:
        bridge.stop()
        receiver.stop()


def test_queue_overflow_drops_samples_but_keeps_every_counter_start(tmp_path: Path) -> None:
    receiver = ScriptedReceiver([503] * 6)  # one failed request per push: the queue overflows
    remote = _remote(receiver.url, name="flaky", max_retries=0, max_queued_snapshots=2)
    bridge = RunningBridge(settings_for_test(tmp_path, remote_write=[remote]))
    try:
        replay(bridge, CLAUDE / "t3_grpc")
        _wait(lambda: _bridge_total(bridge, "otlp_bridge_remote_write_samples_total") > 0 and
              _bridge_total(bridge, "otlp_bridge_remote_write_queued_pushes") == 0, "the queue drained")
        assert _bridge_total(bridge, "otlp_bridge_remote_write_dropped_samples_total", reason="queue_full") > 0
        first: dict[tuple[str, ...], tuple[int, float]] = {}
        for body in receiver.accepted:
            for labels, samples in _decode(body):
                first.setdefault(tuple(sorted(labels.items())), samples[0])  # type: ignore[arg-type]
        counters = {key: sample for key, sample in first.items()
                    if dict(key)["__name__"] == "claude_code_cost_usage_USD_total"}
        assert counters, "the cost series was pushed"
        assert all(value == 0.0 for _, value in counters.values()), "each counter's first sample is its start"
    finally:
        bridge.stop()
        receiver.stop()


def test_tls_receiver_is_verified_against_the_configured_ca(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    certs = make_certs(tmp_path / "certs")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs.server_cert, certs.server_key)
    receiver = ScriptedReceiver([], context)
    remotes = [_remote(receiver.url, name="trusted", ca_file=str(certs.ca), basic_username="push",
                       basic_password="pw"),
               _remote(receiver.url, name="untrusted", max_retries=0)]  # the system CAs do not know ours
    bridge = RunningBridge(settings_for_test(tmp_path, remote_write=remotes))
    try:
        replay(bridge, CLAUDE / "t3_grpc")
        _wait(lambda: _bridge_total(bridge, "otlp_bridge_remote_write_samples_total", remote="trusted") > 0,
              "a push over TLS")
        _wait(lambda: _bridge_total(bridge, "otlp_bridge_remote_write_failed_requests_total", remote="untrusted",
                                    reason="unreachable") > 0, "the unverified receiver refused")
        assert _bridge_total(bridge, "otlp_bridge_remote_write_samples_total", remote="untrusted") == 0
        assert {headers["Authorization"] for headers, _ in receiver.received} == {"Basic cHVzaDpwdw=="}
    finally:
        bridge.stop()
        receiver.stop()


# --- real receivers -----------------------------------------------------------------------------
class Receiver:
    """A real remote-write receiver on a fixed loopback port and data dir, restartable."""

    def __init__(self, kind: str, workdir: Path) -> None:
        self.kind, self.workdir, self.port = kind, workdir, free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.write_url = f"{self.base}/api/v1/write"
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def _command(self) -> list[str]:
        if self.kind == "victoria-metrics":
            return [binary("victoria-metrics", "victoria-metrics"), f"-storageDataPath={self.workdir / 'vm'}",
                    f"-httpListenAddr=127.0.0.1:{self.port}", "-search.latencyOffset=0s", "-search.disableCache",
                    "-retentionPeriod=1y"]
        config = self.workdir / "prometheus.yml"
        config.write_text("global: {evaluation_interval: 1s}\n")
        return [binary("prometheus"), f"--config.file={config}", "--web.enable-remote-write-receiver",
                f"--storage.tsdb.path={self.workdir / 'prom'}", f"--web.listen-address=127.0.0.1:{self.port}"]

    def start(self) -> None:
        log = (self.workdir / f"{self.kind}.log").open("ab")
        self.process = subprocess.Popen(self._command(), stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_ready(f"{self.base}/health" if self.kind == "victoria-metrics" else f"{self.base}/-/ready",
                   self.process)

    def stop(self) -> None:
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def query(self, promql: str, at: float | None = None) -> dict[frozenset[tuple[str, str]], float]:
        if self.kind == "victoria-metrics":  # what it ingested becomes searchable now, not within seconds
            urllib.request.urlopen(f"{self.base}/internal/force_flush", timeout=10).close()
        params = {"query": promql, **({"time": f"{at:.3f}"} if at is not None else {})}
        with urllib.request.urlopen(f"{self.base}/api/v1/query?" + urllib.parse.urlencode(params),
                                    timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return {frozenset(r["metric"].items()): float(r["value"][1]) for r in body["data"]["result"]}


@pytest.fixture(params=["victoria-metrics", "prometheus"])
def receiver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Receiver]:
    running = Receiver(request.param, tmp_path)
    yield running
    running.stop()


# VictoriaMetrics keeps 12 significant decimal digits of a float (0.026000000000000002 reads 0.026);
# Prometheus keeps the float itself.
PRECISION = {"victoria-metrics": 1e-12, "prometheus": 0.0}


def _in_receiver(receiver: Receiver, bridge: RunningBridge) -> bool:
    """Every counter and histogram series the bridge exposes holds the bridge's total there (plus the
    push's labels)."""
    expected = {labels | {("__name__", name), ("instance", "bridge-1")}: value
                for (name, labels), value in bridge.scrape().samples().items() if COUNTERS.match(name)}
    try:
        held = receiver.query('{__name__=~"claude_code_.+_(total|bucket|count|sum)"}')
    except urllib.error.HTTPError as exc:  # a receiver just restarted may answer 5xx for a moment
        if exc.code < 500:
            raise
        return False
    tolerance = PRECISION[receiver.kind]
    return held.keys() == expected.keys() and all(
        held[key] == pytest.approx(value, rel=tolerance, abs=0) for key, value in expected.items())


def test_totals_in_a_real_receiver_equal_the_bridge_through_an_outage(receiver: Receiver, tmp_path: Path) -> None:
    settings = settings_for_test(tmp_path, remote_write=[_remote(receiver.write_url, name=receiver.kind,
                                                                 labels={"instance": "bridge-1"})])
    bridge = RunningBridge(settings)
    try:
        for run in WAVE_1:
            replay(bridge, CLAUDE / run)
        _wait(lambda: _in_receiver(receiver, bridge), "first wave's totals in the receiver")

        receiver.stop()  # the receiver goes away while spend goes on
        for run in WAVE_2:
            replay(bridge, CLAUDE / run)
        _wait(lambda: _bridge_total(bridge, "otlp_bridge_remote_write_failed_requests_total",
                                    reason="unreachable") > 0, "a failed push")
        receiver.start()
        _wait(lambda: _in_receiver(receiver, bridge), "both waves' totals in the receiver after the outage")

        # Each counter starts with a zero at its creation, so increase() over the whole run is its
        # total: evaluated at the last push's instant, nothing is extrapolated.
        last = max(receiver.query("timestamp(claude_code_cost_usage_USD_total)").values())
        total = receiver.query("sum(claude_code_cost_usage_USD_total)", at=last)
        assert receiver.query("sum(increase(claude_code_cost_usage_USD_total[1h]))", at=last) == pytest.approx(total)
        assert next(iter(total.values())) == pytest.approx(_bridge_total(bridge, "claude_code_cost_usage_USD_total"))
    finally:
        bridge.stop()


def test_vmalert_evaluates_every_rule_on_pushed_totals(tmp_path: Path) -> None:
    """The README's VictoriaMetrics stack: the bridge pushes, vmalert runs deploy/prometheus/rules.yaml
    on VictoriaMetrics and writes the recording rules back; every rule evaluates without error."""
    vm = Receiver("victoria-metrics", tmp_path)
    port = free_port()
    log = (tmp_path / "vmalert.log").open("wb")
    vmalert = subprocess.Popen(
        [binary("vmalert", "victoria-metrics"), f"-rule={ROOT / 'deploy' / 'prometheus' / 'rules.yaml'}",
         f"-datasource.url={vm.base}", f"-remoteWrite.url={vm.base}", "-remoteWrite.flushInterval=200ms",
         f"-notifier.url=http://127.0.0.1:{free_port()}", "-evaluationInterval=1s",
         f"-httpListenAddr=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    bridge = RunningBridge(settings_for_test(tmp_path, remote_write=[_remote(vm.write_url)]))
    try:
        wait_ready(f"http://127.0.0.1:{port}/health", vmalert)
        for run in WAVE_1:
            replay(bridge, CLAUDE / run)
        total = _bridge_total(bridge, "claude_code_cost_usage_USD_total")

        def recorded() -> bool:
            held = vm.query("claude_code:cost_usd:sum")
            return len(held) == 1 and next(iter(held.values())) == pytest.approx(total, rel=PRECISION[vm.kind])

        _wait(recorded, "vmalert's recording of the fleet cost equals the bridge's total")
        shipped = [rule for group in yaml.safe_load((ROOT / "deploy" / "prometheus" / "rules.yaml").read_text())[
            "groups"] for rule in group["rules"]]

        def evaluated() -> list[dict[str, Any]]:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/rules", timeout=10) as response:
                groups = json.load(response)["data"]["groups"]
            rules = [rule for group in groups for rule in group["rules"]]
            return rules if all(not r["lastEvaluation"].startswith("0001") for r in rules) else []

        _wait(lambda: bool(evaluated()), "every rule evaluated once")
        rules = evaluated()
        assert len(rules) == len(shipped)
        assert [(rule["name"], rule["lastError"]) for rule in rules if rule["lastError"]] == []
    finally:
        bridge.stop()
        vmalert.terminate()
        vmalert.wait(20)
        log.close()
        vm.stop()
