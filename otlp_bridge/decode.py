"""Request bytes to OTLP protobuf messages: protobuf, OTLP/JSON, gzip, size limits.

Knows nothing of sockets; both receivers call it. Every failure is an
`ExportError` whose kind picks the status.
"""

from __future__ import annotations

import base64
import json
import re
import zlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
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

from otlp_bridge.config import LimitSettings
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
    document = _json_document(body)
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


# --- work bounds: how many items a body carries, known before the expensive decode ---------------
@dataclass(frozen=True)
class WorkLimits:
    max_points: int  # data points per metrics request
    max_log_records: int  # log records per logs request
    max_json_depth: int

    @classmethod
    def from_settings(cls, limits: LimitSettings) -> WorkLimits:
        return cls(limits.max_points_per_request, limits.max_log_records_per_request, limits.max_json_depth)

    def max_items(self, signal: Signal) -> int:
        # Spans are counted and dropped, never stored: the points limit bounds that work too.
        return self.max_log_records if signal is Signal.LOGS else self.max_points


def count_items(signal: Signal, message: Message) -> int:
    """Data points, log records or spans in a decoded request (cheap: lengths of repeated fields)."""
    if signal is Signal.METRICS:
        return sum(len(getattr(metric, kind).data_points)
                   for rm in message.resource_metrics for sm in rm.scope_metrics
                   for metric in sm.metrics if (kind := metric.WhichOneof("data")))
    if signal is Signal.LOGS:
        return sum(len(sl.log_records) for rl in message.resource_logs
                   for sl in rl.scope_logs)
    return sum(len(ss.spans) for rs in message.resource_spans for ss in rs.scope_spans)


def check_items(signal: Signal, count: int, limits: WorkLimits) -> None:
    """Refuse the whole request past the limit: nothing of it is applied, the sender is told why."""
    limit = limits.max_items(signal)
    if count > limit:
        noun = "log records" if signal is Signal.LOGS else "spans" if signal is Signal.TRACES else "data points"
        raise ExportError(ErrorKind.TOO_MANY_ITEMS,
                          f"{count} {noun} in one request, at most {limit}: send smaller batches")


def check_body(signal: Signal, body: bytes, *, as_json: bool, limits: WorkLimits) -> None:
    """Bound the work a body can cause before it is decoded: items per request, JSON nesting.

    Costs a fraction of the decode it guards, and nothing for a body too short to pass the limit."""
    if as_json:
        objects = _check_json_shape(body, limits.max_json_depth, limits.max_items(signal) * JSON_OBJECTS_PER_ITEM)
        if objects > limits.max_items(signal):  # every item is an object: fewer cannot pass the limit
            check_items(signal, count_json_items(signal, _json_document(body)), limits)
    elif len(body) > 2 * limits.max_items(signal):  # the smallest item is 2 bytes on the wire
        check_items(signal, count_wire_items(signal, body), limits)


def count_wire_items(signal: Signal, body: bytes) -> int:
    """Items in a protobuf body without decoding them: each stays an undecoded byte string."""
    try:
        if signal is Signal.METRICS:
            request = _SHALLOW_METRICS.FromString(body)
            return sum(len(getattr(metric, kind).items) for resource in request.resources
                       for scope in resource.scopes for metric in scope.metrics for kind in _POINT_KINDS)
        request = _SHALLOW_ITEMS.FromString(body)
        return sum(len(scope.items) for resource in request.resources for scope in resource.scopes)
    except DecodeError as exc:
        raise ExportError(ErrorKind.MALFORMED, f"cannot parse {signal.value} protobuf: {exc}") from None


def _shallow_types() -> tuple[type[Message], type[Message]]:
    """OTLP requests down to their items only (field numbers as in the OTLP protos), the items left
    as bytes. Resource/scope/metric/record details land in unknown fields, never decoded."""
    field = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="otlp_bridge/shallow.proto", package="otlp_bridge.shallow",
                                              syntax="proto3")

    def message(name: str, *fields: tuple[str, int, str | None], label: int = field.LABEL_REPEATED) -> None:
        """Fields with a message type name, or bytes (type None)."""
        described = file.message_type.add(name=name)
        for field_name, number, type_name in fields:
            if type_name is None:
                described.field.add(name=field_name, number=number, label=label, type=field.TYPE_BYTES)
            else:
                described.field.add(name=field_name, number=number, label=label, type=field.TYPE_MESSAGE,
                                    type_name=f".otlp_bridge.shallow.{type_name}")

    message("Points", ("items", 1, None))  # Gauge/Sum/Histogram/...: data_points = 1
    message("Metric", *((kind, number, "Points") for kind, number in _POINT_KINDS.items()),
            label=field.LABEL_OPTIONAL)  # the `data` oneof; which one is set does not matter here
    message("MetricScope", ("metrics", 2, "Metric"))  # ScopeMetrics.metrics = 2
    message("MetricResource", ("scopes", 2, "MetricScope"))  # ResourceMetrics.scope_metrics = 2
    message("MetricRequest", ("resources", 1, "MetricResource"))
    message("ItemScope", ("items", 2, None))  # ScopeLogs.log_records = 2, ScopeSpans.spans = 2
    message("ItemResource", ("scopes", 2, "ItemScope"))  # ResourceLogs.scope_logs = 2, ResourceSpans.scope_spans
    message("ItemRequest", ("resources", 1, "ItemResource"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    classes = message_factory.GetMessages([file], pool=pool)
    return classes["otlp_bridge.shallow.MetricRequest"], classes["otlp_bridge.shallow.ItemRequest"]


_POINT_KINDS = {"gauge": 5, "sum": 7, "histogram": 9, "exponential_histogram": 10, "summary": 11}
_SHALLOW_METRICS, _SHALLOW_ITEMS = _shallow_types()

# OTLP/JSON spends about 20-55 objects per item in Claude Code's requests (attributes are two
# objects each); the cap only has to stop bodies of bare `{}`s long before json.loads sees them.
JSON_OBJECTS_PER_ITEM = 64
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"{}[]")
_INNERMOST = re.compile(rb"\{\}|\[\]")


def _check_json_shape(body: bytes, max_depth: int, max_objects: int) -> int:
    """Objects and nesting depth of a JSON body, from its brackets outside strings (C-speed passes);
    returns how many objects it has."""
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    objects = brackets.count(b"{")
    if objects > max_objects:
        raise ExportError(ErrorKind.TOO_MANY_ITEMS,
                          f"{objects} JSON objects in one request, at most {max_objects}: send smaller batches")
    for _ in range(max_depth):  # each pass removes the innermost level
        if not brackets:
            return objects
        brackets = _INNERMOST.sub(b"", brackets)
    if brackets:
        raise ExportError(ErrorKind.MALFORMED, f"JSON nested deeper than {max_depth} levels (or unbalanced)")
    return objects


# OTLP/JSON field names as protobuf's JSON mapping accepts them (lowerCamelCase or the proto name).
_JSON_PATHS = {
    Signal.METRICS: (("resourceMetrics", "resource_metrics"), ("scopeMetrics", "scope_metrics"), ("metrics",)),
    Signal.LOGS: (("resourceLogs", "resource_logs"), ("scopeLogs", "scope_logs"), ("logRecords", "log_records")),
    Signal.TRACES: (("resourceSpans", "resource_spans"), ("scopeSpans", "scope_spans"), ("spans",)),
}
_JSON_POINT_KINDS = ("gauge", "sum", "histogram", "exponentialHistogram", "exponential_histogram", "summary")


def _json_list(node: Any, names: tuple[str, ...]) -> list[Any]:
    if isinstance(node, dict):
        for name in names:
            value = node.get(name)
            if isinstance(value, list):
                return value
    return []


def count_json_items(signal: Signal, document: Any) -> int:
    """Items in a parsed OTLP/JSON document, before protobuf's (slow) JSON parser builds them."""
    resources, scopes, items = _JSON_PATHS[signal]
    leaves = [leaf for resource in _json_list(document, resources) for scope in _json_list(resource, scopes)
              for leaf in _json_list(scope, items)]
    if signal is not Signal.METRICS:
        return len(leaves)
    return sum(len(_json_list(metric.get(kind), ("dataPoints", "data_points")))
               for metric in leaves if isinstance(metric, dict) for kind in _JSON_POINT_KINDS)


def _json_document(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ExportError(ErrorKind.MALFORMED, f"invalid JSON: {exc}") from None


def encode_response(message: Message, as_json: bool) -> bytes:
    """Serialize a response the way the request came (OTLP/HTTP answers in kind)."""
    if as_json:
        return json_format.MessageToJson(message, indent=None).encode()
    return message.SerializeToString()

