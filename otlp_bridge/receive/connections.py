"""Connections on the OTLP/HTTP port: a bound on how many are open, and a clear answer to
HTTP/2 (a gRPC exporter pointed at the HTTP port) instead of a parser traceback.

The gate sits between the listening socket and aiohttp: each accepted connection either
gets aiohttp's protocol, wrapped so its close is counted, or a short refusal.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiohttp import web

from otlp_bridge.self_metrics import SelfMetrics

log = logging.getLogger(__name__)

HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def http2_refusal(reason: str) -> bytes:
    """An HTTP/1.1 505: a gRPC client then fails at once with "Trying to connect an http1.x server
    (HTTP status 505)" instead of retrying a connection that speaks HTTP/2 but will never serve it."""
    body = reason.encode() + b"\n"
    return (b"HTTP/1.1 505 HTTP Version Not Supported\r\nConnection: close\r\nContent-Type: text/plain\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body))


class _Throttled:
    """One log line per reason per interval under a flood, with how many it stands for."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}
        self._pending: dict[str, int] = {}

    def warning(self, reason: str, message: str, *args: object) -> None:
        now = time.monotonic()
        self._pending[reason] = self._pending.get(reason, 0) + 1
        if now - self._last.get(reason, -self.interval) >= self.interval:
            count = self._pending.pop(reason)
            self._last[reason] = now
            log.warning(message + " (%d such in the last %gs)", *args, count, self.interval)


class ConnectionGate:
    """Counts open connections on one port and refuses past `limit`."""

    def __init__(self, limit: int, stats: SelfMetrics, transport: str, grpc_port_hint: str) -> None:
        self.limit = limit
        self.stats = stats
        self.transport = transport
        self.grpc_port_hint = grpc_port_hint
        self.open = 0
        self.log = _Throttled()

    def factory(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        def make() -> asyncio.Protocol:
            if self.open >= self.limit:
                self.refused("connection_limit", "refused a connection: %d open, the limit", self.open)
                return _Refuse()
            self.open += 1
            return _Gated(inner(), self)

        return make

    def refused(self, reason: str, message: str, *args: object) -> None:
        self.stats.connection_refused(self.transport, reason)
        self.log.warning(reason, message, *args)


class _Refuse(asyncio.Protocol):
    """A 503 without reading the request; the client retries with another connection later."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        body = b"too many connections; retry later\n"
        transport.write(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n"
                        b"Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        transport.close()


class _Gated(asyncio.Protocol):
    """aiohttp's protocol, with its close counted and the first bytes checked for HTTP/2."""

    def __init__(self, inner: asyncio.Protocol, gate: ConnectionGate) -> None:
        self.inner = inner
        self.gate = gate
        self.transport: asyncio.Transport | None = None
        self.head = b""  # the first bytes, until they are known not to be an HTTP/2 preface
        self.sniffing = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.sniffing:
            self.head += data
            if HTTP2_PREFACE.startswith(self.head[:len(HTTP2_PREFACE)]):
                if len(self.head) < len(HTTP2_PREFACE):
                    return  # could still be the preface: wait for more
                self._refuse_http2()
                return
            self.sniffing = False
            data, self.head = self.head, b""
        self.inner.data_received(data)

    def _refuse_http2(self) -> None:
        self.sniffing = False
        self.gate.refused("http2_on_http_port",
                          "refused HTTP/2 (gRPC?) on the OTLP/HTTP port: send gRPC to %s", self.gate.grpc_port_hint)
        assert self.transport is not None
        self.transport.write(http2_refusal(
            f"this is the OTLP/HTTP (HTTP/1.1) port; send OTLP/gRPC to {self.gate.grpc_port_hint}"))
        self.transport.close()

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.gate.open -= 1
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class GatedSite(web.BaseSite):
    """aiohttp's TCPSite, with every accepted connection passing the gate."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, gate: ConnectionGate, **kwargs: object) -> None:
        super().__init__(runner, **kwargs)  # type: ignore[arg-type]
        self._host = host
        self._port = port
        self._gate = gate
        self.port = port  # the bound one once started (port 0 asks the OS to choose)

    @property
    def name(self) -> str:
        return f"{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        listening = await asyncio.get_running_loop().create_server(
            self._gate.factory(server), self._host, self._port, ssl=self._ssl_context, backlog=self._backlog)
        self._server = listening
        self.port = int(listening.sockets[0].getsockname()[1])
