"""Bounded work in flight: past the limits a client is told to come back (503 / UNAVAILABLE),
which Claude Code's exporter retries, instead of the bridge queueing without end."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from otlp_bridge.errors import ErrorKind, ExportError


class Admission:
    def __init__(self, max_requests: int, max_bytes: int) -> None:
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        self.requests = 0
        self.bytes = 0

    @contextmanager
    def slot(self, nbytes: int) -> Iterator[None]:
        if self.requests >= self.max_requests or (self.bytes and self.bytes + nbytes > self.max_bytes):
            raise ExportError(ErrorKind.OVERLOADED,
                              f"busy: {self.requests} requests, {self.bytes} bytes in flight; retry later")
        self.requests += 1
        self.bytes += nbytes
        try:
            yield
        finally:
            self.requests -= 1
            self.bytes -= nbytes
