"""Exact under every legal client setting, from real captures over real HTTP.

Several Claude Code processes of one user with `OTEL_METRICS_INCLUDE_SESSION_ID=false` send identical
resource and point attributes and the same per-process `event.sequence` values; they differ only in
start times (cumulative) and event times. Built from the real captures by removing `session.id` and
giving each "process" its own start time and clock offset.
"""

from __future__ import annotations

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
