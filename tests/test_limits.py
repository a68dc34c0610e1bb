"""Limits bite with a clear answer and a self-metric; the data already there is untouched."""

from __future__ import annotations

import gzip
import http.client
import socket
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from tests.support import CLAUDE, RunningBridge, replay, settings_for_test

T7 = CLAUDE / "t7_write_edit_acceptEdits"
T7_METRICS = (T7 / "0014_http_metrics.pb").read_bytes()
PROTOBUF = {"Content-Type": "application/x-protobuf"}


@pytest.fixture
def small(tmp_path: Path) -> Iterator[RunningBridge]:
    running = RunningBridge(settings_for_test(tmp_path, limits={
        "max_request_bytes": 64 * 1024, "max_decompressed_bytes": 256 * 1024, "max_series": 40,
        "max_label_value_length": 16, "max_inflight_requests": 1,
    }))
    yield running
    running.stop()


def test_gzip_bomb_is_413_and_counted(small: RunningBridge) -> None:
    replay(small, T7)
    bomb = gzip.compress(b"\0" * (50 * 1024 * 1024))
    assert len(bomb) < 64 * 1024
    status, _, _ = small.post("/v1/metrics", bomb, {**PROTOBUF, "Content-Encoding": "gzip"})
    assert status == 413
    scrape = small.scrape()
    assert scrape.total("otlp_bridge_requests_total", outcome="too_large") == 1
    assert scrape.total("claude_code_token_usage_tokens_total", type="cacheRead") == 3 * 4567


def test_oversized_body_is_413_on_http_and_resource_exhausted_on_grpc(small: RunningBridge) -> None:
    big = T7_METRICS * 100
    assert small.post("/v1/metrics", big)[0] == 413
    with pytest.raises(grpc.RpcError) as info:
        small.grpc_export("metrics", T7_METRICS * 300)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_series_cap_rejects_new_series_and_keeps_updating_old_ones(small: RunningBridge) -> None:
    assert small.post("/v1/metrics", T7_METRICS)[0] == 200  # 11 series, target_info, spend per period
    before = small.scrape().total("otlp_bridge_series")
    request = ExportMetricsServiceRequest.FromString(T7_METRICS)
    metric = request.resource_metrics[0].scope_metrics[0].metrics[1]  # lines_of_code, 2 points
    template = metric.sum.data_points[0]
    for i in range(100):
        point = metric.sum.data_points.add()
        point.CopyFrom(template)
        point.attributes.add(key="file", value={"string_value": f"f{i}"})
    for metric_ in request.resource_metrics[0].scope_metrics[0].metrics:
        for point in metric_.sum.data_points:
            point.time_unix_nano += 10**9
    status, _, _ = small.post("/v1/metrics", request.SerializeToString())
    assert status == 200
    scrape = small.scrape()
    assert scrape.total("otlp_bridge_series") == 40
    assert scrape.total("otlp_bridge_rejected_items_total", reason="series_limit") == 100 - (40 - before)
    # the existing series still took this export's increase
    assert scrape.total("claude_code_token_usage_tokens_total", type="cacheRead") == 2 * 3 * 4567


def test_long_label_values_are_cut_and_counted(small: RunningBridge) -> None:
    replay(small, T7)
    scrape = small.scrape()
    assert all(len(v) <= 16 for labels in scrape.series("claude_code_session_count_total") for v in labels.values())
    assert scrape.total("otlp_bridge_items_total", outcome="label_truncated") == 11  # user.id is 64 hex


def test_bytes_in_flight_past_the_budget_get_503_with_retry_after(tmp_path: Path) -> None:
    # Bytes count as they arrive: a body that has sent 40 000 of its declared 60 000 holds exactly
    # that much of the 40 000-byte budget, and the next export is told to come back.
    running = RunningBridge(settings_for_test(tmp_path, limits={
        "max_request_bytes": 64 * 1024, "max_inflight_bytes": 40_000, "max_inflight_requests": 4}))
    try:
        _hold_the_byte_budget(running)
    finally:
        running.stop()


def _hold_the_byte_budget(running: RunningBridge) -> None:
    holder = socket.create_connection(("127.0.0.1", running.ports.http))
    holder.sendall(b"POST /v1/metrics HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                   b"Content-Length: 60000\r\n\r\n" + b"\0" * 40_000)
    try:
        for _ in range(50):  # bounded wait for the server to read what the holder sent
            status, _, headers = running.post("/v1/metrics", T7_METRICS)
            if status == 503:
                break
        assert status == 503
        assert headers["Retry-After"] == "1"
        readyz = http.client.HTTPConnection("127.0.0.1", running.ports.metrics, timeout=10)
        readyz.request("GET", "/readyz")
        answer = readyz.getresponse()
        assert (answer.status, answer.read()) == (503, b"not ready: overloaded: 0 requests and 40000 bytes in flight\n")
        readyz.close()
    finally:
        holder.close()
    assert running.scrape().total("otlp_bridge_requests_total", outcome="overloaded") >= 1
    for _ in range(50):  # the holder's bytes are released once its connection is gone
        if running.post("/v1/metrics", T7_METRICS)[0] == 200:
            break
    assert running.post("/v1/metrics", T7_METRICS)[0] == 200
