"""The floor: a server on the bridge's own stack (grpc.aio + aiohttp) that only decodes each
OTLP protobuf body and answers OK. Whatever the bridge does beyond this is its own cost.

    python -m benchmarks.floor --grpc-port 14317 --http-port 14318 --ready-port 19464
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from aiohttp import web
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

# request and response message classes per signal (protobuf's generated classes share no typed base)
TYPES: dict[str, tuple[Any, Any]] = {"metrics": (ExportMetricsServiceRequest, ExportMetricsServiceResponse),
         "logs": (ExportLogsServiceRequest, ExportLogsServiceResponse)}
SERVICES = {"metrics": "opentelemetry.proto.collector.metrics.v1.MetricsService",
            "logs": "opentelemetry.proto.collector.logs.v1.LogsService"}


def _grpc_handler(signal: str) -> Callable[[bytes, grpc.aio.ServicerContext], Awaitable[bytes]]:
    request_type, response_type = TYPES[signal]
    empty = response_type().SerializeToString()

    async def export(body: bytes, context: grpc.aio.ServicerContext) -> bytes:
        request_type.FromString(body)
        return empty

    return export


async def main(grpc_port: int, http_port: int, ready_port: int) -> None:
    server = grpc.aio.server()
    for signal, service in SERVICES.items():
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(service, {
            "Export": grpc.unary_unary_rpc_method_handler(_grpc_handler(signal))})])
    server.add_insecure_port(f"127.0.0.1:{grpc_port}")
    await server.start()

    async def http_export(request: web.Request) -> web.Response:
        signal = request.path.rsplit("/", 1)[-1]
        request_type, response_type = TYPES[signal]
        request_type.FromString(await request.read())
        return web.Response(body=response_type().SerializeToString(), content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/{signal}", http_export)
    ready = web.Application()
    ready.router.add_get("/readyz", lambda _: web.Response(text="ready\n"))  # type: ignore[arg-type, return-value]
    for application, port in ((app, http_port), (ready, ready_port)):
        runner = web.AppRunner(application, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--ready-port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(main(args.grpc_port, args.http_port, args.ready_port))
