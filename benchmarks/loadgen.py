"""Replays real Claude Code exports at a server with N concurrent clients; measures what it sees.

Bodies are the 2.1.330 captures with session ids (and delta windows) varied per request, so the
series are realistic: many sessions folding into few output series. Everything is built before
the clock starts.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
import grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric, NumberDataPoint

ROOT = Path(__file__).resolve().parent.parent
CLAUDE = ROOT / "proto_fixtures" / "claude-code-2.1.330"
METRICS = CLAUDE / "t7_write_edit_acceptEdits" / "0014_http_metrics.pb"
LOGS = CLAUDE / "t7_write_edit_acceptEdits" / "0013_http_logs.pb"
GRPC_PATHS = {"metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
              "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export"}


def _set_session(attributes: object, session: str) -> None:
    for attribute in attributes:  # type: ignore[attr-defined]
        if attribute.key == "session.id":
            attribute.value.string_value = session


def make_bodies(count: int, sessions: int, users: int = 50, start: int = 0) -> list[tuple[str, bytes]]:
    """(signal, body) pairs: metrics and logs of t7, every export its own window and session. A later
    batch for the same bridge starts where the last ended (`start`), or its windows would be replays."""
    metrics = ExportMetricsServiceRequest.FromString(METRICS.read_bytes())
    logs = ExportLogsServiceRequest.FromString(LOGS.read_bytes())
    out: list[tuple[str, bytes]] = []
    for i in range(start, start + count):
        session, user = f"bench-session-{i % sessions}", f"{i % users:064x}"
        if i % 4 == 3:  # Claude Code sends about one logs export per three metrics exports
            request = ExportLogsServiceRequest()
            request.CopyFrom(logs)
            for record in request.resource_logs[0].scope_logs[0].log_records:
                _set_session(record.attributes, session)
            out.append(("logs", request.SerializeToString()))
            continue
        request = ExportMetricsServiceRequest()
        request.CopyFrom(metrics)
        for metric in request.resource_metrics[0].scope_metrics[0].metrics:
            for point in metric.sum.data_points:
                point.start_time_unix_nano += i * 1_000_000_000
                point.time_unix_nano += i * 1_000_000_000
                _set_session(point.attributes, session)
                for attribute in point.attributes:
                    if attribute.key == "user.id":
                        attribute.value.string_value = user
        out.append(("metrics", request.SerializeToString()))
    return out


def _t7_metric(name: str) -> tuple[ExportMetricsServiceRequest, Metric, NumberDataPoint]:
    """A request with t7's resource and its metric `name` holding no points yet, and that metric's first point."""
    t7 = ExportMetricsServiceRequest.FromString(METRICS.read_bytes())
    template = next(m for m in t7.resource_metrics[0].scope_metrics[0].metrics if m.name == name)
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    resource_metrics.resource.CopyFrom(t7.resource_metrics[0].resource)
    metric = resource_metrics.scope_metrics.add().metrics.add()
    metric.CopyFrom(template)
    del metric.sum.data_points[:]
    return request, metric, template.sum.data_points[0]


def distinct_series_request(first: int, count: int, window: int = 0) -> bytes:
    """t7's lines-of-code point `count` times, each with its own `file` label: `count` new series.
    `window` n > 0 moves the delta window n seconds later: the same series again, a change to them."""
    request, metric, template = _t7_metric("claude_code.lines_of_code.count")
    for i in range(first, first + count):
        point = metric.sum.data_points.add()
        point.CopyFrom(template)
        point.start_time_unix_nano += window * 1_000_000_000
        point.time_unix_nano += window * 1_000_000_000
        point.attributes.add(key="file", value={"string_value": f"/src/pkg_{i // 100}/module_{i}.py"})
    return request.SerializeToString()


def hourly_cost_request(first_hour: int, hours: int, users: int) -> bytes:
    """t7's cost point for `users` users (a `user.id` each: a series each) in every one of `hours` hours
    from the Unix hour `first_hour`: users × hours buckets of the bridge's hourly history."""
    request, metric, template = _t7_metric("claude_code.cost.usage")
    for hour in range(first_hour, first_hour + hours):
        for user in range(users):
            point = metric.sum.data_points.add()
            point.CopyFrom(template)
            point.start_time_unix_nano = (hour * 3600 + 60) * 1_000_000_000
            point.time_unix_nano = point.start_time_unix_nano + 1_000_000_000
            for attribute in point.attributes:
                if attribute.key == "user.id":
                    attribute.value.string_value = f"{user:064x}"
    return request.SerializeToString()


def points_in(bodies: list[tuple[str, bytes]]) -> int:
    total = 0
    for signal, body in bodies:
        if signal == "metrics":
            request = ExportMetricsServiceRequest.FromString(body)
            total += sum(len(m.sum.data_points) for m in request.resource_metrics[0].scope_metrics[0].metrics)
    return total


@dataclass
class LoadResult:
    transport: str
    requests: int
    errors: int
    seconds: float
    exports_per_second: float
    points_per_second: float
    p50_ms: float
    p99_ms: float


async def _run_http(port: int, bodies: list[tuple[str, bytes]], clients: int) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = 0
    queue = iter(bodies)

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        for signal, body in queue:
            started = time.perf_counter()
            async with session.post(f"http://127.0.0.1:{port}/v1/{signal}", data=body,
                                    headers={"Content-Type": "application/x-protobuf"}) as response:
                await response.read()
                if response.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        began = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        return latencies, errors, time.perf_counter() - began


async def _run_grpc(port: int, bodies: list[tuple[str, bytes]], clients: int) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = 0
    queue = iter(bodies)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        calls = {signal: channel.unary_unary(path) for signal, path in GRPC_PATHS.items()}

        async def client() -> None:
            nonlocal errors
            for signal, body in queue:
                started = time.perf_counter()
                try:
                    await calls[signal](body, timeout=30)
                except grpc.aio.AioRpcError:
                    errors += 1
                latencies.append(time.perf_counter() - started)

        began = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return latencies, errors, time.perf_counter() - began


def run_load(transport: str, port: int, bodies: list[tuple[str, bytes]], clients: int) -> LoadResult:
    runner = _run_grpc if transport == "grpc" else _run_http
    latencies, errors, seconds = asyncio.run(runner(port, bodies, clients))
    ordered = sorted(latencies)
    return LoadResult(
        transport=transport, requests=len(bodies), errors=errors, seconds=round(seconds, 3),
        exports_per_second=round(len(bodies) / seconds, 1),
        points_per_second=round(points_in(bodies) / seconds, 1),
        p50_ms=round(statistics.median(ordered) * 1000, 3),
        p99_ms=round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 3),
    )


class ServerProcess:
    """A server (the bridge, or the floor) in its own process, with its CPU time and peak RSS;
    `ready_seconds` is from launch until its `ready_url` answered."""

    def __init__(self, args: list[str], ready_url: str, poll: float = 0.1, cwd: Path | None = None) -> None:
        self.ready_url = ready_url
        launched = time.perf_counter()
        self.process = subprocess.Popen([sys.executable, *args], cwd=cwd, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(ready_url, timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"{args} did not start") from None
                time.sleep(poll)
        self.ready_seconds = time.perf_counter() - launched

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks

    def _status_mib(self, field: str) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        return 0.0

    def peak_rss_mib(self) -> float:
        return self._status_mib("VmHWM")

    def rss_mib(self) -> float:
        return self._status_mib("VmRSS")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash or an OOM kill."""
        self.process.kill()
        self.process.wait(30)


def measure(server: ServerProcess, transport: str, port: int, bodies: list[tuple[str, bytes]],
            clients: int) -> dict[str, object]:
    """The load against a started server: what the clients saw, plus the server's CPU for the load alone
    (its start-up excluded) per export, and its peak RSS."""
    at_start = server.cpu_seconds()
    result = run_load(transport, port, bodies, clients)
    cpu = server.cpu_seconds() - at_start
    return {**asdict(result), "clients": clients, "server_cpu_s": round(cpu, 2),
            "cpu_us_per_export": round(cpu / len(bodies) * 1e6, 1),
            "server_peak_rss_mib": round(server.peak_rss_mib(), 1)}
