"""OTLP/gRPC receiver: the three `Export` services over grpc.aio.

Requests are taken as raw bytes so a malformed body is our INVALID_ARGUMENT
with a reason, not the framework's INTERNAL. grpc itself handles `gzip`.

Each `Export` is registered as a client-streaming method although it is unary on
the wire: grpc then calls us as soon as the headers arrive, before it buffers the
message, so the bearer token is checked first and a message that does not arrive
within the read timeout is dropped (and its buffer freed) instead of held forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import grpc
from grpc import aio

from otlp_bridge.config import LimitSettings
from otlp_bridge.decode import Signal, WorkLimits
from otlp_bridge.errors import ErrorKind, ExportError
from otlp_bridge.pipeline import Pipeline
from otlp_bridge.receive.admission import Admission
from otlp_bridge.receive.auth import TokenAuth
from otlp_bridge.receive.work import check_work

_SERVICES = {
    Signal.METRICS: "opentelemetry.proto.collector.metrics.v1.MetricsService",
    Signal.LOGS: "opentelemetry.proto.collector.logs.v1.LogsService",
    Signal.TRACES: "opentelemetry.proto.collector.trace.v1.TraceService",
}

Handler = Callable[[Any, aio.ServicerContext], Coroutine[Any, Any, bytes]]


@dataclass(frozen=True)
class GrpcLimits:
    """What bounds memory on the gRPC port: one message, streams per connection, RPCs in total."""

    max_message_bytes: int
    max_concurrent_streams: int
    max_concurrent_rpcs: int
    read_timeout: float
    connection_idle: float
    work: WorkLimits

    @classmethod
    def from_settings(cls, limits: LimitSettings) -> GrpcLimits:
        # grpc buffers a message before we see it, so its own bounds are what cap memory there:
        # RPCs in flight x largest message stays within the same budget as HTTP bytes in flight.
        rpcs = limits.grpc_max_concurrent_rpcs
        return cls(
            max_message_bytes=min(limits.max_request_bytes, max(1, limits.max_inflight_bytes // rpcs)),
            max_concurrent_streams=limits.grpc_max_concurrent_streams,
            max_concurrent_rpcs=rpcs,
            read_timeout=limits.read_timeout.total_seconds(),
            connection_idle=limits.connection_idle_timeout.total_seconds(),
            work=WorkLimits.from_settings(limits),
        )

    def options(self) -> list[tuple[str, int]]:
        idle_ms = int(self.connection_idle * 1000)
        return [
            ("grpc.max_receive_message_length", self.max_message_bytes),  # wire and inflated size alike
            ("grpc.max_concurrent_streams", self.max_concurrent_streams),
            ("grpc.max_connection_idle_ms", idle_ms),  # a connection with no RPC is closed after this
            ("grpc.keepalive_time_ms", idle_ms),  # and a silent peer is probed, then dropped
            ("grpc.keepalive_timeout_ms", int(self.read_timeout * 1000)),
            ("grpc.so_reuseport", 0),
        ]


def _handler(pipeline: Pipeline, signal: Signal, auth: TokenAuth, admission: Admission, limits: GrpcLimits) -> Handler:
    async def export(_requests: Any, context: aio.ServicerContext) -> bytes:
        try:
            # Before a byte of the message is read: a client without a valid token costs nothing.
            identity = auth.identify(dict(context.invocation_metadata() or ()).get("authorization"))
            with admission.reservation() as reservation:
                body = await _read_one(context, limits.read_timeout)
                reservation.take(len(body))
                with admission.slot():
                    await check_work(signal, body, as_json=False, limits=limits.work)
                    # An empty message is a valid gRPC request (the SDK never sends one, but it is no error).
                    response = await pipeline.handle("grpc", signal, body, allow_empty=True, identity=identity)
            return response.SerializeToString()
        except ExportError as exc:
            pipeline.refused("grpc", signal, exc)
            await context.abort(exc.answer.grpc_code, exc.message)
            raise  # abort raises; this keeps type checkers honest

    return export


async def _read_one(context: aio.ServicerContext, read_timeout: float) -> bytes:
    try:
        async with asyncio.timeout(read_timeout):
            message = await context.read()
    except TimeoutError:
        raise ExportError(ErrorKind.TIMEOUT, f"request message not received within {read_timeout:g}s") from None
    return b"" if message is aio.EOF else bytes(message)


def build_server(pipeline: Pipeline, *, limits: GrpcLimits, auth: TokenAuth, admission: Admission,
                 credentials: grpc.ServerCredentials | None, address: str) -> tuple[aio.Server, int]:
    server = aio.server(options=limits.options(), maximum_concurrent_rpcs=limits.max_concurrent_rpcs)
    for signal, service in _SERVICES.items():
        handler = _handler(pipeline, signal, auth, admission, limits)
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(service, {
            "Export": grpc.stream_unary_rpc_method_handler(handler),
        })])
    port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    return server, port
