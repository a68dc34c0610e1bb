"""Bounded work in flight: past the limits a client is told to come back (503 / UNAVAILABLE),
which Claude Code's exporter retries, instead of the bridge queueing without end.

Bytes are reserved as they really arrive (and as they are inflated), never as a client
declares them: a `Content-Length` that is never sent costs nothing but its request slot.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from otlp_bridge.errors import ErrorKind, ExportError


class Reservation:
    """The bytes one request holds; all of them go back when its slot closes."""

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        self.bytes = 0

    def take(self, nbytes: int) -> None:
        """Reserve `nbytes` more, or refuse the request if the total in flight would pass the limit.

        A request alone may use the whole budget: only others' bytes can make it wait."""
        admission = self._admission
        others = admission.bytes - self.bytes
        if others and admission.bytes + nbytes > admission.max_bytes:
            raise ExportError(ErrorKind.OVERLOADED,
                              f"busy: {admission.requests} requests, {admission.bytes} bytes in flight; retry later")
        admission.bytes += nbytes
        self.bytes += nbytes


class Admission:
    """Two budgets: bytes held by bodies in memory (reserved as they arrive), and requests being
    processed (decode, translate, commit). A body still arriving holds bytes, never a request
    slot, so slow senders cannot starve the processing of others."""

    def __init__(self, max_requests: int, max_bytes: int) -> None:
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        self.requests = 0
        self.bytes = 0

    @property
    def saturated(self) -> bool:
        """Every request slot or every byte is taken (what /readyz reports as overloaded)."""
        return self.requests >= self.max_requests or self.bytes >= self.max_bytes

    @contextmanager
    def reservation(self) -> Iterator[Reservation]:
        """Bytes for one request's body, all released when it is done."""
        reservation = Reservation(self)
        try:
            yield reservation
        finally:
            self.bytes -= reservation.bytes

    @contextmanager
    def slot(self) -> Iterator[None]:
        """One request being processed, or 503/UNAVAILABLE when all are taken."""
        if self.requests >= self.max_requests:
            raise ExportError(ErrorKind.OVERLOADED,
                              f"busy: {self.requests} requests, {self.bytes} bytes in flight; retry later")
        self.requests += 1
        try:
            yield
        finally:
            self.requests -= 1
