"""Benchmarks of the bridge against the floor, in one run on one machine.

    make bench        # = .venv/bin/python -m benchmarks.run

1. Ingest: exports/s, points/s, p50/p99, errors, server CPU and peak RSS, for the bridge (state
   persisted, as shipped) and the floor (decode-only server on the same stack), per transport.
   The bridge/floor throughput ratio is the headline.
2. Scale: at 1k, 10k and 100k live series — /metrics render time (text and OpenMetrics),
   ingest points/s, RSS per live series — and how each grows (log-log slope).
3. Scrapes vs ingest: export p99 with /metrics scraped back-to-back vs without, at 100k series.
Prints tables and writes results/bench.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp

from benchmarks.durability import _bridge, _port
from benchmarks.loadgen import ServerProcess, as_row, distinct_series_request, make_bodies, run_load

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def _floor() -> tuple[ServerProcess, int, int]:
    grpc_port, http_port, ready_port = _port(), _port(), _port()
    server = ServerProcess(["-m", "benchmarks.floor", "--grpc-port", str(grpc_port), "--http-port", str(http_port),
                            "--ready-port", str(ready_port)], f"http://127.0.0.1:{ready_port}/readyz")
    return server, grpc_port, http_port


def ingest(requests: int, clients: int) -> list[dict[str, object]]:
    bodies = make_bodies(requests, sessions=500)
    rows = []
    for transport in ("http", "grpc"):
        for name in ("floor", "bridge"):
            with tempfile.TemporaryDirectory() as tmp:
                server, grpc_port, http_port = _floor() if name == "floor" else _bridge(Path(tmp), True, "full")
                try:
                    port = grpc_port if transport == "grpc" else http_port
                    result = run_load(transport, port, bodies, clients)
                    rows.append({"server": name, **as_row(result), "server_cpu_s": server.cpu_seconds(),
                                 "server_peak_rss_mib": round(server.peak_rss_mib(), 1)})
                finally:
                    server.stop()
    return rows


async def _grow(session: aiohttp.ClientSession, http_port: int, have: int, want: int) -> None:
    step = 5000
    for first in range(have, want, step):
        async with session.post(f"http://127.0.0.1:{http_port}/v1/metrics", data=distinct_series_request(
                first, min(step, want - first)), headers={"Content-Type": "application/x-protobuf"}) as response:
            assert response.status == 200, await response.text()


async def _render_seconds(session: aiohttp.ClientSession, url: str, accept: str | None, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        async with session.get(url, headers={"Accept": accept} if accept else {}) as response:
            await response.read()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def _export_latencies(http_port: int, bodies: list[tuple[str, bytes]], clients: int,
                            scrape_url: str | None) -> tuple[list[float], float, int]:
    latencies: list[float] = []
    queue = iter(bodies)
    done = asyncio.Event()
    scrapes = 0

    async def client(session: aiohttp.ClientSession) -> None:
        for signal, body in queue:
            started = time.perf_counter()
            async with session.post(f"http://127.0.0.1:{http_port}/v1/{signal}", data=body,
                                    headers={"Content-Type": "application/x-protobuf"}) as response:
                await response.read()
            latencies.append(time.perf_counter() - started)

    async def scraper(session: aiohttp.ClientSession) -> None:
        nonlocal scrapes
        while not done.is_set():
            async with session.get(scrape_url) as response:  # type: ignore[arg-type]
                await response.read()
            scrapes += 1

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients + 2)) as session:
        scraping = asyncio.create_task(scraper(session)) if scrape_url else None
        began = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        seconds = time.perf_counter() - began
        done.set()
        if scraping:
            await scraping
    return sorted(latencies), seconds, scrapes


def _p99(ordered: list[float]) -> float:
    return ordered[max(int(len(ordered) * 0.99) - 1, 0)]


async def _scale(levels: list[int], clients: int, load_requests: int) -> tuple[list[dict[str, object]],
                                                                                dict[str, object]]:
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        server, _, http_port = _bridge(Path(tmp), True, "full")
        metrics_port = int(server.ready_url.rsplit(":", 1)[1].split("/")[0])
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        try:
            async with aiohttp.ClientSession() as session:
                baseline_rss = server.rss_mib()
                have = 0
                scrape_effect: dict[str, object] = {}
                for level in levels:
                    await _grow(session, http_port, have, level)
                    have = level
                    text_s = await _render_seconds(session, url, None)
                    open_s = await _render_seconds(session, url, OPENMETRICS)
                    bodies = make_bodies(load_requests, sessions=200)
                    quiet, seconds, _ = await _export_latencies(http_port, bodies, clients, None)
                    points = sum(11 for signal, _ in bodies if signal == "metrics")
                    rss = server.rss_mib()
                    rows.append({"series": level, "render_text_s": round(text_s, 4),
                                 "render_openmetrics_s": round(open_s, 4),
                                 "ingest_points_per_s": round(points / seconds, 1),
                                 "rss_mib": round(rss, 1),
                                 "rss_per_series_bytes": round((rss - baseline_rss) * 2**20 / level, 1)})
                    if level == levels[-1]:
                        busy_bodies = make_bodies(load_requests, sessions=200)
                        busy, _, scrapes = await _export_latencies(http_port, busy_bodies, clients, url)
                        scrape_effect = {"series": level, "p99_ms_quiet": round(_p99(quiet) * 1000, 2),
                                         "p99_ms_scraping": round(_p99(busy) * 1000, 2), "scrapes_during": scrapes,
                                         "ratio": round(_p99(busy) / _p99(quiet), 2)}
        finally:
            server.stop()
    return rows, scrape_effect


def _slope(rows: list[dict[str, object]], key: str) -> float:
    """d log(value) / d log(series), first level to last: 1 is linear, 0 is flat."""
    first, last = rows[0], rows[-1]
    return round(math.log(float(last[key]) / float(first[key]))  # type: ignore[arg-type]
                 / math.log(float(last["series"]) / float(first["series"])), 2)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--levels", default="1000,10000,100000")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "bench.json")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]

    ingest_rows = ingest(args.requests, args.clients)
    print("\n## Ingest (bridge persists state; floor only decodes)")
    print(f"{'server':7} {'transport':9} {'exports/s':>10} {'points/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'errors':>6} {'cpu s':>7} {'peak MiB':>9}")
    for r in ingest_rows:
        print(f"{r['server']:7} {r['transport']:9} {r['exports_per_second']:>10} {r['points_per_second']:>10} "
              f"{r['p50_ms']:>8} {r['p99_ms']:>8} {r['errors']:>6} {r['server_cpu_s']:>7} "
              f"{r['server_peak_rss_mib']:>9}")
    ratios = {}
    for transport in ("http", "grpc"):
        by = {r["server"]: r for r in ingest_rows if r["transport"] == transport}
        ratios[transport] = round(float(by["bridge"]["exports_per_second"])  # type: ignore[arg-type]
                                  / float(by["floor"]["exports_per_second"]), 2)  # type: ignore[arg-type]
        print(f"bridge/floor throughput, {transport}: {ratios[transport]}")

    scale_rows, scrape_effect = asyncio.run(_scale(levels, args.clients, max(args.requests // 4, 500)))
    print("\n## Scale")
    print(f"{'series':>7} {'text s':>8} {'openm. s':>9} {'points/s':>10} {'RSS MiB':>8} {'B/series':>9}")
    for r in scale_rows:
        print(f"{r['series']:>7} {r['render_text_s']:>8} {r['render_openmetrics_s']:>9} "
              f"{r['ingest_points_per_s']:>10} {r['rss_mib']:>8} {r['rss_per_series_bytes']:>9}")
    slopes = {key: _slope(scale_rows, key) for key in ("render_text_s", "ingest_points_per_s")}
    print(f"slopes (log-log, per ×10 series): render {slopes['render_text_s']}, "
          f"ingest {slopes['ingest_points_per_s']}")
    print(f"\n## Export p99 while /metrics is scraped back-to-back ({scrape_effect['series']} series): "
          f"{scrape_effect['p99_ms_scraping']} ms vs {scrape_effect['p99_ms_quiet']} ms quiet "
          f"(×{scrape_effect['ratio']}, {scrape_effect['scrapes_during']} scrapes)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "requests": args.requests, "clients": args.clients, "ingest": ingest_rows, "bridge_floor_ratio": ratios,
        "scale": scale_rows, "slopes": slopes, "scrape_effect": scrape_effect}, indent=2))


if __name__ == "__main__":
    main()
