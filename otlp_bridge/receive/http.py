"""OTLP/HTTP receiver: `POST …/v1/{metrics,logs,traces}` under any path prefix.

HTTP-only concerns live here: method, content type, content encoding and the
status/`Status` body of a refusal. Everything else is the shared pipeline's.
"""

from __future__ import annotations

from aiohttp import web
from google.protobuf.message import Message
from google.rpc.status_pb2 import Status

from otlp_bridge.decode import Signal, encode_response, gunzip
from otlp_bridge.errors import ErrorKind, ExportError
from otlp_bridge.pipeline import Pipeline
from otlp_bridge.receive.admission import Admission
from otlp_bridge.receive.auth import TokenAuth

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_SIGNAL_SUFFIXES = {f"/v1/{signal.value}": signal for signal in Signal}


def _signal_of(path: str) -> Signal | None:
    for suffix, signal in _SIGNAL_SUFFIXES.items():
        if path.endswith(suffix):
            return signal
    return None


def _reply(message: Message, as_json: bool, status: int = 200) -> web.Response:
    return web.Response(body=encode_response(message, as_json), status=status,
                        content_type=JSON if as_json else PROTOBUF)


class OtlpHttpHandler:
    def __init__(self, pipeline: Pipeline, *, max_request_bytes: int, max_decompressed_bytes: int,
                 auth: TokenAuth, admission: Admission, retry_after: int) -> None:
        self.pipeline = pipeline
        self.max_request_bytes = max_request_bytes
        self.max_decompressed_bytes = max_decompressed_bytes
        self.auth = auth
        self.admission = admission
        self.retry_after = retry_after

    async def handle(self, request: web.Request) -> web.StreamResponse:
        signal = _signal_of(request.path)
        if signal is None:
            raise web.HTTPNotFound(text="OTLP/HTTP paths end in /v1/metrics, /v1/logs or /v1/traces\n")
        if request.method != "POST":
            raise web.HTTPMethodNotAllowed(request.method, ["POST"], text="OTLP/HTTP takes POST only\n")
        as_json = request.content_type == JSON
        try:
            identity = self.auth.identify(request.headers.get("Authorization"))
            with self.admission.slot(request.content_length or 0):
                body = await self._body(request)
                response = await self.pipeline.handle("http", signal, body, as_json=as_json, identity=identity)
            return _reply(response, as_json)
        except ExportError as exc:
            self.pipeline.refused("http", signal, exc)
            reply = _reply(Status(code=exc.answer.grpc_code.value[0], message=exc.message), as_json,
                           exc.answer.http_status)
            if exc.answer.retryable:
                reply.headers["Retry-After"] = str(self.retry_after)
            if exc.kind is ErrorKind.UNAUTHENTICATED:
                reply.headers["WWW-Authenticate"] = 'Bearer realm="otlp"'
            return reply

    async def _body(self, request: web.Request) -> bytes:
        if request.content_type not in (PROTOBUF, JSON):
            raise ExportError(ErrorKind.UNSUPPORTED_MEDIA_TYPE,
                              f"unsupported content type {request.content_type!r}: use {PROTOBUF} or {JSON}")
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("gzip", "identity", ""):
            raise ExportError(ErrorKind.BAD_ENCODING, f"unsupported content encoding {encoding!r}")
        body = await self._read_limited(request)
        return gunzip(body, self.max_decompressed_bytes) if encoding == "gzip" else body

    async def _read_limited(self, request: web.Request) -> bytes:
        # Works for Content-Length and chunked bodies alike; stops reading past the limit.
        too_large = ExportError(ErrorKind.TOO_LARGE, f"body exceeds {self.max_request_bytes} bytes")
        if request.content_length is not None and request.content_length > self.max_request_bytes:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_any():
            size += len(chunk)
            if size > self.max_request_bytes:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)


def build_app(handler: OtlpHttpHandler) -> web.Application:
    # Our own limit applies (streamed, per content encoding); aiohttp's would answer 413 without counting it.
    app = web.Application(client_max_size=handler.max_request_bytes + 1)
    app.router.add_route("*", "/{path:.*}", handler.handle)
    return app
