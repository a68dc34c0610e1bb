"""Exact under every legal client setting, from real captures over real HTTP.

Several Claude Code processes of one user with `OTEL_METRICS_INCLUDE_SESSION_ID=false` send identical
resource and point attributes and the same per-process `event.sequence` values; they differ only in
start times (cumulative) and event times. Built from the real captures by removing `session.id` and
giving each "process" its own start time and clock offset.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from tests.support import CLAUDE, USAGE_PER_REQUEST, RunningBridge, api_requests, capture_requests, settings_for_test

PROCESSES = 3
NOW = 1795500000.0  # after every capture


def _without_session(attributes: object) -> None:
    for index in reversed(range(len(attributes))):  # type: ignore[arg-type]
        if attributes[index].key == "session.id":  # type: ignore[index]
            del attributes[index]  # type: ignore[attr-defined]


def _as_process(signal: str, body: bytes, process: int) -> bytes:
    """The captured body as process `process` would send it: no session id, its own start and clock."""
    offset = process * 1_000_003  # ≈1 ms apart, and a start time of its own for every stream
    if signal == "metrics":
        metrics = ExportMetricsServiceRequest.FromString(body)
        for rm in metrics.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for point in getattr(metric, metric.WhichOneof("data")).data_points:
                        _without_session(point.attributes)
                        point.start_time_unix_nano += offset
                        point.time_unix_nano += offset
        return metrics.SerializeToString()
    logs = ExportLogsServiceRequest.FromString(body)
    for rl in logs.resource_logs:
        for sl in rl.scope_logs:
            for record in sl.log_records:
                _without_session(record.attributes)
                record.time_unix_nano += offset  # event.sequence stays: every process counts from 1
    return logs.SerializeToString()


@pytest.mark.parametrize("run", ["t9_cumulative_sleep", "t8_bash_sleep_multi_export"])
def test_processes_sharing_every_attribute_add_up(tmp_path: Path, run: str) -> None:
    requests = [r for r in capture_requests(CLAUDE / run) if r.transport == "http"]
    bridge = RunningBridge(settings_for_test(tmp_path), clock=lambda: NOW)
    try:
        for req in requests:  # interleaved: each export of each process in turn, as they really arrive
            for process in range(PROCESSES):
                status, body, _ = bridge.post(req.http_path, _as_process(req.signal, req.decoded_body, process))
                assert status == 200, body
        for req in requests:  # and a retry of everything: nothing counts twice
            for process in range(PROCESSES):
                assert bridge.post(req.http_path, _as_process(req.signal, req.decoded_body, process))[0] == 200
        scrape = bridge.scrape()
        requests_made = api_requests(CLAUDE / run)
        for kind, per_request in USAGE_PER_REQUEST.items():
            assert scrape.total("claude_code_token_usage_tokens_total", type=kind) == \
                PROCESSES * requests_made * per_request, kind
        assert scrape.total("claude_code_session_count_total") == PROCESSES
        assert scrape.total("claude_code_api_requests_total") == PROCESSES * requests_made
        assert not scrape.series("claude_code_token_usage_tokens_total")[0].get("session_id")
    finally:
        bridge.stop()


def _forged(name: str, kind: str, value: float, unit: str = "") -> bytes:
    point = {"asDouble": value, "timeUnixNano": str(int(NOW * 1e9) - 5), "startTimeUnixNano": "1"}
    data = {"dataPoints": [point]}
    if kind == "sum":
        data.update(aggregationTemporality=1, isMonotonic=True)
    elif kind == "histogram":
        data = {"aggregationTemporality": 1, "dataPoints": [{**point, "count": "1", "sum": value,
                                                              "bucketCounts": ["1"], "explicitBounds": []}]}
        del data["dataPoints"][0]["asDouble"]
    metric = {"name": name, "unit": unit, kind: data}
    return json.dumps({"resourceMetrics": [{"resource": {}, "scopeMetrics": [{"metrics": [metric]}]}]}).encode()


def test_a_client_cannot_forge_or_squat_the_bridges_families(tmp_path: Path) -> None:
    bridge = RunningBridge(settings_for_test(tmp_path), clock=lambda: NOW)
    try:
        forgeries = [
            ("otlp_bridge.internal.spend.usd", "sum", 1e6, ""),  # forged budget spend
            ("claude_code.last_seen_timestamp", "gauge", 1e300, "s"),  # a derived family's name
            ("claude_code.api_requests", "sum", 5.0, ""),  # an event family's name
            ("claude_code.cost.usage", "histogram", 9.0, "USD"),  # would take the real counter's names
            ("claude_code.cost.usage.USD.total", "gauge", 9.0, ""),  # the counter's very name, as a gauge
            ("target_info", "gauge", 2.0, ""),
        ]
        for name, kind, value, unit in forgeries:
            status, body, _ = bridge.post("/v1/metrics", _forged(name, kind, value, unit),
                                          {"Content-Type": "application/json"})
            assert status == 200
            assert json.loads(body)["partialSuccess"]["rejectedDataPoints"] == "1", name
        for req in capture_requests(CLAUDE / "t1_http_protobuf_sayhi"):
            assert bridge.post(req.http_path, req.decoded_body)[0] == 200
        scrape = bridge.scrape()
        assert scrape.total("claude_code_token_usage_tokens_total", type="input") == \
            api_requests(CLAUDE / "t1_http_protobuf_sayhi") * USAGE_PER_REQUEST["input"]
        assert scrape.total("claude_code_cost_usage_USD_total") > 0
        assert not scrape.series("claude_code_last_seen_timestamp")
        assert scrape.total("otlp_bridge_rejected_items_total", reason="reserved_name") == 5
        assert scrape.total("otlp_bridge_rejected_items_total", reason="name_collision") == 1
        summary = bridge.get_json("/summary")
        assert summary["cost_usd"]["this_month"] == scrape.total("claude_code_cost_usage_USD_total")
    finally:
        bridge.stop()
