"""Claude Code events become per-request, per-tool, per-prompt and per-session series.

A derive step: from the event increases the store applied (each event once; replays never reach
here) to more observations, which the pipeline applies through the same `Store.apply`. Per-session
state (first and latest event, models used) is kept as internal gauges written the same way, so it
is durable: a session spanning a restart keeps its start. A session idle for `session_idle` ends:
its duration is observed and its state series are removed with staleness markers.
`session.id` never becomes a visible label.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from otlp_bridge import families as fam
from otlp_bridge.series import (
    Applied,
    FamilyMeta,
    HistogramValue,
    Labels,
    Observation,
    Temporality,
    with_labels,
)
from otlp_bridge.store.accumulator import Store
from otlp_bridge.translate.events import Event, as_bool, classify_prompt

SECONDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
USD = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
TOKENS = (10.0, 100.0, 1000.0, 5000.0, 10000.0, 25000.0, 50000.0, 100000.0, 200000.0, 500000.0, 1000000.0)
CHARS = (10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 50000.0)
SESSION_SECONDS = (60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0)

# api_request attribute → histogram, buckets, unit scale
_PER_REQUEST = ((fam.API_DURATION, "duration_ms", SECONDS, 1e-3), (fam.API_TTFT, "ttft_ms", SECONDS, 1e-3),
                (fam.API_COST, "cost_usd", USD, 1.0), (fam.API_INPUT, "input_tokens", TOKENS, 1.0),
                (fam.API_OUTPUT, "output_tokens", TOKENS, 1.0))
# A final error without a status code still names it in its text ("Repeated 529 Overloaded errors").
_STATUS_IN_TEXT = re.compile(r"\b([1-5]\d\d)\b")
SESSION_LABEL = "session"


@dataclass(frozen=True)
class ActivitySettings:
    session_idle_seconds: float = 900.0  # a session with no event for this long has ended
    active_window_seconds: float = 300.0  # "active" = an event within this window
    max_sessions: int = 10_000  # live sessions tracked; past it the least recently seen end early
    classify_prompts: bool = True


def status_of(event: Event) -> str:
    """The HTTP status of a failed request: its status code, else one named in the error text, else 'none'
    (a connection failure or timeout)."""
    status = event.label("status_code")
    if status not in ("", "undefined"):
        return status
    found = _STATUS_IN_TEXT.search(event.label("error"))
    return found.group(1) if found else "none"


def _without(labels: Labels, name: str) -> Labels:
    return tuple(pair for pair in labels if pair[0] != name)


class _Batch:
    """Observations of one derive call; session reads see the batch's own earlier writes."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.out: list[Observation] = []
        self._gauges: dict[tuple[str, Labels], float | None] = {}

    def add(self, meta: FamilyMeta, labels: Labels, time_ns: int, value: float = 1.0) -> None:
        self.out.append(Observation(meta, None, labels, Temporality.DELTA, time_ns, time_ns, value))

    def observe(self, meta: FamilyMeta, labels: Labels, time_ns: int, bounds: tuple[float, ...], value: float) -> None:
        self.out.append(Observation(meta, None, labels, Temporality.DELTA, time_ns, time_ns,
                                    HistogramValue.single(bounds, value)))

    def gauge(self, meta: FamilyMeta, labels: Labels, time_ns: int, value: float | None) -> None:
        self._gauges[meta.name, labels] = value
        self.out.append(Observation(meta, None, labels, Temporality.LAST_VALUE, time_ns, time_ns, value))

    def read(self, meta: FamilyMeta, labels: Labels) -> float | None:
        key = (meta.name, labels)
        return self._gauges[key] if key in self._gauges else self.store.value(meta.name, labels)


class Activity:
    def __init__(self, store: Store, settings: ActivitySettings | None = None) -> None:
        self.store = store  # read only: what this step writes goes back through the pipeline
        self.settings = settings or ActivitySettings()
        self._model_index: dict[Labels, Labels] | None = None
        self._handlers: dict[str, Callable[[_Batch, Event, int], None]] = {
            "api_request": self._api_request, "api_error": self._api_error,
            "api_retries_exhausted": self._api_exhausted, "tool_result": self._tool_result,
            "tool_decision": self._tool_decision, "user_prompt": self._user_prompt,
        }

    def derive(self, applied: list[Applied], now: float) -> list[Observation]:
        """Observations for every event the store applied (as `claude_code_events_total` increases)."""
        batch: _Batch | None = None  # most batches hold no event (metric points, derived series)
        events = fam.EVENTS.name
        for item in applied:
            if item.family.name != events:
                continue
            event = item.origin
            if not isinstance(event, Event):
                continue
            if batch is None:
                batch = _Batch(self.store)
            self._track_session(batch, event, item.time_ns)
            handler = self._handlers.get(event.name)
            if handler is not None:
                handler(batch, event, item.time_ns)
        return batch.out if batch is not None else []

    # --- sessions ----------------------------------------------------------------------------------
    def _track_session(self, batch: _Batch, event: Event, time_ns: int) -> None:
        seen = time_ns / 1e9
        if seen > (batch.read(fam.LAST_SEEN, event.who) or 0.0):  # batches may arrive out of order
            batch.gauge(fam.LAST_SEEN, event.who, time_ns, seen)
        if not event.session:
            return
        key = with_labels(event.who, **{SESSION_LABEL: event.session[:event.max_label_length]})
        start = batch.read(fam.SESSION_START, key)
        if start is None or seen < start:
            batch.gauge(fam.SESSION_START, key, time_ns, seen)
        if seen > (batch.read(fam.SESSION_LAST, key) or 0.0):
            batch.gauge(fam.SESSION_LAST, key, time_ns, seen)
        model = event.label("model")
        if event.name == "api_request" and model:
            current = self._models().get(key)
            if current is not None and dict(current).get("model") != model:
                batch.add(fam.MODEL_SWITCHES, with_labels(event.who, to_model=model), time_ns)
                batch.gauge(fam.SESSION_MODEL, current, time_ns, None)  # one model series per session
            labels = with_labels(key, model=model)
            self._models()[key] = labels
            batch.gauge(fam.SESSION_MODEL, labels, time_ns, seen)

    def _models(self) -> dict[Labels, Labels]:
        """Session → its model series, built from the store once (it is durable) and kept current."""
        if self._model_index is None:
            family = self.store.families.get(fam.SESSION_MODEL.name)
            self._model_index = {_without(labels, "model"): labels for labels in (family.series if family else ())}
        return self._model_index

    def expire(self, now: float) -> list[Observation]:
        """End sessions idle for longer than the idle timeout (and the least recently seen past
        `max_sessions`): observe each one's duration and remove its state."""
        family = self.store.families.get(fam.SESSION_LAST.name)
        if family is None:
            return []
        sessions = sorted((self.store.value(fam.SESSION_LAST.name, key) or 0.0, key) for key in family.series)
        excess = len(sessions) - self.settings.max_sessions
        batch = _Batch(self.store)
        now_ns = int(now * 1e9)
        for index, (last, key) in enumerate(sessions):
            if index >= excess and now - last <= self.settings.session_idle_seconds:
                continue
            start = self.store.value(fam.SESSION_START.name, key)
            who = _without(key, SESSION_LABEL)
            batch.observe(fam.SESSION_DURATION, who, now_ns, SESSION_SECONDS, max(last - (start or last), 0.0))
            batch.gauge(fam.SESSION_START, key, now_ns, None)
            batch.gauge(fam.SESSION_LAST, key, now_ns, None)
            model = self._models().pop(key, None)
            if model is not None:
                batch.gauge(fam.SESSION_MODEL, model, now_ns, None)
        return batch.out

    def active_sessions(self, now: float) -> dict[Labels, int]:
        """Sessions with an event within the active window, by who."""
        counts: Counter[Labels] = Counter()
        family = self.store.families.get(fam.SESSION_LAST.name)
        for key, series in (family.series.items() if family else ()):
            if now - series.value <= self.settings.active_window_seconds:  # type: ignore[union-attr]
                counts[_without(key, SESSION_LABEL)] += 1
        return dict(counts)

    # --- one handler per event that feeds a view ------------------------------------------------
    def _api_request(self, batch: _Batch, event: Event, time_ns: int) -> None:
        model = event.label("model")
        batch.add(fam.API_REQUESTS, with_labels(event.who, model=model, query_source=event.label("query_source")),
                  time_ns)
        per_model = with_labels(event.who, model=model)
        for meta, key, bounds, scale in _PER_REQUEST:
            value = event.number(key)
            if value is not None:
                batch.observe(meta, per_model, time_ns, bounds, value * scale)
        one_hour = event.number("cache_creation_1h_tokens") or 0.0
        five_minute = event.number("cache_creation_5m_tokens")
        if five_minute is None:  # no breakdown: the CLI prices every write as a 5-minute one
            five_minute = (event.number("cache_creation_tokens") or 0.0) - one_hour
        for ttl, tokens in (("5m", five_minute), ("1h", one_hour)):
            if tokens > 0:
                batch.add(fam.CACHE_WRITES, with_labels(per_model, ttl=ttl), time_ns, tokens)

    def _api_error(self, batch: _Batch, event: Event, time_ns: int) -> None:
        labels = with_labels(event.who, model=event.label("model"), status_code=status_of(event))
        batch.add(fam.API_ERRORS, labels, time_ns)
        attempts = event.number("attempt")
        batch.add(fam.API_ERROR_ATTEMPTS, labels, time_ns, attempts if attempts and attempts >= 1 else 1.0)

    def _api_exhausted(self, batch: _Batch, event: Event, time_ns: int) -> None:
        batch.add(fam.API_EXHAUSTED, with_labels(event.who, model=event.label("model"), status_code=status_of(event)),
                  time_ns)

    def _tool_result(self, batch: _Batch, event: Event, time_ns: int) -> None:
        tool = event.label("tool_name")
        success = as_bool(event.get("success"))
        batch.add(fam.TOOL_CALLS, with_labels(event.who, tool_name=tool,
                                              success="" if success is None else str(success).lower()), time_ns)
        duration = event.number("duration_ms")
        if duration is not None:
            batch.observe(fam.TOOL_DURATION, with_labels(event.who, tool_name=tool), time_ns, SECONDS, duration / 1000)

    def _tool_decision(self, batch: _Batch, event: Event, time_ns: int) -> None:
        batch.add(fam.TOOL_DECISIONS, with_labels(
            event.who, tool_name=event.label("tool_name"), decision=event.label("decision"),
            source=event.label("source")), time_ns)

    def _user_prompt(self, batch: _Batch, event: Event, time_ns: int) -> None:
        command = event.label("command_name")
        source = event.label("command_source")
        if command:
            batch.add(fam.COMMANDS, with_labels(event.who, command_name=command, command_source=source), time_ns)
            if source == "builtin":
                return  # /cost, /exit …: run by the CLI itself, no prompt reaches the model
        batch.add(fam.PROMPTS, event.who, time_ns)
        length = event.number("prompt_length")
        if length is not None:
            batch.observe(fam.PROMPT_LENGTH, event.who, time_ns, CHARS, length)
        if self.settings.classify_prompts:
            workflow = classify_prompt(event.get("prompt"))
            if workflow is not None:
                batch.add(fam.WORKFLOWS, with_labels(event.who, workflow=workflow), time_ns)
