"""The error table: gRPC and HTTP never disagree about whether a client should retry.

What OTLP clients retry (the OTLP specification, "Failures" for gRPC and OTLP/HTTP): gRPC
UNAVAILABLE, CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, DATA_LOSS (RESOURCE_EXHAUSTED only
with RetryInfo); HTTP 429, 502, 503 and 504. Everything else is dropped by the client.
"""

from __future__ import annotations

import grpc
import pytest

from otlp_bridge.errors import ANSWERS, ErrorKind, ExportError

GRPC_RETRIED = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.StatusCode.ABORTED, grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.DATA_LOSS}
HTTP_RETRIED = {429, 502, 503, 504}


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_every_kind_has_one_answer_that_both_transports_agree_on(kind: ErrorKind) -> None:
    answer = ANSWERS[kind]
    assert (answer.grpc_code in GRPC_RETRIED) == answer.retryable == (answer.http_status in HTTP_RETRIED), kind
    assert 400 <= answer.http_status < 600
    error = ExportError(kind, "why")
    assert (error.answer, error.outcome) == (answer, kind.value)
