"""Claude Code events become per-request, per-tool, per-prompt and per-session series.

A logs export retried by the client must not count twice: each session's events
carry `event.sequence`, so a high-water mark of (time, sequence) per session —
kept as durable input state in the store — tells a replayed event from a new one.
A resumed session restarts its sequence but its events are later, so they count.

Per-session state (start, last model) lives in a bounded LRU; `session.id`
never becomes a label.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from otlp_bridge.store.accumulator import InputState, Store
from otlp_bridge.translate.events import Event, as_bool, as_label, classify_prompt
from otlp_bridge.translate.metrics import FamilyMeta, Kind, Labels


def _counter(name: str, help_: str) -> FamilyMeta:
    return FamilyMeta(name, Kind.COUNTER, help_)


def _histogram(name: str, help_: str) -> FamilyMeta:
    return FamilyMeta(name, Kind.HISTOGRAM, help_)


EVENTS = _counter("claude_code_events_total", "Claude Code events received, by event name.")
API_REQUESTS = _counter("claude_code_api_requests_total", "Successful API requests, by model and query source.")
API_DURATION = _histogram("claude_code_api_request_duration_seconds", "API request duration.")
API_TTFT = _histogram("claude_code_api_request_ttft_seconds", "API request time to first token.")
API_COST = _histogram("claude_code_api_request_cost_usd", "Cost of one API request (client estimate, USD).")
API_INPUT = _histogram("claude_code_api_request_input_tokens", "Uncached input tokens of one API request.")
API_OUTPUT = _histogram("claude_code_api_request_output_tokens", "Output tokens of one API request.")
API_ERRORS = _counter("claude_code_api_errors_total", "Failed API attempts, by model and HTTP status.")
API_EXHAUSTED = _counter("claude_code_api_retries_exhausted_total", "API requests that failed after all retries.")
TOOL_CALLS = _counter("claude_code_tool_calls_total", "Tool calls finished, by tool and success.")
TOOL_DURATION = _histogram("claude_code_tool_duration_seconds", "Tool call duration.")
TOOL_DECISIONS = _counter("claude_code_tool_decisions_total", "Tool permission decisions.")
PROMPTS = _counter("claude_code_user_prompts_total", "User prompts submitted.")
PROMPT_LENGTH = _histogram("claude_code_user_prompt_length_chars", "Length of a user prompt, in characters.")
COMMANDS = _counter("claude_code_slash_commands_total", "Slash commands used.")
WORKFLOWS = _counter("claude_code_prompt_workflows_total",
                     "Prompts by workflow (keyword classifier; only when prompt text is logged).")
MODEL_SWITCHES = _counter("claude_code_model_switches_total", "Model changes within a session.")
SESSION_DURATION = _histogram("claude_code_session_duration_seconds",
                              "Session length, first to last event, observed when the session goes idle.")
LAST_SEEN = FamilyMeta("claude_code_last_seen_timestamp_seconds", Kind.GAUGE,
                       "When a user/device last sent an event (Unix time).", monotonic=False)

SECONDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
USD = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
TOKENS = (10.0, 100.0, 1000.0, 5000.0, 10000.0, 25000.0, 50000.0, 100000.0, 200000.0, 500000.0, 1000000.0)
CHARS = (10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 50000.0)
SESSION_SECONDS = (60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0)


# api_request attribute → histogram, buckets, unit scale
_PER_REQUEST = ((API_DURATION, "duration_ms", SECONDS, 1e-3), (API_TTFT, "ttft_ms", SECONDS, 1e-3),
                (API_COST, "cost_usd", USD, 1.0), (API_INPUT, "input_tokens", TOKENS, 1.0),
                (API_OUTPUT, "output_tokens", TOKENS, 1.0))


@dataclass(frozen=True)
class ActivitySettings:
    session_idle_seconds: float = 900.0  # a session with no event for this long has ended
    active_window_seconds: float = 300.0  # "active" = an event within this window
    max_sessions: int = 10_000  # per-session state kept in memory (least recently seen go first)
    classify_prompts: bool = True


@dataclass(slots=True)
class SessionState:
    who: Labels
    first_ns: int
    last_ns: int
    model: str = ""


@dataclass(slots=True)
class ActivityResult:
    accepted: int = 0
    duplicates: int = 0
    by_event: Counter[str] = field(default_factory=Counter)


def _labels(who: Labels, **extra: str) -> Labels:
    merged = dict(who)
    merged.update({k: v for k, v in extra.items() if v != ""})
    return tuple(sorted(merged.items()))


class Activity:
    def __init__(self, store: Store, settings: ActivitySettings | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.settings = settings or ActivitySettings()
        self.clock = clock
        self.sessions: OrderedDict[tuple[str, str], SessionState] = OrderedDict()
        self._handlers: dict[str, Callable[[Event], None]] = {
            "api_request": self._api_request, "api_error": self._api_error,
            "api_retries_exhausted": self._api_exhausted, "tool_result": self._tool_result,
            "tool_decision": self._tool_decision, "user_prompt": self._user_prompt,
        }

    def apply(self, events: Iterable[Event]) -> ActivityResult:
        result = ActivityResult()
        for event in events:
            if not self._first_time(event):
                result.duplicates += 1
                continue
            result.accepted += 1
            result.by_event[event.name] += 1
            self.store.add(EVENTS, _labels(event.who, event=event.name), 1)
            self._track_session(event)
            handler = self._handlers.get(event.name)
            if handler is not None:
                handler(event)
        return result

    # --- replay detection ------------------------------------------------------------------------
    def _first_time(self, event: Event) -> bool:
        if event.sequence is None:
            return True  # nothing to tell a replay by
        key = ("events", dict(event.who).get("user_id", ""), event.session)
        mark = (event.time_ns, event.sequence)
        state = self.store.input_state(key)
        if state is not None and mark <= (state.start, state.time):
            return False
        self.store.keep_input_state(key, InputState(event.time_ns, event.sequence))
        return True

    # --- sessions ----------------------------------------------------------------------------------
    def _track_session(self, event: Event) -> None:
        user = dict(event.who).get("user_id", "")
        seen = event.time_ns / 1e9
        if seen > (self.store.value(LAST_SEEN.name, event.who) or 0.0):  # batches may arrive out of order
            self.store.set(LAST_SEEN, event.who, seen)
        if not event.session:
            return
        key = (user, event.session)
        state = self.sessions.get(key)
        if state is None:
            state = self.sessions[key] = SessionState(event.who, event.time_ns, event.time_ns)
            while len(self.sessions) > self.settings.max_sessions:
                _, oldest = self.sessions.popitem(last=False)
                self._end(oldest)
        else:
            self.sessions.move_to_end(key)
        state.first_ns = min(state.first_ns, event.time_ns)
        state.last_ns = max(state.last_ns, event.time_ns)
        model = event.get("model")
        if event.name == "api_request" and isinstance(model, str) and model:
            if state.model and model != state.model:
                self.store.add(MODEL_SWITCHES, _labels(event.who, to_model=model), 1)
            state.model = model

    def _end(self, state: SessionState) -> None:
        self.store.observe(SESSION_DURATION, state.who, SESSION_SECONDS, (state.last_ns - state.first_ns) / 1e9)

    def expire(self, now: float | None = None) -> int:
        """End sessions idle for longer than the idle timeout; returns how many ended."""
        now = self.clock() if now is None else now
        idle = [key for key, state in self.sessions.items()
                if now - state.last_ns / 1e9 > self.settings.session_idle_seconds]
        for key in idle:
            self._end(self.sessions.pop(key))
        return len(idle)

    def active_sessions(self, now: float | None = None) -> dict[Labels, int]:
        """Sessions with an event within the active window, by who."""
        now = self.clock() if now is None else now
        counts: Counter[Labels] = Counter()
        for state in self.sessions.values():
            if now - state.last_ns / 1e9 <= self.settings.active_window_seconds:
                counts[state.who] += 1
        return dict(counts)

    # --- one handler per event that feeds a view ------------------------------------------------
    def _api_request(self, event: Event) -> None:
        model = as_label(event.get("model"))
        source = as_label(event.get("query_source"))
        self.store.add(API_REQUESTS, _labels(event.who, model=model, query_source=source), 1)
        per_model = _labels(event.who, model=model)
        for meta, key, bounds, scale in _PER_REQUEST:
            value = event.number(key)
            if value is not None:
                self.store.observe(meta, per_model, bounds, value * scale)

    def _api_error(self, event: Event) -> None:
        status = as_label(event.get("status_code"))
        if status in ("", "undefined"):
            status = "none"  # not an HTTP error (a connection failure, a timeout)
        self.store.add(API_ERRORS, _labels(event.who, model=as_label(event.get("model")), status_code=status), 1)

    def _api_exhausted(self, event: Event) -> None:
        self.store.add(API_EXHAUSTED, _labels(event.who, model=as_label(event.get("model"))), 1)

    def _tool_result(self, event: Event) -> None:
        tool = as_label(event.get("tool_name"))
        success = as_bool(event.get("success"))
        self.store.add(TOOL_CALLS, _labels(event.who, tool_name=tool,
                                           success="" if success is None else str(success).lower()), 1)
        duration = event.number("duration_ms")
        if duration is not None:
            self.store.observe(TOOL_DURATION, _labels(event.who, tool_name=tool), SECONDS, duration / 1000)

    def _tool_decision(self, event: Event) -> None:
        self.store.add(TOOL_DECISIONS, _labels(
            event.who, tool_name=as_label(event.get("tool_name")), decision=as_label(event.get("decision")),
            source=as_label(event.get("source"))), 1)

    def _user_prompt(self, event: Event) -> None:
        self.store.add(PROMPTS, event.who, 1)
        length = event.number("prompt_length")
        if length is not None:
            self.store.observe(PROMPT_LENGTH, event.who, CHARS, length)
        command = as_label(event.get("command_name"))
        if command:
            self.store.add(COMMANDS, _labels(event.who, command_name=command,
                                             command_source=as_label(event.get("command_source"))), 1)
        if self.settings.classify_prompts:
            workflow = classify_prompt(event.get("prompt"))
            if workflow is not None:
                self.store.add(WORKFLOWS, _labels(event.who, workflow=workflow), 1)
