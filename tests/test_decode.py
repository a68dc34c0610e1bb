from __future__ import annotations

import gzip
import json

import pytest

from otlp_bridge.decode import (
    Signal,
    WorkLimits,
    check_body,
    count_items,
    count_json_items,
    count_wire_items,
    decode_json,
    decode_protobuf,
    gunzip,
)
from otlp_bridge.errors import ErrorKind, ExportError
from tests.support import CLAUDE

T27 = CLAUDE / "t27_traces_beta_json"


def test_otlp_json_hex_trace_ids_decode_to_their_bytes() -> None:
    raw = json.loads((T27 / "0132_http_logs.json").read_bytes())
    record = raw["resourceLogs"][0]["scopeLogs"][0]["logRecords"][-1]
    message = decode_json(Signal.LOGS, (T27 / "0132_http_logs.json").read_bytes())
    decoded = message.resource_logs[0].scope_logs[0].log_records[-1]
    assert decoded.trace_id.hex() == record["traceId"]
    assert decoded.span_id.hex() == record["spanId"]
    assert len(decoded.trace_id) == 16


def test_otlp_json_traces_with_parent_span_ids() -> None:
    raw = json.loads((T27 / "0131_http_traces.json").read_bytes())
    message = decode_json(Signal.TRACES, (T27 / "0131_http_traces.json").read_bytes())
    span = message.resource_spans[0].scope_spans[0].spans[0]
    raw_span = raw["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert span.trace_id.hex() == raw_span["traceId"]
    assert span.span_id.hex() == raw_span["spanId"]


def test_otlp_json_unknown_fields_and_numeric_enums_are_accepted() -> None:
    body = {"resourceMetrics": [{"futureField": 1, "scopeMetrics": [{"metrics": [{
        "name": "x", "sum": {"aggregationTemporality": 1, "isMonotonic": True,
                             "dataPoints": [{"asDouble": 1.5, "timeUnixNano": "17"}]}}]}]}]}
    message = decode_json(Signal.METRICS, json.dumps(body).encode())
    point = message.resource_metrics[0].scope_metrics[0].metrics[0].sum.data_points[0]
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


# --- work bounds -----------------------------------------------------------------------------------
LIMITS = WorkLimits(max_points=10, max_log_records=10, max_json_depth=32)
T7 = CLAUDE / "t7_write_edit_acceptEdits"


@pytest.mark.parametrize(("signal", "pattern"), [(Signal.METRICS, "*_metrics.pb"), (Signal.LOGS, "*_logs.pb")])
def test_wire_count_matches_the_decoded_count(signal: Signal, pattern: str) -> None:
    for path in sorted(T7.glob(pattern)):
        body = path.read_bytes()
        assert count_wire_items(signal, body) == count_items(signal, decode_protobuf(signal, body))


def test_json_count_matches_the_decoded_count() -> None:
    for name, signal in [("0010_http_metrics.json", Signal.METRICS), ("0009_http_logs.json", Signal.LOGS)]:
        body = (CLAUDE / "t5_http_json" / name).read_bytes()
        assert count_json_items(signal, json.loads(body)) == count_items(signal, decode_json(signal, body))


def test_points_past_the_limit_refuse_the_whole_request() -> None:
    body = (T7 / "0014_http_metrics.pb").read_bytes()  # 11 points
    check_body(Signal.METRICS, body, as_json=False, limits=WorkLimits(11, 11, 32))
    with pytest.raises(ExportError) as info:
        check_body(Signal.METRICS, body, as_json=False, limits=LIMITS)
    assert info.value.kind is ErrorKind.TOO_MANY_ITEMS
    assert "11 data points in one request, at most 10" in info.value.message


def refusal(signal: Signal, body: bytes) -> ErrorKind | None:
    """What check_body says of an OTLP/JSON body: the kind of its refusal, or None."""
    try:
        check_body(signal, body, as_json=True, limits=LIMITS)
    except ExportError as exc:
        return exc.kind
    return None


@pytest.mark.parametrize(("items", "kind"), [(10, None), (11, ErrorKind.TOO_MANY_ITEMS)])
def test_json_points_are_counted_before_protobuf_parses_them(items: int, kind: ErrorKind | None) -> None:
    body = json.dumps({"resourceMetrics": [{"scopeMetrics": [{"metrics": [
        {"name": "x", "gauge": {"dataPoints": [{"asDouble": 1}] * items}}]}]}]}).encode()
    assert refusal(Signal.METRICS, body) is kind


def test_json_of_bare_objects_is_refused_from_its_brackets() -> None:
    body = b'{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"x","gauge":{"dataPoints":[' \
        + b"{}," * 5000 + b"{}]}}]}]}]}"
    with pytest.raises(ExportError) as info:
        check_body(Signal.METRICS, body, as_json=True, limits=LIMITS)
    assert "JSON objects in one request" in info.value.message


@pytest.mark.parametrize(("depth", "kind"), [(31, None), (33, ErrorKind.MALFORMED)])
def test_json_depth_is_bounded_before_json_loads(depth: int, kind: ErrorKind | None) -> None:
    body = b'{"a":' * depth + b'"{[not brackets]}"' + b"}" * depth  # brackets in strings do not count
    assert refusal(Signal.LOGS, body) is kind


def test_deep_json_past_the_recursion_limit_is_malformed_not_a_crash() -> None:
    with pytest.raises(ExportError) as info:
        decode_json(Signal.METRICS, b"[" * 100_000 + b"]" * 100_000)
    assert info.value.kind is ErrorKind.MALFORMED
