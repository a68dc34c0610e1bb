"""OTLP/HTTP receiver: `POST …/v1/{metrics,logs,traces}` under any path prefix.

HTTP-only concerns live here: method, content type, content encoding, reading the
body within its size and time limits, and the status/`Status` body of a refusal.
Everything else is the shared pipeline's.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass

from aiohttp import web
from google.protobuf.message import Message
from google.rpc.status_pb2 import Status

from otlp_bridge.config import LimitSettings
from otlp_bridge.decode import Signal, WorkLimits, encode_response, gunzip
from otlp_bridge.errors import ErrorKind, ExportError
from otlp_bridge.pipeline import Pipeline
from otlp_bridge.receive.admission import Admission, Reservation
from otlp_bridge.receive.auth import TokenAuth
from otlp_bridge.receive.connections import ConnectionGate, GatedSite
from otlp_bridge.receive.work import check_work
from otlp_bridge.self_metrics import SelfMetrics

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_SIGNAL_SUFFIXES = {f"/v1/{signal.value}": signal for signal in Signal}
_INFLATE_OFF_LOOP_BYTES = 4096


def _signal_of(path: str) -> Signal | None:
    for suffix, signal in _SIGNAL_SUFFIXES.items():
        if path.endswith(suffix):
            return signal
    return None


def _reply(message: Message, as_json: bool, status: int = 200) -> web.Response:
    return web.Response(body=encode_response(message, as_json), status=status,
                        content_type=JSON if as_json else PROTOBUF)


@dataclass(frozen=True)
class BodyLimits:
    max_request_bytes: int
    max_decompressed_bytes: int
    read_timeout: float  # whole body, first byte to last
    idle_timeout: float  # between two chunks
    retry_after: int
    work: WorkLimits

    @classmethod
    def from_settings(cls, limits: LimitSettings) -> BodyLimits:
        return cls(limits.max_request_bytes, limits.max_decompressed_bytes, limits.read_timeout.total_seconds(),
                   limits.body_idle_timeout.total_seconds(), limits.retry_after_seconds,
                   WorkLimits.from_settings(limits))


class OtlpHttpHandler:
    def __init__(self, pipeline: Pipeline, *, limits: BodyLimits, auth: TokenAuth, admission: Admission) -> None:
        self.pipeline = pipeline
        self.limits = limits
        self.auth = auth
        self.admission = admission

    async def handle(self, request: web.Request) -> web.StreamResponse:
        signal = _signal_of(request.path)
        if signal is None:
            raise web.HTTPNotFound(text="OTLP/HTTP paths end in /v1/metrics, /v1/logs or /v1/traces\n")
        if request.method != "POST":
            raise web.HTTPMethodNotAllowed(request.method, ["POST"], text="OTLP/HTTP takes POST only\n")
        as_json = request.content_type == JSON
        try:
            identity = self.auth.identify(request.headers.get("Authorization"))
            with self.admission.reservation() as reservation:
                body = await self._body(request, reservation)
                with self.admission.slot():
                    await check_work(signal, body, as_json=as_json, limits=self.limits.work)
                    response = await self.pipeline.handle("http", signal, body, as_json=as_json, identity=identity)
            return _reply(response, as_json)
        except ExportError as exc:
            self.pipeline.refused("http", signal, exc)
            reply = _reply(Status(code=exc.answer.grpc_code.value[0], message=exc.message), as_json,
                           exc.answer.http_status)
            if exc.answer.retryable:
                reply.headers["Retry-After"] = str(self.limits.retry_after)
            if exc.kind is ErrorKind.UNAUTHENTICATED:
                reply.headers["WWW-Authenticate"] = 'Bearer realm="otlp"'
            if exc.kind is ErrorKind.TIMEOUT:
                reply.force_close()  # the rest of a body this slow is not worth waiting for
            return reply

    async def _body(self, request: web.Request, reservation: Reservation) -> bytes:
        if request.content_type not in (PROTOBUF, JSON):
            raise ExportError(ErrorKind.UNSUPPORTED_MEDIA_TYPE,
                              f"unsupported content type {request.content_type!r}: use {PROTOBUF} or {JSON}")
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("gzip", "identity", ""):
            raise ExportError(ErrorKind.BAD_ENCODING, f"unsupported content encoding {encoding!r}")
        body = await self._read_limited(request, reservation)
        if encoding != "gzip":
            return body
        # Deflate's ratio is at most ~1032:1, so only a body past a few KiB can take long to inflate.
        if len(body) > _INFLATE_OFF_LOOP_BYTES:
            inflated = await asyncio.to_thread(gunzip, body, self.limits.max_decompressed_bytes)
        else:
            inflated = gunzip(body, self.limits.max_decompressed_bytes)
        reservation.take(len(inflated))
        return inflated

    async def _read_limited(self, request: web.Request, reservation: Reservation) -> bytes:
        """The body as it arrives (Content-Length or chunked), each chunk reserved when it is in
        memory; stops past the size limit, the total read timeout or the idle timeout."""
        limits = self.limits
        if request.content_length is not None and request.content_length > limits.max_request_bytes:
            raise ExportError(ErrorKind.TOO_LARGE, f"body exceeds {limits.max_request_bytes} bytes")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limits.read_timeout
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout_at(min(deadline, loop.time() + limits.idle_timeout)) as timer:
                while chunk := await request.content.readany():
                    size += len(chunk)
                    if size > limits.max_request_bytes:
                        raise ExportError(ErrorKind.TOO_LARGE, f"body exceeds {limits.max_request_bytes} bytes")
                    reservation.take(len(chunk))
                    chunks.append(chunk)
                    timer.reschedule(min(deadline, loop.time() + limits.idle_timeout))
        except TimeoutError:
            which = (f"within {limits.read_timeout:g}s" if loop.time() >= deadline
                     else f"for {limits.idle_timeout:g}s between chunks")
            raise ExportError(ErrorKind.TIMEOUT,
                              f"request body incomplete: {size} bytes, then nothing {which}") from None
        return b"".join(chunks)


def build_app(handler: OtlpHttpHandler) -> web.Application:
    # Our own limit applies (streamed, per content encoding); aiohttp's would answer 413 without counting it.
    app = web.Application(client_max_size=handler.limits.max_request_bytes + 1)
    app.router.add_route("*", "/{path:.*}", handler.handle)
    return app


async def start(handler: OtlpHttpHandler, *, host: str, port: int, ssl_context: ssl.SSLContext | None,
                grace: float, limits: LimitSettings, stats: SelfMetrics,
                grpc_hint: str) -> tuple[web.AppRunner, int]:
    """Listen on the OTLP/HTTP port with open connections bounded and idle ones closed."""
    # aiohttp would inflate gzip bodies itself, without a size limit; decode.gunzip does it bounded.
    runner = web.AppRunner(build_app(handler), access_log=None, handle_signals=False, auto_decompress=False,
                           shutdown_timeout=grace, keepalive_timeout=limits.connection_idle_timeout.total_seconds())
    await runner.setup()
    site = GatedSite(runner, host, port, ConnectionGate(limits.max_connections, stats, "http", grpc_hint),
                     ssl_context=ssl_context)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    return runner, site.port
