"""The one `Export` per signal that both receivers call: decode, translate, store, persist, answer."""

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
from otlp_bridge.derive.activity import Activity
from otlp_bridge.errors import ErrorKind, ExportError
from otlp_bridge.self_metrics import SelfMetrics
from otlp_bridge.store.accumulator import Store
from otlp_bridge.store.persist import SqliteState
from otlp_bridge.translate.events import read_events
from otlp_bridge.translate.metrics import LabelPolicy, Labels, translate_metrics

log = logging.getLogger(__name__)

Exporter = Callable[[Message, Labels], Message]


class Pipeline:
    def __init__(self, store: Store, policy: LabelPolicy, stats: SelfMetrics,
                 state: SqliteState | None = None, activity: Activity | None = None) -> None:
        self.store = store
        self.activity = activity or Activity(store)
        self.policy = policy
        self.stats = stats
        self.state = state
        self._exporters: dict[Signal, Exporter] = {
            Signal.METRICS: self._export_metrics,  # type: ignore[dict-item]
            Signal.LOGS: self._export_logs,  # type: ignore[dict-item]
            Signal.TRACES: self._export_traces,  # type: ignore[dict-item]
        }

    async def handle(
        self, transport: str, signal: Signal, body: bytes, *, as_json: bool = False,
        allow_empty: bool = False, identity: Labels = (),
    ) -> Message:
        """Decode, export and make durable one request body; the answer is sent only after that.

        An `ExportError` is logged, counted and re-raised for the transport to answer."""
        try:
            request = decode_json(signal, body) if as_json else decode_protobuf(signal, body, allow_empty=allow_empty)
            version = self.store.version
            response = self._exporters[signal](request, identity)
            await self._durable(changed=self.store.version != version)
        except ExportError as exc:
            self.refused(transport, signal, exc)
            raise
        outcome = "partial" if response.HasField("partial_success") else "success"
        self.stats.request(transport, signal.value, outcome)
        return response

    async def _durable(self, *, changed: bool) -> None:
        # Even an export that changed nothing (a replay) waits for what came before it, so its
        # success is never acknowledged ahead of the data it duplicates.
        if self.state is None:
            return
        generation = self.state.changed() if changed else self.state.latest
        try:
            await self.state.commit(self.store, generation)
        except Exception as exc:
            log.exception("cannot persist state")
            raise ExportError(ErrorKind.UNAVAILABLE, f"cannot persist state ({exc}); retry later") from None

    def refused(self, transport: str, signal: Signal, error: ExportError) -> None:
        """Log and count a refusal once, whichever layer refused it."""
        if error.counted:
            return
        error.counted = True
        log.warning("refused %s %s export: %s", transport, signal.value, error.message)
        self.stats.request(transport, signal.value, error.outcome)

    def _export_metrics(self, request: ExportMetricsServiceRequest, identity: Labels) -> ExportMetricsServiceResponse:
        translation = translate_metrics(request, self.policy, identity)
        result = self.store.apply(translation.observations)
        self.store.apply(translation.targets)
        rejected = translation.rejected.copy()
        rejected.update(result.rejected)
        signal = Signal.METRICS.value
        self.stats.items_seen(signal, "accepted", result.accepted)
        self.stats.items_seen(signal, "duplicate", result.duplicates)
        self.stats.items_seen(signal, "label_truncated", translation.truncated)
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

    def _export_logs(self, request: ExportLogsServiceRequest, identity: Labels) -> ExportLogsServiceResponse:
        count = sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)
        result = self.activity.apply(read_events(request, identity, self.policy.drop))
        signal = Signal.LOGS.value
        self.stats.items_seen(signal, "accepted", count - result.duplicates)
        self.stats.items_seen(signal, "duplicate", result.duplicates)
        return ExportLogsServiceResponse()

    def _export_traces(self, request: ExportTraceServiceRequest, identity: Labels) -> ExportTraceServiceResponse:
        # Accepted so the tracing beta does not fill the CLI's log with errors; not stored.
        count = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        self.stats.items_seen(Signal.TRACES.value, "discarded", count)
        return ExportTraceServiceResponse()
