"""Events into series: lenient attributes, replay detection, sessions, model switches, workflows."""

from __future__ import annotations

import pytest

from otlp_bridge.derive.activity import (
    API_REQUESTS,
    EVENTS,
    MODEL_SWITCHES,
    SESSION_DURATION,
    Activity,
    ActivitySettings,
)
from otlp_bridge.derive.query import histogram_by, total
from otlp_bridge.store.accumulator import Store
from otlp_bridge.translate.events import Event, as_bool, as_float, as_label, classify_prompt

WHO = (("job", "claude-code"), ("user_id", "u1"))


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


def _event(name: str, seq: int, ms: int, session: str = "s1", **attributes: object) -> Event:
    return Event(name, dict(attributes), ms * 1_000_000, seq, session, WHO)


def test_a_replayed_batch_counts_once_and_a_resumed_session_counts_again() -> None:
    store = Store()
    activity = Activity(store)
    batch = [_event("api_request", 1, 1000, model="m"), _event("api_request", 2, 1001, model="m")]
    assert activity.apply(batch).accepted == 2
    assert activity.apply(batch).duplicates == 2
    resumed = [_event("api_request", 0, 5000, model="m")]  # new process, same session id, sequence restarts
    assert activity.apply(resumed).accepted == 1
    assert total(store, API_REQUESTS.name) == 3
    assert total(store, EVENTS.name) == 3


def test_model_switch_and_session_duration_on_idle() -> None:
    clock_now = [0.0]
    store = Store()
    activity = Activity(store, ActivitySettings(session_idle_seconds=60), clock=lambda: clock_now[0])
    activity.apply([_event("api_request", 1, 10_000, model="claude-opus-5-5"),
                    _event("api_request", 2, 20_000, model="claude-haiku-4-5"),
                    _event("api_request", 3, 40_000, model="claude-haiku-4-5")])
    assert total(store, MODEL_SWITCHES.name) == 1
    clock_now[0] = 45.0
    assert activity.active_sessions() == {WHO: 1}
    assert activity.expire() == 0
    clock_now[0] = 101.0
    assert activity.expire() == 1
    assert histogram_by(store, SESSION_DURATION.name) == {(): (1, 30.0)}  # 10 s to 40 s


def test_session_state_is_bounded() -> None:
    store = Store()
    activity = Activity(store, ActivitySettings(max_sessions=3))
    activity.apply([_event("user_prompt", 1, 1000 + i, session=f"s{i}") for i in range(10)])
    assert len(activity.sessions) == 3
    assert histogram_by(store, SESSION_DURATION.name)[()][0] == 7  # the evicted ones ended
