"""Events into series through the real write path: lenient attributes, replay detection, sessions,
model switches, workflows, error classification."""

from __future__ import annotations

from typing import Any

import pytest

from otlp_bridge import families as fam
from otlp_bridge.derive.activity import Activity, ActivitySettings
from otlp_bridge.derive.query import histogram_by, total
from otlp_bridge.pipeline import Pipeline
from otlp_bridge.self_metrics import SelfMetrics
from otlp_bridge.store.accumulator import Store
from otlp_bridge.translate.events import as_bool, as_float, as_label, classify_prompt, translate_events
from otlp_bridge.translate.metrics import LabelPolicy
from tests.builders import Clock, logs_request, store_for

WHO = (("job", "claude-code"), ("user_id", "u1"))
T0 = 1_795_000_000.0


@pytest.mark.parametrize(("raw", "expected"), [(38, 38.0), ("38", 38.0), (" 4.5 ", 4.5), (2.5, 2.5),
                                               (True, 1.0), ("undefined", None), (None, None), ("nan", None)])
def test_numbers_are_read_leniently(raw: object, expected: float | None) -> None:
    assert as_float(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("false", False), (True, True), (0, False),
                                               ("TRUE", True), ("maybe", None)])
def test_flags_are_read_leniently(raw: object, expected: bool | None) -> None:
    assert as_bool(raw) == expected


def test_labels_drop_float_noise() -> None:
    assert as_label(400) == "400"
    assert as_label(400.0) == "400"
    assert as_label("400") == "400"


@pytest.mark.parametrize(("prompt", "workflow"), [
    ("please add pytest tests for the parser", "testing"),
    ("commit this and open a PR", "git"),
    ("why does this crash with a traceback", "debugging"),
    ("deploy to kubernetes", "deployment"),
    ("update the README", "documentation"),
    ("call the REST endpoint", "api"),
    ("implement a cache class", "development"),
    ("hello there", "other"),
    ("<REDACTED>", None),
    (None, None),
])
def test_workflow_classifier(prompt: str | None, workflow: str | None) -> None:
    assert classify_prompt(prompt) == workflow


class Events:
    """A store fed through the pipeline, with the activity step, as the bridge wires it."""

    def __init__(self, settings: ActivitySettings | None = None) -> None:
        self.clock = Clock(T0 + 3600)
        self.store: Store = store_for(self.clock)
        self.activity = Activity(self.store, settings)
        self.policy = LabelPolicy(frozenset({"session.id", "prompt.id", "event.sequence"}))
        self.pipeline = Pipeline(self.store, self.policy, SelfMetrics(), steps=[self.activity.derive])

    def send(self, *events: tuple[str, float, dict[str, Any]], **resource: Any) -> tuple[int, int]:
        stamped = ((name, int((T0 + at) * 1e9), {"user.id": "u1", **attrs}) for name, at, attrs in events)
        request = logs_request(*stamped, resource={"service.name": "claude-code", **resource})
        result = self.pipeline.apply(translate_events(request, self.policy))
        return result.accepted, result.duplicates

    def expire(self) -> None:
        self.pipeline.apply(self.activity.expire(self.clock()))

    def total(self, family: fam.FamilyMeta, **where: str) -> float:
        return total(self.store, family.name, where or None)


def _request(seq: int, at: float, session: str = "s1", model: str = "m", **extra: Any) -> tuple[str, float, dict]:
    return "api_request", at, {"session.id": session, "event.sequence": seq, "model": model, **extra}


def test_a_replayed_batch_counts_once_and_a_resumed_session_counts_again() -> None:
    events = Events()
    batch = (_request(1, 1.0), _request(2, 1.001))
    assert events.send(*batch) == (2, 0)
    assert events.send(*batch) == (0, 2)
    assert events.send(_request(1, 5.0)) == (1, 0)  # new process, same session id, sequence restarts
    assert events.total(fam.API_REQUESTS) == 3
    assert events.total(fam.EVENTS) == 3


def test_processes_sharing_identity_and_sequences_all_count() -> None:
    """Session id off, three processes of one user: identical attributes and event.sequence values,
    told apart only by their own timestamps and contents."""
    events = Events()
    for process in range(3):
        batch = [_request(seq, 10.0 + seq + process * 0.0007, session="", model="claude-opus-5-5")
                 for seq in range(1, 6)]
        assert events.send(*batch) == (5, 0)
    assert events.total(fam.API_REQUESTS) == 15


def test_a_client_clock_stepping_back_loses_nothing() -> None:
    events = Events()
    assert events.send(_request(7, 100.0)) == (1, 0)
    assert events.send(_request(8, 40.0, duration_ms=12)) == (1, 0)  # 60 s earlier, a different event
    assert events.total(fam.API_REQUESTS) == 2


def test_model_switch_and_session_duration_on_idle() -> None:
    events = Events(ActivitySettings(session_idle_seconds=60))
    events.clock.now = T0 + 45.0
    events.send(_request(1, 10.0, model="claude-opus-5-5"), _request(2, 20.0, model="claude-haiku-4-5"),
                _request(3, 40.0, model="claude-haiku-4-5"))
    assert events.total(fam.MODEL_SWITCHES) == 1
    assert events.activity.active_sessions(events.clock()) == {WHO: 1}
    events.expire()
    assert histogram_by(events.store, fam.SESSION_DURATION.name) == {}
    events.clock.now = T0 + 101.0
    events.expire()
    assert histogram_by(events.store, fam.SESSION_DURATION.name) == {(): (1, 30.0)}  # 10 s to 40 s
    assert not events.store.families[fam.SESSION_LAST.name].series  # its state is gone
    assert not events.store.families[fam.SESSION_MODEL.name].series


def test_session_state_is_bounded() -> None:
    events = Events(ActivitySettings(max_sessions=3))
    events.clock.now = T0 + 20
    events.send(*(("user_prompt", 1.0 + i, {"session.id": f"s{i}", "event.sequence": 1}) for i in range(10)))
    events.expire()
    assert len(events.store.families[fam.SESSION_LAST.name].series) == 3
    assert histogram_by(events.store, fam.SESSION_DURATION.name)[()][0] == 7  # the least recent ended


def test_builtin_commands_are_not_prompts() -> None:
    events = Events()
    events.send(("user_prompt", 1.0, {"command_name": "/cost", "command_source": "builtin", "prompt_length": "5"}),
                ("user_prompt", 2.0, {"command_name": "/review", "command_source": "custom", "prompt_length": "7"}),
                ("user_prompt", 3.0, {"prompt_length": "38"}))
    assert events.total(fam.PROMPTS) == 2
    assert events.total(fam.COMMANDS) == 2
    assert histogram_by(events.store, fam.PROMPT_LENGTH.name)[()] == (2, 45.0)


@pytest.mark.parametrize(("attributes", "status", "attempts"), [
    ({"status_code": 400, "attempt": 1, "error": "invalid"}, "400", 1),
    ({"attempt": 3, "error": "Repeated 529 Overloaded errors"}, "529", 3),  # a final 529 names it in text only
    ({"status_code": "undefined", "error": "fetch failed"}, "none", 1),  # a connection failure
])
def test_api_errors_by_status_with_attempts(attributes: dict[str, Any], status: str, attempts: int) -> None:
    events = Events()
    events.send(("api_error", 1.0, {"model": "m", **attributes}))
    assert events.total(fam.API_ERRORS, status_code=status) == 1
    assert events.total(fam.API_ERROR_ATTEMPTS, status_code=status) == attempts


def test_cache_writes_by_lifetime() -> None:
    events = Events()
    events.send(_request(1, 1.0, cache_creation_tokens=1000, cache_creation_5m_tokens=200,
                         cache_creation_1h_tokens=800),
                _request(2, 2.0, cache_creation_tokens=300))  # no breakdown: 5-minute writes
    assert events.total(fam.CACHE_WRITES, ttl="1h") == 800
    assert events.total(fam.CACHE_WRITES, ttl="5m") == 500
