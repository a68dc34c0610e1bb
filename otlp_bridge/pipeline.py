"""The one `Export` per signal that both receivers call: decode, translate, apply, derive, persist, answer.

The write path, in order (design.md "One write path"):
    observations = translate(request)        # pure: OTLP → observations
    result       = store.apply(observations) # the only writer; answers with the increases it applied
    derived      = step(result.applied, now) # pure: increases → more observations, for each derive step
    store.apply(derived)                     # the same caps, rejection counting, persistence
    await durable                            # then answer
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Sequence

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
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
from otlp_bridge.errors import ErrorKind, ExportError
from otlp_bridge.logs import exported
from otlp_bridge.self_metrics import SelfMetrics
from otlp_bridge.series import Applied, Labels, Observation
from otlp_bridge.store.accumulator import ApplyResult, Store
from otlp_bridge.store.persist import SqliteState
from otlp_bridge.translate.events import translate_events
from otlp_bridge.translate.metrics import LabelPolicy, Translation, translate_metrics

log = logging.getLogger(__name__)

DeriveStep = Callable[[list[Applied], float], list[Observation]]
Translated = Translation | list[Observation] | int
# Bodies above this are decoded and translated in a worker thread, so one large request does not
# hold the event loop (other exports, /healthz, scrapes) for its whole decode.
OFF_LOOP_BYTES = 64 * 1024
_MAX_DERIVE_ROUNDS = 4  # a step may derive from another's output; none derives from its own


class Pipeline:
    def __init__(self, store: Store, policy: LabelPolicy, stats: SelfMetrics,
                 state: SqliteState | None = None, steps: Sequence[DeriveStep] = ()) -> None:
        self.store = store
        self.policy = policy
        self.stats = stats
        self.state = state
        self.steps = list(steps)

    async def handle(
        self, transport: str, signal: Signal, body: bytes, *, as_json: bool = False,
        allow_empty: bool = False, identity: Labels = (),
    ) -> Message:
        """Decode, export and make durable one request body; the answer is sent only after that.

        An `ExportError` is logged, counted and re-raised for the transport to answer."""
        try:
            if len(body) > OFF_LOOP_BYTES:
                translated = await asyncio.to_thread(self._translate, signal, body, as_json, allow_empty, identity)
            else:
                translated = self._translate(signal, body, as_json, allow_empty, identity)
            response = self._export(signal, translated)
            await self._durable()
        except ExportError as exc:
            self.refused(transport, signal, exc)
            raise
        outcome = "partial" if response.HasField("partial_success") else "success"
        self.stats.request(transport, signal.value, outcome)
        exported(transport, signal.value, len(body), response, identity=identity)  # DEBUG: one line per export
        return response

    def _translate(self, signal: Signal, body: bytes, as_json: bool, allow_empty: bool,
                   identity: Labels) -> Translated:
        """Pure work, safe in a worker thread: bytes to observations (traces: to a span count)."""
        request = decode_json(signal, body) if as_json else decode_protobuf(signal, body, allow_empty=allow_empty)
        if isinstance(request, ExportMetricsServiceRequest):
            return translate_metrics(request, self.policy, identity)
        if isinstance(request, ExportLogsServiceRequest):
            return translate_events(request, self.policy, identity)
        assert isinstance(request, ExportTraceServiceRequest)
        return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)

    def _export(self, signal: Signal, translated: Translated) -> Message:
        if isinstance(translated, Translation):
            return self._export_metrics(translated)
        if isinstance(translated, list):
            return self._export_logs(translated)
        # Accepted so the tracing beta does not fill the CLI's log with errors; not stored.
        self.stats.items_seen(Signal.TRACES.value, "discarded", translated)
        return ExportTraceServiceResponse()

    def apply(self, observations: list[Observation], *, history_only: bool = False) -> ApplyResult:
        """Apply observations, then what every derive step makes of the increases, through the same
        `Store.apply`; refusals of derived observations are counted like any other."""
        result = self.store.apply(observations, history_only=history_only)
        pending = result.applied
        for _ in range(_MAX_DERIVE_ROUNDS):
            if not pending:
                break
            now = self.store.clock()
            derived = [obs for step in self.steps for obs in step(pending, now)]
            if history_only:  # increases filed in history only derive only what history keeps
                derived = [obs for obs in derived if self.store.keeps_history(obs.family.name)]
            if not derived:
                break
            outcome = self.store.apply(derived, history_only=history_only)
            for reason, count in outcome.rejected.items():
                self.stats.reject("derived", reason, count)
            pending = outcome.applied
        self.stats.items_seen("points", "future_timestamp", result.future)
        return result

    async def _durable(self) -> None:
        # Even an export that changed nothing (a replay) waits for what came before it, so its
        # success is never acknowledged ahead of the data it duplicates.
        if self.state is None:
            return
        generation = self.state.changed() if self.store.has_log else self.state.latest
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

    def _export_metrics(self, translation: Translation) -> ExportMetricsServiceResponse:
        result = self.apply(translation.observations)
        for reason, count in self.store.apply(translation.targets).rejected.items():
            self.stats.reject("derived", reason, count)  # target_info is the bridge's, not a client point
        rejected = Counter(translation.rejected)
        rejected.update(result.rejected)
        self.stats.items_seen(Signal.METRICS.value, "label_truncated", translation.truncated)
        count, message = self._outcome(Signal.METRICS, result, rejected)
        if not count:
            return ExportMetricsServiceResponse()
        return ExportMetricsServiceResponse(partial_success=ExportMetricsPartialSuccess(
            rejected_data_points=count, error_message=message))

    def _export_logs(self, observations: list[Observation]) -> ExportLogsServiceResponse:
        result = self.apply(observations)
        count, message = self._outcome(Signal.LOGS, result, result.rejected)
        if not count:
            return ExportLogsServiceResponse()
        return ExportLogsServiceResponse(partial_success=ExportLogsPartialSuccess(
            rejected_log_records=count, error_message=message))

    def _outcome(self, signal: Signal, result: ApplyResult, rejected: Counter[str]) -> tuple[int, str]:
        """Count what was accepted, replayed and refused; the refusals as OTLP `partial_success` wants them."""
        self.stats.items_seen(signal.value, "accepted", result.accepted)
        self.stats.items_seen(signal.value, "duplicate", result.duplicates)
        for reason, count in rejected.items():
            self.stats.reject(signal.value, reason, count)
        total = sum(rejected.values())
        if not total:
            return 0, ""
        message = ", ".join(f"{count} {reason}" for reason, count in sorted(rejected.items()))
        log.info("%s export partially rejected: %s", signal.value, message)
        return total, f"rejected {signal.value} items: {message}"
