"""OTLP/gRPC receiver: the three `Export` services over grpc.aio.

Requests are taken as raw bytes so a malformed body is our INVALID_ARGUMENT
with a reason, not the framework's INTERNAL. grpc itself handles `gzip`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import grpc
from grpc import aio

from otlp_bridge.decode import Signal
from otlp_bridge.errors import ExportError
from otlp_bridge.pipeline import Pipeline
from otlp_bridge.receive.admission import Admission
from otlp_bridge.receive.auth import TokenAuth

_SERVICES = {
    Signal.METRICS: "opentelemetry.proto.collector.metrics.v1.MetricsService",
    Signal.LOGS: "opentelemetry.proto.collector.logs.v1.LogsService",
    Signal.TRACES: "opentelemetry.proto.collector.trace.v1.TraceService",
}

Handler = Callable[[bytes, aio.ServicerContext], Coroutine[Any, Any, bytes]]


def _handler(pipeline: Pipeline, signal: Signal, auth: TokenAuth, admission: Admission) -> Handler:
    async def export(body: bytes, context: aio.ServicerContext) -> bytes:
        try:
            identity = auth.identify(dict(context.invocation_metadata() or ()).get("authorization"))
            with admission.slot(len(body)):
                # An empty message is a valid gRPC request (the SDK never sends one, but it is no error).
                response = await pipeline.handle("grpc", signal, body, allow_empty=True, identity=identity)
            return response.SerializeToString()
        except ExportError as exc:
            pipeline.refused("grpc", signal, exc)
            await context.abort(exc.answer.grpc_code, exc.message)
            raise  # abort raises; this keeps type checkers honest

    return export


def build_server(pipeline: Pipeline, *, max_message_bytes: int, auth: TokenAuth, admission: Admission,
                 credentials: grpc.ServerCredentials | None, address: str) -> tuple[aio.Server, int]:
    server = aio.server(options=[
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.so_reuseport", 0),
    ])
    for signal, service in _SERVICES.items():
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(service, {
            "Export": grpc.unary_unary_rpc_method_handler(_handler(pipeline, signal, auth, admission)),
        })])
    port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    return server, port
