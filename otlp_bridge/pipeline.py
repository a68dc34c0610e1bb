"""The one `Export` per signal that both receivers call: decode, translate, store, answer."""

from __future__ import annotations

import logging
from collections.abc import Callable

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsPartialSuccess,
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from otlp_bridge.decode import Signal, decode_json, decode_protobuf
from otlp_bridge.errors import ExportError
from otlp_bridge.self_metrics import SelfMetrics
from otlp_bridge.store.accumulator import Store
from otlp_bridge.translate.metrics import LabelPolicy, translate_metrics

log = logging.getLogger(__name__)


class Pipeline:
    def __init__(self, store: Store, policy: LabelPolicy, stats: SelfMetrics) -> None:
        self.store = store
        self.policy = policy
        self.stats = stats
        self._exporters: dict[Signal, Callable[[Message], Message]] = {
            Signal.METRICS: self._export_metrics,  # type: ignore[dict-item]
            Signal.LOGS: self._export_logs,  # type: ignore[dict-item]
            Signal.TRACES: self._export_traces,  # type: ignore[dict-item]
        }

    def export_bytes(
        self, transport: str, signal: Signal, body: bytes, *, as_json: bool = False, allow_empty: bool = False,
    ) -> Message:
        """Decode and export one request body; an `ExportError` is logged, counted and re-raised."""
        try:
            request = decode_json(signal, body) if as_json else decode_protobuf(signal, body, allow_empty=allow_empty)
        except ExportError as exc:
            self.refused(transport, signal, exc)
            raise
        return self.export(transport, signal, request)

    def export(self, transport: str, signal: Signal, request: Message) -> Message:
        response = self._exporters[signal](request)
        outcome = "partial" if response.HasField("partial_success") else "success"
        self.stats.request(transport, signal.value, outcome)
        return response

    def refused(self, transport: str, signal: Signal, error: ExportError) -> None:
        log.warning("refused %s %s export: %s", transport, signal.value, error.message)
        self.stats.request(transport, signal.value, error.outcome)

    def _export_metrics(self, request: ExportMetricsServiceRequest) -> ExportMetricsServiceResponse:
        translation = translate_metrics(request, self.policy)
        result = self.store.apply(translation.observations)
        self.store.apply(translation.targets)
        rejected = translation.rejected.copy()
        rejected.update(result.rejected)
        signal = Signal.METRICS.value
        self.stats.items_seen(signal, "accepted", result.accepted)
        self.stats.items_seen(signal, "duplicate", result.duplicates)
        for reason, count in rejected.items():
            self.stats.reject(signal, reason, count)
        total_rejected = sum(rejected.values())
        if not total_rejected:
            return ExportMetricsServiceResponse()
        message = ", ".join(f"{count} {reason}" for reason, count in sorted(rejected.items()))
        log.info("metrics export partially rejected: %s", message)
        return ExportMetricsServiceResponse(partial_success=ExportMetricsPartialSuccess(
            rejected_data_points=total_rejected, error_message=f"rejected data points: {message}",
        ))

    def _export_logs(self, request: ExportLogsServiceRequest) -> ExportLogsServiceResponse:
        count = sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)
        self.stats.items_seen(Signal.LOGS.value, "accepted", count)
        return ExportLogsServiceResponse()

    def _export_traces(self, request: ExportTraceServiceRequest) -> ExportTraceServiceResponse:
        # Accepted so the tracing beta does not fill the CLI's log with errors; not stored.
        count = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        self.stats.items_seen(Signal.TRACES.value, "discarded", count)
        return ExportTraceServiceResponse()
