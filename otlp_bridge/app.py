"""Wires receivers, pipeline, store and exposition into one asyncio process."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass

from aiohttp import web
from google.protobuf.internal import api_implementation

from otlp_bridge.config import Settings
from otlp_bridge.expose import api
from otlp_bridge.pipeline import Pipeline
from otlp_bridge.receive import grpc as grpc_receiver
from otlp_bridge.receive import http as http_receiver
from otlp_bridge.self_metrics import SelfMetrics
from otlp_bridge.store.accumulator import Store
from otlp_bridge.translate.metrics import LabelPolicy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ports:
    grpc: int
    http: int
    metrics: int


def _grpc_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _start_site(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    # aiohttp would inflate gzip bodies itself, without a size limit; decode.gunzip does it bounded.
    runner = web.AppRunner(app, access_log=None, handle_signals=False, auto_decompress=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    return runner, bound


class Bridge:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = Store()
        self.stats = SelfMetrics()
        self.readiness = api.Readiness()
        self.pipeline = Pipeline(self.store, LabelPolicy(frozenset(settings.labels.drop)), self.stats)
        self._runners: list[web.AppRunner] = []
        self._grpc = grpc_receiver.build_server(self.pipeline, settings.server.max_request_bytes)
        self.ports: Ports | None = None

    async def start(self) -> Ports:
        """Bind every listener, or none: a failure stops what had started before it re-raises."""
        if api_implementation.Type() != "upb":
            log.warning("protobuf is using its %r backend, not upb: decoding will be many times slower",
                        api_implementation.Type())
        try:
            return await self._start()
        except BaseException:
            await self.stop(0)
            raise

    async def _start(self) -> Ports:
        server = self.settings.server
        grpc_port = self._grpc.add_insecure_port(_grpc_address(server.host, server.grpc_port))
        if grpc_port == 0:
            raise OSError(f"cannot bind OTLP/gRPC on {server.host}:{server.grpc_port}")
        await self._grpc.start()
        http_runner, http_port = await _start_site(
            http_receiver.build_app(self.pipeline, server.max_request_bytes), server.host, server.http_port)
        self._runners.append(http_runner)
        metrics_runner, metrics_port = await _start_site(
            api.build_app(self.store, self.stats, self.readiness), server.host, server.metrics_port)
        self._runners.append(metrics_runner)
        self.ports = Ports(grpc_port, http_port, metrics_port)
        log.info("OTLP/gRPC listening on %s", _grpc_address(server.host, grpc_port))
        log.info("OTLP/HTTP listening on http://%s/v1/{metrics,logs,traces}", _grpc_address(server.host, http_port))
        log.info("Prometheus metrics on http://%s/metrics", _grpc_address(server.host, metrics_port))
        self.readiness.ready = True
        return self.ports

    async def stop(self, grace: float = 5.0) -> None:
        self.readiness.ready = False
        self.readiness.reason = "shutting down"
        await self._grpc.stop(grace)
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()


async def serve(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM, then drain and stop."""
    bridge = Bridge(settings)
    await bridge.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    log.info("shutting down")
    await bridge.stop()
