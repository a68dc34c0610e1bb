"""Garbage gets a clear status and a log line; the process keeps serving and totals stay put."""

from __future__ import annotations

import gzip
import json

import grpc
import pytest
from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

from tests.support import CLAUDE, RunningBridge, replay

T7 = CLAUDE / "t7_write_edit_acceptEdits"
T7_METRICS = (T7 / "0014_http_metrics.pb").read_bytes()
PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}

BAD_HTTP = [
    # id, path, body, headers, method, status
    ("malformed-protobuf", "/v1/metrics", b"\xff\xff\xff\xff", PROTOBUF, "POST", 400),
    ("truncated-protobuf", "/v1/metrics", T7_METRICS[: len(T7_METRICS) // 2], PROTOBUF, "POST", 400),
    ("malformed-json", "/v1/metrics", b'{"resourceMetrics": [', JSON, "POST", 400),
    ("json-wrong-shape", "/v1/metrics", b'{"resourceMetrics": 5}', JSON, "POST", 400),
    ("json-not-object", "/v1/logs", b"[1, 2]", JSON, "POST", 400),
    ("json-bad-hex-id", "/v1/logs",
     json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "zz"}]}]}]}).encode(), JSON, "POST", 400),
    ("empty-protobuf", "/v1/metrics", b"", PROTOBUF, "POST", 400),
    ("empty-json", "/v1/logs", b"", JSON, "POST", 400),
    ("unknown-content-type", "/v1/metrics", T7_METRICS, {"Content-Type": "text/plain"}, "POST", 415),
    ("no-content-type", "/v1/metrics", T7_METRICS, {}, "POST", 415),
    ("truncated-gzip", "/v1/metrics", gzip.compress(T7_METRICS)[:-12],
     {**PROTOBUF, "Content-Encoding": "gzip"}, "POST", 400),
    ("not-gzip", "/v1/metrics", T7_METRICS, {**PROTOBUF, "Content-Encoding": "gzip"}, "POST", 400),
    ("unknown-encoding", "/v1/metrics", T7_METRICS, {**PROTOBUF, "Content-Encoding": "br"}, "POST", 400),
    ("wrong-method", "/v1/metrics", None, PROTOBUF, "GET", 405),
    ("put", "/v1/logs", T7_METRICS, PROTOBUF, "PUT", 405),
    ("unknown-path", "/v2/metrics", T7_METRICS, PROTOBUF, "POST", 404),
]


def _totals(samples: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> dict[object, float]:
    """Claude Code's counters and histograms (gauges such as burn rates move with the clock)."""
    return {k: v for k, v in samples.items() if k[0].startswith("claude_code")
            and k[0].endswith(("_total", "_bucket", "_count", "_sum"))}


@pytest.mark.parametrize(("path", "body", "headers", "method", "status"),
                         [case[1:] for case in BAD_HTTP], ids=[case[0] for case in BAD_HTTP])
def test_bad_http_request_gets_clear_status_and_leaves_totals(
    bridge: RunningBridge, path: str, body: bytes | None, headers: dict[str, str], method: str, status: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    replay(bridge, T7)
    before = bridge.scrape().samples()
    got, response, response_headers = bridge.post(path, body, headers, method=method)  # type: ignore[arg-type]
    assert got == status, response
    assert b"Traceback" not in response
    if status in (400, 415):
        # OTLP/HTTP: a google.rpc.Status in the request's encoding
        if headers.get("Content-Type") == "application/json":
            assert json.loads(response)["message"]
        else:
            assert Status.FromString(response).message
        assert any("refused http" in r.getMessage() for r in caplog.records)
    if status == 405:
        assert response_headers["Allow"] == "POST"
    after = bridge.scrape().samples()
    assert _totals(after) == _totals(before)
    assert bridge.post("/v1/metrics", T7_METRICS)[0] == 200  # still serving (a replay: counts nothing)


@pytest.mark.parametrize("body", [b"\xff\xff\xff\xff", T7_METRICS[:100], b"\x0a\xff\xff\xff\xff\x0f"])
def test_bad_grpc_request_is_invalid_argument(bridge: RunningBridge, body: bytes) -> None:
    replay(bridge, T7)
    before = bridge.scrape().total("claude_code_token_usage_tokens_total")
    with pytest.raises(grpc.RpcError) as info:
        bridge.grpc_export("metrics", body)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "cannot parse metrics protobuf" in info.value.details()
    scrape = bridge.scrape()
    assert scrape.total("claude_code_token_usage_tokens_total") == before
    assert scrape.total("otlp_bridge_requests_total", transport="grpc", outcome="malformed") == 1


def test_refusals_are_counted_by_outcome(bridge: RunningBridge) -> None:
    bridge.post("/v1/metrics", b"\xff", PROTOBUF)
    bridge.post("/v1/metrics", T7_METRICS, {"Content-Type": "text/plain"})
    bridge.post("/v1/metrics", b"", PROTOBUF)
    scrape = bridge.scrape()
    assert scrape.total("otlp_bridge_requests_total", transport="http", outcome="malformed") == 1
    assert scrape.total("otlp_bridge_requests_total", transport="http", outcome="unsupported_media_type") == 1
    assert scrape.total("otlp_bridge_requests_total", transport="http", outcome="empty") == 1


def test_same_request_twice_counts_once_on_each_transport_and_across(bridge: RunningBridge) -> None:
    for _ in range(2):
        assert bridge.post("/v1/metrics", T7_METRICS)[0] == 200
        bridge.grpc_export("metrics", T7_METRICS)
        bridge.grpc_export("metrics", T7_METRICS, gzip_=True)
    scrape = bridge.scrape()
    assert scrape.total("claude_code_token_usage_tokens_total", type="cacheRead") == 3 * 4567
    assert scrape.total("otlp_bridge_items_total", signal="metrics", outcome="duplicate") == 5 * 11  # t7's 11 points


def test_partial_success_reports_rejected_points(bridge: RunningBridge) -> None:
    request = ExportMetricsServiceRequest.FromString(T7_METRICS)
    metric = request.resource_metrics[0].scope_metrics[0].metrics.add(name="weird.exp", unit="1")
    metric.exponential_histogram.data_points.add(count=1, time_unix_nano=1)
    negative = request.resource_metrics[0].scope_metrics[0].metrics.add(name="neg", unit="1")
    negative.sum.is_monotonic = True
    negative.sum.aggregation_temporality = 1
    negative.sum.data_points.add(as_double=-1.0, time_unix_nano=5)
    status, body, _ = bridge.post("/v1/metrics", request.SerializeToString())
    assert status == 200
    response = ExportMetricsServiceResponse.FromString(body)
    assert response.partial_success.rejected_data_points == 2
    assert "unsupported_exponential_histogram" in response.partial_success.error_message
    assert "negative_delta" in response.partial_success.error_message
    # the same over OTLP/JSON: answered in JSON; the good points are replays by now
    json_status, json_body, _ = bridge.post("/v1/metrics", json_format.MessageToJson(request).encode(), JSON)
    assert json_status == 200
    assert json.loads(json_body)["partialSuccess"]["rejectedDataPoints"] == "2"
    scrape = bridge.scrape()
    assert scrape.total("claude_code_token_usage_tokens_total", type="cacheRead") == 3 * 4567
    assert scrape.total("otlp_bridge_rejected_items_total", reason="negative_delta") >= 1
