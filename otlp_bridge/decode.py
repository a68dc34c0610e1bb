"""Request bytes to OTLP protobuf messages: protobuf, OTLP/JSON, gzip, size limits.

Knows nothing of sockets; both receivers call it. Every failure is an
`ExportError` whose kind picks the status.
"""

from __future__ import annotations

import base64
import json
import zlib
from enum import StrEnum
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from otlp_bridge.errors import ErrorKind, ExportError


class Signal(StrEnum):
    METRICS = "metrics"
    LOGS = "logs"
    TRACES = "traces"

    @property
    def request_type(self) -> type[Message]:
        return _REQUEST_TYPES[self]

    @property
    def response_type(self) -> type[Message]:
        return _RESPONSE_TYPES[self]


_REQUEST_TYPES: dict[Signal, type[Message]] = {
    Signal.METRICS: ExportMetricsServiceRequest,
    Signal.LOGS: ExportLogsServiceRequest,
    Signal.TRACES: ExportTraceServiceRequest,
}
_RESPONSE_TYPES: dict[Signal, type[Message]] = {
    Signal.METRICS: ExportMetricsServiceResponse,
    Signal.LOGS: ExportLogsServiceResponse,
    Signal.TRACES: ExportTraceServiceResponse,
}

# OTLP/JSON writes these bytes fields as hex, where protobuf's JSON mapping expects base64.
_HEX_ID_FIELDS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})


def gunzip(body: bytes, max_size: int) -> bytes:
    """Decompress a gzip body, refusing one that would grow past `max_size` (gzip bombs)."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, max_size + 1)
    except zlib.error as exc:
        raise ExportError(ErrorKind.BAD_ENCODING, f"invalid gzip body: {exc}") from None
    if len(out) > max_size or inflater.unconsumed_tail:
        raise ExportError(ErrorKind.TOO_LARGE, f"decompressed body exceeds {max_size} bytes")
    if not inflater.eof:
        raise ExportError(ErrorKind.BAD_ENCODING, "truncated gzip body")
    return out


def decode_protobuf(signal: Signal, body: bytes, *, allow_empty: bool = False) -> Message:
    """Parse a binary protobuf export request (an empty body only where `allow_empty`)."""
    if not body and not allow_empty:
        raise ExportError(ErrorKind.EMPTY, "empty request body")
    message = signal.request_type()
    try:
        message.ParseFromString(body)
    except DecodeError as exc:
        raise ExportError(ErrorKind.MALFORMED, f"cannot parse {signal.value} protobuf: {exc}") from None
    return message


def decode_json(signal: Signal, body: bytes) -> Message:
    """Parse an OTLP/JSON export request (protobuf's JSON mapping plus hex ids)."""
    if not body:
        raise ExportError(ErrorKind.EMPTY, "empty request body")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ExportError(ErrorKind.MALFORMED, f"invalid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ExportError(ErrorKind.MALFORMED, "OTLP/JSON body must be an object")
    message = signal.request_type()
    try:
        json_format.ParseDict(_hex_ids_to_base64(document), message, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise ExportError(ErrorKind.MALFORMED, f"invalid OTLP/JSON {signal.value}: {exc}") from None
    return message


def _hex_ids_to_base64(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: _hex_to_base64(value) if key in _HEX_ID_FIELDS and isinstance(value, str)
            else _hex_ids_to_base64(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_hex_ids_to_base64(item) for item in node]
    return node


def _hex_to_base64(value: str) -> str:
    try:
        return base64.b64encode(bytes.fromhex(value)).decode("ascii")
    except ValueError:
        raise ExportError(ErrorKind.MALFORMED, f"trace/span id is not hex: {value[:40]!r}") from None


def encode_response(message: Message, as_json: bool) -> bytes:
    """Serialize a response the way the request came (OTLP/HTTP answers in kind)."""
    if as_json:
        return json_format.MessageToJson(message, indent=None).encode()
    return message.SerializeToString()

