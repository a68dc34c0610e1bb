"""The cost of durability: exports/s and p99 latency with persistence on vs off, in one run.

    .venv/bin/python -m benchmarks.durability [--requests 6000] [--clients 16]
"""

from __future__ import annotations

import argparse
import json
import socket
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.loadgen import ServerProcess, make_bodies, measure


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bridge(state_dir: Path, persist: bool, synchronous: str,
            tree: Path | None = None) -> tuple[ServerProcess, int, int]:
    """A bridge on fresh ports with `state_dir/bench.toml` (a restart can reuse it); from the source
    tree `tree` when given (an older commit, for a before/after in one run)."""
    grpc_port, http_port, metrics_port = _port(), _port(), _port()
    config = state_dir / "bench.toml"
    config.write_text(
        f"log_level = \"WARNING\"\n[server]\ngrpc_port = {grpc_port}\nhttp_port = {http_port}\n"
        f"metrics_port = {metrics_port}\n[state]\ndir = \"{state_dir}\"\npersist = {str(persist).lower()}\n"
        f"synchronous = \"{synchronous}\"\n")
    server = ServerProcess(["-m", "otlp_bridge", "serve", "--config", str(config)],
                           f"http://127.0.0.1:{metrics_port}/readyz", cwd=tree)
    return server, grpc_port, http_port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "durability.json")
    args = parser.parse_args()
    bodies = make_bodies(args.requests, sessions=500)
    rows: list[dict[str, Any]] = []
    for label, persist, sync in (("memory only", False, "normal"), ("persist, synchronous=normal", True, "normal"),
                                 ("persist, synchronous=full", True, "full")):
        for transport in ("http", "grpc"):
            with tempfile.TemporaryDirectory() as tmp:
                server, grpc_port, http_port = _bridge(Path(tmp), persist, sync)
                try:
                    port = grpc_port if transport == "grpc" else http_port
                    rows.append({"config": label, **measure(server, transport, port, bodies, args.clients)})
                finally:
                    server.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"requests": args.requests, "clients": args.clients, "rows": rows}, indent=2))
    print(f"{'config':30} {'transport':9} {'exports/s':>10} {'points/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}"
          f" {'CPU µs/export':>13}")
    for row in rows:
        print(f"{row['config']:30} {row['transport']:9} {row['exports_per_second']:>10} {row['points_per_second']:>10}"
              f" {row['p50_ms']:>8} {row['p99_ms']:>8} {row['errors']:>6} {row['cpu_us_per_export']:>13}")
    base = {r["transport"]: r["exports_per_second"] for r in rows if r["config"] == "memory only"}
    for row in rows:
        if row["config"] != "memory only":
            ratio = row["exports_per_second"] / base[row["transport"]]
            print(f"{row['config']} / memory only, {row['transport']}: {ratio:.2f}")


if __name__ == "__main__":
    main()
