"""/metrics at scale: render time per format, and memory under many parallel scrapes.

    .venv/bin/python -m benchmarks.exposition                 # this tree
    .venv/bin/python -m benchmarks.exposition --tree /tmp/old # another checkout, for before/after

A bridge (state persisted, as shipped) grown to each level of live series with t7's lines-of-code
point under distinct `file` labels. At each level: the first scrape per format (every new series
rendered for the first time), then the median of 5 scrapes per format, each after a
one-point export that changes a series (so the body must really be rendered again), and one scrape
with nothing changed; wall time, and the server's CPU time (steadier on a shared machine); RSS per
series over the bridge's RSS before growth (the store plus both formats' kept bodies). At the last
level: RSS and peak RSS (VmHWM) around 40 parallel scrapes per format. Prints a table and writes
results/exposition.json. Scrapes after a change wait out the pacing first (expose/scrape.py: the next
rendering waits 3× what the last one cost), or they would time that wait.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from contextlib import chdir
from pathlib import Path

import aiohttp
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from benchmarks.durability import _bridge
from benchmarks.loadgen import distinct_series_request

FORMATS = {"text": "text/plain", "openmetrics": "application/openmetrics-text; version=1.0.0"}
PROTOBUF = {"Content-Type": "application/x-protobuf"}
PACING_PAUSE = 1.0  # seconds before each change: more than any rendering here costs


def _change(n: int) -> bytes:
    """One point on series 0, in a delta window of its own: the store changes, the version moves."""
    request = ExportMetricsServiceRequest.FromString(distinct_series_request(0, 1))
    point = request.resource_metrics[0].scope_metrics[0].metrics[0].sum.data_points[0]
    point.start_time_unix_nano += (n + 1) * 10**9
    point.time_unix_nano += (n + 1) * 10**9
    return request.SerializeToString()


async def _scrape(session: aiohttp.ClientSession, url: str, accept: str) -> tuple[float, int]:
    started = time.perf_counter()
    async with session.get(url, headers={"Accept": accept}) as response:
        size = len(await response.read())
    return time.perf_counter() - started, size


async def _run(tree: Path, levels: list[int], parallel: int) -> dict[str, object]:
    rows: list[dict[str, object]] = []
    memory: dict[str, object] = {}
    changes = 0
    state = tempfile.TemporaryDirectory()
    with chdir(tree):  # `python -m otlp_bridge` runs the tree it is started in
        server, _, http_port = _bridge(Path(state.name), True, "full")
    metrics_url = server.ready_url.replace("/readyz", "/metrics")
    ingest = f"http://127.0.0.1:{http_port}/v1/metrics"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
            have = 0
            baseline_rss = server.rss_mib()
            for level in levels:
                for first in range(have, level, 5000):
                    async with session.post(ingest, data=distinct_series_request(first, min(5000, level - first)),
                                            headers=PROTOBUF) as response:
                        assert response.status == 200, await response.text()
                have = level
                row: dict[str, object] = {"series": level}
                for name, accept in FORMATS.items():  # every new series rendered for the first time
                    cpu_before = server.cpu_seconds()
                    row[f"{name}_first_s"] = round((await _scrape(session, metrics_url, accept))[0], 3)
                    row[f"{name}_first_cpu_s"] = round(server.cpu_seconds() - cpu_before, 3)
                for name, accept in FORMATS.items():
                    times, cpu = [], []
                    for _ in range(5):
                        await asyncio.sleep(PACING_PAUSE)
                        async with session.post(ingest, data=_change(changes), headers=PROTOBUF) as response:
                            assert response.status == 200
                        changes += 1
                        cpu_before = server.cpu_seconds()
                        seconds, size = await _scrape(session, metrics_url, accept)
                        times.append(seconds)
                        cpu.append(server.cpu_seconds() - cpu_before)
                    row[f"{name}_s"] = round(statistics.median(times), 3)
                    row[f"{name}_cpu_s"] = round(statistics.median(cpu), 3)
                    row[f"{name}_unchanged_s"] = round((await _scrape(session, metrics_url, accept))[0], 3)
                    row[f"{name}_mib"] = round(size / 2**20, 1)
                row["rss_per_series_bytes"] = round((server.rss_mib() - baseline_rss) * 2**20 / level)
                rows.append(row)
                print(row, flush=True)
            for name, accept in FORMATS.items():
                await asyncio.sleep(PACING_PAUSE)
                async with session.post(ingest, data=_change(changes), headers=PROTOBUF) as response:
                    assert response.status == 200
                changes += 1
                before, peak_before = server.rss_mib(), server.peak_rss_mib()
                started = time.perf_counter()
                await asyncio.gather(*(_scrape(session, metrics_url, accept) for _ in range(parallel)))
                memory[name] = {"parallel": parallel, "seconds": round(time.perf_counter() - started, 2),
                                "rss_before_mib": round(before), "peak_before_mib": round(peak_before),
                                "peak_after_mib": round(server.peak_rss_mib()),
                                "rss_after_mib": round(server.rss_mib())}
                print(name, memory[name], flush=True)
    finally:
        server.stop()
        state.cleanup()
    return {"tree": str(tree), "render": rows, "parallel_scrapes": memory}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--levels", default="100000,200000")
    parser.add_argument("--parallel", type=int, default=40)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "exposition.json")
    args = parser.parse_args()
    result = asyncio.run(_run(args.tree.resolve(), [int(x) for x in args.levels.split(",")], args.parallel))
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
