"""One table from what went wrong to what each transport answers.

Both receivers raise `ExportError`; each looks its answer up here, so gRPC and
HTTP can never disagree about whether a client should retry.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import grpc


class ErrorKind(enum.Enum):
    MALFORMED = "malformed"
    EMPTY = "empty"
    BAD_ENCODING = "bad_encoding"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    TOO_LARGE = "too_large"
    TOO_MANY_ITEMS = "too_many_items"
    TIMEOUT = "timeout"
    UNAUTHENTICATED = "unauthenticated"
    OVERLOADED = "overloaded"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class Answer:
    grpc_code: grpc.StatusCode
    http_status: int
    retryable: bool


ANSWERS: dict[ErrorKind, Answer] = {
    #                                    gRPC status                          HTTP  retryable
    ErrorKind.MALFORMED: Answer(grpc.StatusCode.INVALID_ARGUMENT, 400, False),
    ErrorKind.EMPTY: Answer(grpc.StatusCode.INVALID_ARGUMENT, 400, False),
    ErrorKind.BAD_ENCODING: Answer(grpc.StatusCode.INVALID_ARGUMENT, 400, False),
    ErrorKind.UNSUPPORTED_MEDIA_TYPE: Answer(grpc.StatusCode.INVALID_ARGUMENT, 415, False),
    ErrorKind.TOO_LARGE: Answer(grpc.StatusCode.RESOURCE_EXHAUSTED, 413, False),
    # More points/records than one request may carry: the whole request is refused (never cut),
    # with a status no OTLP exporter retries, so the sender sees it instead of looping.
    ErrorKind.TOO_MANY_ITEMS: Answer(grpc.StatusCode.INVALID_ARGUMENT, 413, False),
    # A body that did not arrive within the read timeout: a slow network, not bad data, so both
    # transports tell the client to retry (OTLP/HTTP exporters do not retry 408; gRPC ones do retry
    # DEADLINE_EXCEEDED), and the connection is closed.
    ErrorKind.TIMEOUT: Answer(grpc.StatusCode.DEADLINE_EXCEEDED, 503, True),
    ErrorKind.UNAUTHENTICATED: Answer(grpc.StatusCode.UNAUTHENTICATED, 401, False),
    # Retryable ones carry Retry-After on HTTP; Claude Code retries 429/503 and UNAVAILABLE.
    ErrorKind.OVERLOADED: Answer(grpc.StatusCode.UNAVAILABLE, 503, True),
    ErrorKind.UNAVAILABLE: Answer(grpc.StatusCode.UNAVAILABLE, 503, True),
}


class ExportError(Exception):
    """A request the bridge refuses; `kind` decides the status on each transport."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.answer = ANSWERS[kind]
        self.counted = False  # set once logged and counted, so no layer does it twice

    @property
    def outcome(self) -> str:
        """The `outcome` label of the request self-metric."""
        return self.kind.value
