"""The memory the default caps need: one bridge with every one of them full. deploy/k8s/deployment.yaml
is sized by this figure.

    .venv/bin/python -m benchmarks.sizing        # several minutes: a million history points go in first

One bridge (state persisted, as shipped, default limits): its hourly history filled to just under
state.max_history_buckets (Claude Code's cost point for 700 users in every hour of the last ~60 days),
then distinct series to limits.max_series, then 40 parallel scrapes per format; then kill -9 and a
start on the same state (which loads all of it back) with its first scrapes, a clean stop and a start
again. Peak RSS (VmHWM) of each process; writes results/sizing.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import aiohttp
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse

from benchmarks import scale
from benchmarks.durability import _bridge
from benchmarks.loadgen import ServerProcess, hourly_cost_request
from otlp_bridge.config import load_settings

USERS = 700  # cost series; each point also moves one ledger series (coding_agent_cost_usd_total)


async def _fill_history(grown: scale.Grown, hours: int) -> dict[str, object]:
    """`hours` hours up to now of cost for every user: (USERS + 1) × hours history buckets."""
    per_request = load_settings(None).limits.max_points_per_request // USERS
    first = int(time.time() // 3600) - hours
    refused = 0
    started = time.perf_counter()
    for hour in range(first, first + hours, per_request):
        body = hourly_cost_request(hour, min(per_request, first + hours - hour), USERS)
        async with grown.session.post(f"{grown.ingest}/metrics", data=body, headers=scale.PROTOBUF) as response:
            assert response.status == 200, await response.text()
            refused += ExportMetricsServiceResponse.FromString(await response.read()) \
                .partial_success.rejected_data_points
    return {"points_sent": USERS * hours, "points_refused": refused, "buckets": (USERS + 1) * hours,
            "seconds": round(time.perf_counter() - started, 1), "rss_mib": round(grown.server.rss_mib(), 1)}


async def _fill(server: ServerProcess, http_port: int, hours: int, series: int, parallel: int) -> dict[str, object]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1800),
                                     connector=aiohttp.TCPConnector(limit=0)) as session:
        grown = scale.Grown(server, http_port, session)
        baseline = round(server.rss_mib(), 1)
        history = await _fill_history(grown, hours)
        cap = await scale.at_cap(grown, series, parallel)
    return {"baseline_rss_mib": baseline, "history": history, "cap": cap}


def run(hours: int, series: int, parallel: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        server, _, http_port = _bridge(Path(tmp), True, "full")
        try:
            result = asyncio.run(_fill(server, http_port, hours, series, parallel))
        except BaseException:
            server.stop()
            raise
        server.kill()
        config = Path(tmp) / "bench.toml"
        result["restart_after_kill9"] = scale.restart(config, server.ready_url)
        result["restart_after_stop"] = scale.restart(config, server.ready_url)
    return result


def main() -> None:
    settings = load_settings(None)
    retention = int(settings.state.history_retention.total_seconds() // 3600)
    # just under the bucket cap (past it the oldest tenth would go) and inside the retention
    most = min(settings.state.max_history_buckets // (USERS + 1), retention - 24)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=int, default=most, help=f"hours of history (default {most})")
    parser.add_argument("--series", type=int, default=settings.limits.max_series, help="distinct series sent")
    parser.add_argument("--parallel", type=int, default=40)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "sizing.json")
    args = parser.parse_args()
    result = run(args.hours, args.series, args.parallel)
    result["peak_rss_mib"] = scale.peak_rss_mib(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"peak RSS with every default cap full: {result['peak_rss_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
