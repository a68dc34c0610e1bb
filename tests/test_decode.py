from __future__ import annotations

import gzip
import json

import pytest

from otlp_bridge.decode import Signal, decode_json, decode_protobuf, gunzip
from otlp_bridge.errors import ErrorKind, ExportError
from tests.support import CLAUDE

T27 = CLAUDE / "t27_traces_beta_json"


def test_otlp_json_hex_trace_ids_decode_to_their_bytes() -> None:
    raw = json.loads((T27 / "0132_http_logs.json").read_bytes())
    record = raw["resourceLogs"][0]["scopeLogs"][0]["logRecords"][-1]
    message = decode_json(Signal.LOGS, (T27 / "0132_http_logs.json").read_bytes())
    decoded = message.resource_logs[0].scope_logs[0].log_records[-1]  # type: ignore[attr-defined]
    assert decoded.trace_id.hex() == record["traceId"]
    assert decoded.span_id.hex() == record["spanId"]
    assert len(decoded.trace_id) == 16


def test_otlp_json_traces_with_parent_span_ids() -> None:
    raw = json.loads((T27 / "0131_http_traces.json").read_bytes())
    message = decode_json(Signal.TRACES, (T27 / "0131_http_traces.json").read_bytes())
    span = message.resource_spans[0].scope_spans[0].spans[0]  # type: ignore[attr-defined]
    raw_span = raw["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert span.trace_id.hex() == raw_span["traceId"]
    assert span.span_id.hex() == raw_span["spanId"]


def test_otlp_json_unknown_fields_and_numeric_enums_are_accepted() -> None:
    body = {"resourceMetrics": [{"futureField": 1, "scopeMetrics": [{"metrics": [{
        "name": "x", "sum": {"aggregationTemporality": 1, "isMonotonic": True,
                             "dataPoints": [{"asDouble": 1.5, "timeUnixNano": "17"}]}}]}]}]}
    message = decode_json(Signal.METRICS, json.dumps(body).encode())
    point = message.resource_metrics[0].scope_metrics[0].metrics[0].sum.data_points[0]  # type: ignore[attr-defined]
    assert point.time_unix_nano == 17
    assert point.as_double == 1.5


def test_json_and_protobuf_of_one_run_decode_alike() -> None:
    from_json = decode_json(Signal.METRICS, (CLAUDE / "t5_http_json" / "0010_http_metrics.json").read_bytes())
    again = decode_protobuf(Signal.METRICS, from_json.SerializeToString())
    assert again == from_json


def test_gzip_bomb_is_refused_without_inflating_it() -> None:
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024))
    with pytest.raises(ExportError) as info:
        gunzip(bomb, max_size=1024 * 1024)
    assert info.value.kind is ErrorKind.TOO_LARGE


def test_gzip_exactly_at_the_limit_is_fine() -> None:
    assert gunzip(gzip.compress(b"a" * 100), max_size=100) == b"a" * 100


@pytest.mark.parametrize(("body", "kind"), [
    (gzip.compress(b"hello")[:-5], ErrorKind.BAD_ENCODING),
    (b"not gzip at all", ErrorKind.BAD_ENCODING),
])
def test_bad_gzip(body: bytes, kind: ErrorKind) -> None:
    with pytest.raises(ExportError) as info:
        gunzip(body, max_size=1000)
    assert info.value.kind is kind


def test_empty_protobuf_only_where_allowed() -> None:
    with pytest.raises(ExportError):
        decode_protobuf(Signal.METRICS, b"")
    assert decode_protobuf(Signal.METRICS, b"", allow_empty=True).ByteSize() == 0
