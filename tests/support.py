"""Test helpers: a bridge on loopback, capture replay over real clients, scrape parsing."""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from prometheus_client.parser import text_string_to_metric_families

from otlp_bridge.app import Bridge, Ports
from otlp_bridge.config import Settings, load_settings

FIXTURES = Path(__file__).resolve().parent.parent / "proto_fixtures"
CLAUDE = FIXTURES / "claude-code-2.1.330"
GRPC_PATHS = {
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
}
# Every successful API response in the 2.1.330 captures reported this usage.
PROTOBUF_HEADERS = {"Content-Type": "application/x-protobuf"}
USAGE_PER_REQUEST = {"input": 123, "cacheCreation": 890, "cacheRead": 4567, "output": 42}


def settings_for_test(tmp_path: Path, **overrides: Any) -> Settings:
    server = {"host": "127.0.0.1", "grpc_port": 0, "http_port": 0, "metrics_port": 0,
              "shutdown_grace_seconds": 1.0, **overrides.pop("server", {})}
    state = {"dir": str(tmp_path / "state"), "synchronous": "normal", **overrides.pop("state", {})}
    return load_settings(None, server=server, state=state, **overrides)


class RunningBridge:
    """A bridge on ephemeral loopback ports, run on its own event loop in a thread."""

    def __init__(self, settings: Settings, clock: Callable[[], float] | None = None,
                 monotonic: Callable[[], float] | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        async def start() -> Bridge:
            bridge = Bridge(settings, clock or time.time, monotonic or time.monotonic)  # grpc.aio binds to its loop
            await bridge.start()
            return bridge

        self.bridge = asyncio.run_coroutine_threadsafe(start(), self.loop).result(15)
        assert self.bridge.ports is not None
        self.ports: Ports = self.bridge.ports
        self._channel: grpc.Channel | None = None

    @property
    def http_base(self) -> str:
        return f"http://127.0.0.1:{self.ports.http}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.metrics}/metrics"

    def channel(self) -> grpc.Channel:
        if self._channel is None:
            self._channel = grpc.insecure_channel(f"127.0.0.1:{self.ports.grpc}")
        return self._channel

    def stop(self) -> None:
        if self._channel is not None:
            self._channel.close()
        asyncio.run_coroutine_threadsafe(self.bridge.stop(1.0), self.loop).result(15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(15)
        self.loop.close()

    # --- clients -----------------------------------------------------------------------------
    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None,
             method: str = "POST") -> tuple[int, bytes, dict[str, str]]:
        """An HTTP request with urllib; returns status, body and headers (errors included)."""
        request = urllib.request.Request(self.http_base + path, data=body, method=method,
                                         headers=PROTOBUF_HEADERS if headers is None else headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), dict(exc.headers)

    def grpc_export(self, signal: str, body: bytes, *, gzip_: bool = False,
                    metadata: tuple[tuple[str, str], ...] = ()) -> bytes:
        """A raw-bytes gRPC Export call, the way a client library frames it."""
        call = self.channel().unary_unary(GRPC_PATHS[signal])
        compression = grpc.Compression.Gzip if gzip_ else None
        return call(body, timeout=10, compression=compression, metadata=metadata)  # type: ignore[no-any-return]

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports.metrics}{path}", timeout=10) as response:
            return json.load(response)

    def scrape(self, accept: str | None = None) -> Scrape:
        request = urllib.request.Request(self.metrics_url, headers={"Accept": accept} if accept else {})
        with urllib.request.urlopen(request, timeout=10) as response:
            return Scrape(response.read().decode(), response.headers["Content-Type"])


@dataclass
class Scrape:
    text: str
    content_type: str

    def samples(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        out = {}
        for family in text_string_to_metric_families(self.text):
            for sample in family.samples:
                key = (sample.name, frozenset(sample.labels.items()))
                assert key not in out, f"duplicate sample {key}"
                out[key] = sample.value
        return out

    def total(self, name: str, **match: str) -> float:
        """Sum of the samples named `name` whose labels include `match`."""
        return sum(v for (n, labels), v in self.samples().items()
                   if n == name and all((k, val) in labels for k, val in match.items()))

    def series(self, name: str) -> list[dict[str, str]]:
        return [dict(labels) for (n, labels) in self.samples() if n == name]


# --- captures ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CapturedRequest:
    path: Path
    meta: dict[str, Any]

    @property
    def transport(self) -> str:
        # Older recordings name it only in the file name: NNNN_<transport>_<signal>.
        return str(self.meta.get("transport") or self.path.name.split("_")[1])

    @property
    def signal(self) -> str:
        if self.transport == "grpc":
            return str(self.meta["signal"])
        return str(self.meta["path"]).rsplit("/", 1)[-1]

    @property
    def http_path(self) -> str:
        return str(self.meta["path"])

    @property
    def body(self) -> bytes:
        """The bytes as they went over the wire (still gzip'd where the client compressed)."""
        return self.path.read_bytes()

    @property
    def decoded_body(self) -> bytes:
        data = self.body
        return gzip.decompress(data) if self.path.name.endswith(".gz") else data

    @property
    def http_headers(self) -> dict[str, str]:
        keep = ("Content-Type", "Content-Encoding")
        return {k: v for k, v in self.meta["headers"].items() if k in keep}


def capture_requests(run: Path) -> list[CapturedRequest]:
    """A run's requests in the order the client sent them."""
    out = []
    for meta_path in sorted(run.glob("*.meta.json")):
        stem = meta_path.name.removesuffix(".meta.json")
        body = next(p for p in run.iterdir() if p.name.startswith(stem + ".") and not p.name.endswith(".meta.json"))
        out.append(CapturedRequest(body, json.loads(meta_path.read_text())))
    return out


def replay(bridge: RunningBridge, run: Path) -> None:
    """Send a run's requests over the transport each was recorded on; every one must succeed."""
    grpc_gzip = "gzip" in run.name
    for req in capture_requests(run):
        if req.transport == "grpc":
            bridge.grpc_export(req.signal, req.body, gzip_=grpc_gzip)
        else:
            status, body, _ = bridge.post(req.http_path, req.body, req.http_headers)
            assert status == 200, (req.path, status, body)


def api_requests(run: Path) -> int:
    """How many successful API requests a run made, counted from its `api_request` events."""
    count = 0
    for req in capture_requests(run):
        if req.signal != "logs" or "FAILED" in req.path.name:
            continue
        message = ExportLogsServiceRequest()
        if ".json" in req.path.name:
            # Hex ids read as base64 here: wrong bytes, but this only counts records.
            json_format.Parse(req.decoded_body, message, ignore_unknown_fields=True)
        else:
            message.ParseFromString(req.decoded_body)
        count += sum(
            1 for rl in message.resource_logs for sl in rl.scope_logs for r in sl.log_records
            if r.body.string_value == "claude_code.api_request"
        )
    return count


def runs() -> Iterator[Path]:
    return iter(sorted(p for p in CLAUDE.iterdir() if p.is_dir()))


def shifted(body: bytes, offset_ns: int) -> bytes:
    """A real metrics request with every point's start and time moved by `offset_ns`: the same
    shape and values, a distinct delta window (a new export of the same session)."""
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (  # noqa: PLC0415
        ExportMetricsServiceRequest,
    )

    request = ExportMetricsServiceRequest.FromString(body)
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                data = getattr(metric, metric.WhichOneof("data"))
                for point in data.data_points:
                    point.start_time_unix_nano += offset_ns
                    point.time_unix_nano += offset_ns
    return request.SerializeToString()


def good_export(n: int, service: str) -> bytes:
    """The real t1 metrics export under `service`, in delta window `n` of its own: good traffic to send
    between bad requests, whose totals must stay exact (123 input tokens and one session per export)."""
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (  # noqa: PLC0415
        ExportMetricsServiceRequest,
    )

    body = (CLAUDE / "t1_http_protobuf_sayhi" / "0002_http_metrics.pb").read_bytes()
    request = ExportMetricsServiceRequest.FromString(shifted(body, (n + 1) * 1_000_000_000))
    for attribute in request.resource_metrics[0].resource.attributes:
        if attribute.key == "service.name":
            attribute.value.string_value = service
    return request.SerializeToString()
