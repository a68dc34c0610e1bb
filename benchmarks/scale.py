"""One bridge (state persisted, as shipped) grown through levels of live series to the default cap.

At each level: the first /metrics render per format after the growth, the median render after a
one-point change, ingest points/s of the load generator's exports, RSS per live series. At the last
level: export p99 with /metrics scraped back-to-back against without, in interleaved rounds. At the
cap: 40 parallel scrapes per format, the process's peak RSS, then kill -9 and a start on the same
state, then a clean stop and a start again: seconds until /readyz, series restored, peak RSS of each.
Used by benchmarks/run.py; every figure comes through HTTP and /proc, nothing from the bridge's code.
On its own it sizes the Kubernetes memory (deploy/k8s/deployment.yaml): the peak RSS at the default cap,

    .venv/bin/python -m benchmarks.scale            # levels 100000, cap = the default limits.max_series
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse

from benchmarks.durability import _bridge
from benchmarks.loadgen import ServerProcess, distinct_series_request, make_bodies
from otlp_bridge.config import load_settings

FORMATS = {"text": "text/plain", "openmetrics": "application/openmetrics-text; version=1.0.0"}
PROTOBUF = {"Content-Type": "application/x-protobuf"}
MARKER = b"/module_"  # in the `file` label of every grown series: counts them in a text body
PACED = 1.0  # a pause before each change: the bridge paces renderings back to back (expose/scrape.py)
STEP = 5000  # series per growth request (the default max_points_per_request is 20 000)


async def scrape(session: aiohttp.ClientSession, url: str, accept: str, *,
                 inflate: bool = False) -> tuple[float, bytes]:
    """One /metrics scrape as Prometheus makes it (gzip accepted): seconds until the whole answer is in as
    sent — inflating it is the scraper's work, and in this process it would stall the exports being
    timed beside it — and the body, inflated only when asked."""
    started = time.perf_counter()
    async with session.get(url, headers={"Accept": accept, "Accept-Encoding": "gzip"},
                           auto_decompress=False) as response:
        assert response.status == 200, response.status
        body = await response.read()
        encoded = response.headers.get("Content-Encoding") == "gzip"
    seconds = time.perf_counter() - started
    return seconds, gzip.decompress(body) if inflate and encoded else body


@dataclass(frozen=True)
class Sizes:
    levels: list[int]  # live series at which renders, ingest and RSS are measured
    cap: int  # series sent at the end (the default limits.max_series)
    clients: int
    load_requests: int  # exports per ingest measurement
    rounds: int  # quiet/scraped rounds
    parallel: int  # parallel scrapes at the cap


class Grown:
    """The bridge being grown, and the client that grows, changes and scrapes it."""

    def __init__(self, server: ServerProcess, http_port: int, session: aiohttp.ClientSession) -> None:
        self.server, self.session = server, session
        self.ingest = f"http://127.0.0.1:{http_port}/v1"
        self.metrics = server.ready_url.replace("/readyz", "/metrics")
        self.series = 0
        self.changes = 0
        self.exports = 0  # load-generator exports sent so far: the next batch's windows start after them

    async def grow(self, want: int) -> int:
        """Distinct series up to `want`; returns the points the bridge refused (past its series cap)."""
        refused = 0
        for first in range(self.series, want, STEP):
            body = distinct_series_request(first, min(STEP, want - first))
            async with self.session.post(f"{self.ingest}/metrics", data=body, headers=PROTOBUF) as response:
                assert response.status == 200, await response.text()
                refused += ExportMetricsServiceResponse.FromString(await response.read()) \
                    .partial_success.rejected_data_points
        self.series = max(self.series, want)
        return refused

    async def change(self) -> None:
        """One point on series 0 in a delta window of its own: the store changes, a render is due."""
        self.changes += 1
        async with self.session.post(f"{self.ingest}/metrics", data=distinct_series_request(0, 1, self.changes),
                                     headers=PROTOBUF) as response:
            assert response.status == 200, await response.text()

    async def scrape(self, accept: str, *, inflate: bool = False) -> tuple[float, bytes]:
        return await scrape(self.session, self.metrics, accept, inflate=inflate)

    async def timed_scrape(self, accept: str) -> tuple[float, float]:
        """One scrape: wall seconds, and the server's CPU seconds meanwhile (steadier on a shared machine)."""
        cpu = self.server.cpu_seconds()
        seconds, _ = await self.scrape(accept)
        return round(seconds, 4), round(self.server.cpu_seconds() - cpu, 3)

    def bodies(self, count: int) -> list[tuple[str, bytes]]:
        out = make_bodies(count, sessions=200, start=self.exports)
        self.exports += count
        return out

    async def exports_timed(self, bodies: list[tuple[str, bytes]], clients: int,
                            scrape: str | None = None) -> tuple[list[float], float, int]:
        """Latencies of `bodies` sent by `clients`, seconds overall, and how many /metrics scrapes in
        `scrape` format ran back-to-back meanwhile (none without `scrape`)."""
        latencies: list[float] = []
        queue = iter(bodies)
        done = asyncio.Event()
        scrapes = 0

        async def client() -> None:
            for signal, body in queue:
                started = time.perf_counter()
                async with self.session.post(f"{self.ingest}/{signal}", data=body, headers=PROTOBUF) as response:
                    await response.read()
                    assert response.status == 200, response.status
                latencies.append(time.perf_counter() - started)

        async def scraper(accept: str) -> None:
            nonlocal scrapes
            while not done.is_set():
                await self.scrape(accept)
                scrapes += 1

        scraping = asyncio.create_task(scraper(scrape)) if scrape else None
        began = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        seconds = time.perf_counter() - began
        done.set()
        if scraping:
            await scraping
        return latencies, seconds, scrapes


def p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[max(int(len(ordered) * 0.99) - 1, 0)]


async def _level(grown: Grown, level: int, clients: int, load_requests: int, baseline_rss: float) -> dict[str, object]:
    await grown.grow(level)
    row: dict[str, object] = {"series": level}
    for name, accept in FORMATS.items():  # every series rendered for the first time
        row[f"{name}_first_s"], row[f"{name}_first_cpu_s"] = await grown.timed_scrape(accept)
    for name, accept in FORMATS.items():
        times, cpu = [], []
        for _ in range(5):
            await asyncio.sleep(PACED)
            await grown.change()
            seconds, cpu_seconds = await grown.timed_scrape(accept)
            times.append(seconds)
            cpu.append(cpu_seconds)
        row[f"{name}_s"], row[f"{name}_cpu_s"] = round(statistics.median(times), 4), round(statistics.median(cpu), 3)
    bodies = grown.bodies(load_requests)
    _, seconds, _ = await grown.exports_timed(bodies, clients)
    points = sum(11 for signal, _ in bodies if signal == "metrics")  # t7's metrics export has 11 points
    rss = grown.server.rss_mib()
    row.update({"ingest_points_per_s": round(points / seconds, 1), "rss_mib": round(rss, 1),
                "rss_per_series_bytes": round((rss - baseline_rss) * 2**20 / level, 1)})
    return row


async def _scrape_effect(grown: Grown, clients: int, load_requests: int, rounds: int) -> dict[str, object]:
    """Quiet and scraped rounds interleaved, latencies pooled per condition: one noisy moment on the shared
    machine lands in one round, not in the whole of one side."""
    quiet: list[float] = []
    busy: list[float] = []
    scrapes = 0
    per_round = []
    for _ in range(rounds):
        calm, _, _ = await grown.exports_timed(grown.bodies(load_requests), clients)
        loaded, _, count = await grown.exports_timed(grown.bodies(load_requests), clients, FORMATS["openmetrics"])
        quiet += calm
        busy += loaded
        scrapes += count
        per_round.append(round(p99(loaded) / p99(calm), 2))
    return {"series": grown.series, "format": "openmetrics", "rounds": rounds, "scrapes_during": scrapes,
            "p99_ms_quiet": round(p99(quiet) * 1000, 2), "p99_ms_scraping": round(p99(busy) * 1000, 2),
            "ratio": round(p99(busy) / p99(quiet), 2), "ratio_per_round": per_round}


async def at_cap(grown: Grown, cap: int, parallel: int) -> dict[str, object]:
    refused = await grown.grow(cap)
    seconds, body = await grown.scrape(FORMATS["text"], inflate=True)
    out: dict[str, object] = {"series_sent": cap, "points_refused": refused, "live_grown_series": body.count(MARKER),
                              "text_first_s": round(seconds, 3)}
    for name, accept in FORMATS.items():
        await grown.change()
        started, cpu = time.perf_counter(), grown.server.cpu_seconds()
        await asyncio.gather(*(grown.scrape(accept) for _ in range(parallel)))
        out[f"{parallel}_parallel_{name}"] = {"seconds": round(time.perf_counter() - started, 2),
                                              "server_cpu_s": round(grown.server.cpu_seconds() - cpu, 2),
                                              "peak_rss_mib": round(grown.server.peak_rss_mib(), 1)}
    out["rss_mib"] = round(grown.server.rss_mib(), 1)
    out["peak_rss_mib"] = round(grown.server.peak_rss_mib(), 1)
    return out


async def _grown_phase(server: ServerProcess, http_port: int, sizes: Sizes) -> dict[str, object]:
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
        grown = Grown(server, http_port, session)
        baseline_rss = server.rss_mib()
        rows = [await _level(grown, level, sizes.clients, sizes.load_requests, baseline_rss)
                for level in sizes.levels]
        scrape_effect = await _scrape_effect(grown, sizes.clients, sizes.load_requests, sizes.rounds)
        cap_row = await at_cap(grown, sizes.cap, sizes.parallel)
    return {"baseline_rss_mib": round(baseline_rss, 1), "levels": rows, "scrape_effect": scrape_effect,
            "cap": cap_row}


async def _first_scrapes(server: ServerProcess) -> dict[str, object]:
    url = server.ready_url.replace("/readyz", "/metrics")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        out: dict[str, object] = {}
        for name, accept in FORMATS.items():
            seconds, body = await scrape(session, url, accept, inflate=True)
            out[f"{name}_first_s"] = round(seconds, 3)
            if name == "text":
                out["live_grown_series"] = body.count(MARKER)
    return out


def restart(config: Path, ready_url: str) -> dict[str, object]:
    """A bridge started on `config`'s state: seconds until /readyz, what it restored, its first scrapes."""
    server = ServerProcess(["-m", "otlp_bridge", "serve", "--config", str(config)], ready_url, poll=0.02)
    try:
        out: dict[str, object] = {"ready_s": round(server.ready_seconds, 2),
                                  "peak_rss_mib_at_ready": round(server.peak_rss_mib(), 1)}
        out.update(asyncio.run(_first_scrapes(server)))
        out["peak_rss_mib"] = round(server.peak_rss_mib(), 1)
    finally:
        server.stop()
    return out


def run(sizes: Sizes) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        server, _, http_port = _bridge(Path(tmp), True, "full")
        try:
            result = asyncio.run(_grown_phase(server, http_port, sizes))
        except BaseException:
            server.stop()
            raise
        server.kill()
        config = Path(tmp) / "bench.toml"
        result["restart_after_kill9"] = restart(config, server.ready_url)
        result["restart_after_stop"] = restart(config, server.ready_url)  # the start above stopped cleanly
    return result


def peak_rss_mib(result: dict[str, Any]) -> float:
    """The most any process held: the grown one (growth, loads, parallel scrapes) or a restarted one."""
    return max(float(result[key]["peak_rss_mib"]) for key in ("cap", "restart_after_kill9", "restart_after_stop"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", default="100000")
    parser.add_argument("--cap", type=int, default=load_settings(None).limits.max_series)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=1000, help="exports per ingest measurement")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--parallel", type=int, default=40)
    args = parser.parse_args()
    result = run(Sizes([int(x) for x in args.levels.split(",")], args.cap, args.clients, args.requests, args.rounds,
                       args.parallel))
    print(json.dumps(result, indent=2))
    print(f"peak RSS: {peak_rss_mib(result):.0f} MiB")


if __name__ == "__main__":
    main()
