"""One table from what went wrong to what each transport answers.

Both receivers raise `ExportError`; each looks its answer up here, so gRPC and
HTTP can never disagree about whether a client should retry.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import grpc


@dataclass(frozen=True)
class Answer:
    grpc_code: grpc.StatusCode
    http_status: int
    retryable: bool


class ErrorKind(enum.Enum):
    #                        gRPC status                          HTTP  retryable
    MALFORMED = Answer(grpc.StatusCode.INVALID_ARGUMENT, 400, False)
    EMPTY = Answer(grpc.StatusCode.INVALID_ARGUMENT, 400, False)
    BAD_ENCODING = Answer(grpc.StatusCode.INVALID_ARGUMENT, 400, False)
    UNSUPPORTED_MEDIA_TYPE = Answer(grpc.StatusCode.INVALID_ARGUMENT, 415, False)
    TOO_LARGE = Answer(grpc.StatusCode.RESOURCE_EXHAUSTED, 413, False)
    UNAVAILABLE = Answer(grpc.StatusCode.UNAVAILABLE, 503, True)


class ExportError(Exception):
    """A request the bridge refuses; `kind` decides the status on each transport."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    @property
    def outcome(self) -> str:
        """The `outcome` label of the request self-metric."""
        return self.kind.name.lower()
