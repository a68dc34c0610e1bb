"""Where an export's time goes, in-process: the pipeline (decode → translate → apply → derive →
durable) against decoding alone, on the load generator's bodies, with an optional cProfile.

    .venv/bin/python -m benchmarks.profile_ingest [--requests 4000] [--clients 16] [--memory] [--profile]

No sockets: this isolates the bridge's own per-export CPU from the transports, which the floor shares.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

from benchmarks.loadgen import make_bodies
from otlp_bridge.app import Bridge
from otlp_bridge.config import load_settings
from otlp_bridge.decode import Signal, decode_protobuf

SIGNALS = {"metrics": Signal.METRICS, "logs": Signal.LOGS}


async def _drive(bridge: Bridge, bodies: list[tuple[str, bytes]], clients: int) -> None:
    queue = iter(bodies)

    async def client() -> None:
        for signal, body in queue:
            await bridge.pipeline.handle("http", SIGNALS[signal], body)

    await asyncio.gather(*(client() for _ in range(clients)))


async def _pipeline(state_dir: Path, persist: bool, bodies: list[tuple[str, bytes]], clients: int,
                    profile: cProfile.Profile | None) -> float:
    """CPU from the first export to a stopped bridge: with state, the stop's final flush is the part of the
    durable cost the exports left pending. Through `Bridge`'s own start and stop only (listeners on port 0,
    idle), so it runs on any tree, before or after a change to the state's internals."""
    settings = load_settings(None, state={"dir": str(state_dir), "persist": persist, "synchronous": "full"},
                             server={"host": "127.0.0.1", "grpc_port": 0, "http_port": 0, "metrics_port": 0})
    bridge = Bridge(settings)
    await bridge.start()
    try:
        if profile is not None:
            profile.enable()
        began = time.process_time()  # CPU of every thread (state writes run in workers): robust on a busy machine
        await _drive(bridge, bodies, clients)
    finally:
        await bridge.stop(0)
    seconds = time.process_time() - began
    if profile is not None:
        profile.disable()
    return seconds


def _decode_only(bodies: list[tuple[str, bytes]]) -> float:
    began = time.process_time()
    for signal, body in bodies:
        decode_protobuf(SIGNALS[signal], body)
    return time.process_time() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--memory", action="store_true", help="state.persist off")
    parser.add_argument("--profile", action="store_true", help="cProfile the pipeline run, top 30 by self time")
    args = parser.parse_args()
    bodies = make_bodies(args.requests, sessions=500)
    decode = _decode_only(bodies)
    profile = cProfile.Profile() if args.profile else None
    with tempfile.TemporaryDirectory() as tmp:
        seconds = asyncio.run(_pipeline(Path(tmp), not args.memory, bodies, args.clients, profile))
    per = 1e6 / len(bodies)
    print(f"decode only: {decode * per:.0f} µs/export (CPU); pipeline ({'memory' if args.memory else 'durable'}): "
          f"{seconds * per:.0f} µs/export (CPU)")
    if profile is not None:
        pstats.Stats(profile).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
