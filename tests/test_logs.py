"""logs.py: the JSON line format, the per-export DEBUG line and the digest's counts."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse

from otlp_bridge import families
from otlp_bridge.logs import Digest, configure, exported
from otlp_bridge.self_metrics import SelfMetrics
from otlp_bridge.series import Observation, Temporality, input_key
from otlp_bridge.store.accumulator import Store
from tests.builders import Clock, store_for


@pytest.fixture
def restore_logging() -> object:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield None
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_time_level_logger_message_and_extras(restore_logging: object) -> None:
    stream = io.StringIO()
    configure("INFO", "json", stream)
    logging.getLogger("otlp_bridge.x").info("hello %s", "there", extra={"series": 3})
    logging.getLogger("otlp_bridge.x").debug("not at INFO")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("otlp_bridge.x").exception("failed")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert datetime.fromisoformat(first.pop("time")).tzinfo == UTC
    assert first == {"level": "INFO", "logger": "otlp_bridge.x", "message": "hello there", "series": 3}
    assert second["level"] == "ERROR"
    assert "ValueError: boom" in second["exception"]


def test_one_debug_line_per_export(restore_logging: object, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "otlp_bridge.export")
    exported("grpc", "metrics", 1234, ExportMetricsServiceResponse(), identity=(("team", "platform"),))
    partial = ExportMetricsServiceResponse()
    partial.partial_success.rejected_data_points = 2
    partial.partial_success.error_message = "2 points refused: series_limit"
    exported("http", "metrics", 99, partial)
    assert [r.getMessage() for r in caplog.records] == [
        "grpc metrics export of 1234 bytes from team=platform: success",
        "http metrics export of 99 bytes: partial, 2 items refused (2 points refused: series_limit)"]
    assert caplog.records[1].items_refused == 2  # type: ignore[attr-defined]


def test_the_digest_counts_since_the_last_one_and_names_the_last_client() -> None:
    clock = Clock(datetime(2026, 11, 23, 12, 0, tzinfo=UTC))
    store: Store = store_for(clock)
    stats = SelfMetrics()
    digest = Digest(stats, store)
    message, fields = digest.line(clock())
    assert message == ("since the last digest: 0 exports accepted, 0 refused; 0 series; "
                       "no client events yet (OTEL_LOGS_EXPORTER=otlp sends them)")
    for outcome in ("success", "success", "partial", "unauthenticated"):
        stats.request("grpc", "metrics", outcome)
    who = (("device", "laptop-7"), ("user_email", "a@example.com"))
    seen_ns = int((clock() - 30) * 1e9)
    store.apply([Observation(families.LAST_SEEN, input_key(families.LAST_SEEN.name, who), who,
                             Temporality.LAST_VALUE, seen_ns, seen_ns, clock() - 30)])
    message, fields = digest.line(clock())
    assert message == ("since the last digest: 3 exports accepted, 1 refused (unauthenticated 1); 1 series; "
                       "last client seen 30 s ago: a@example.com (device=laptop-7)")
    assert fields["refused_by_outcome"] == {"unauthenticated": 1}
    assert digest.line(clock())[1]["exports_accepted"] == 0  # counted once
