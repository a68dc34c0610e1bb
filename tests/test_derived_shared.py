"""Derived families are queries over the whole history: scrapes that arrive together (Prometheus
replicas, a dashboard, 40 at once) share one computation per store version and second."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from otlp_bridge.expose import api
from tests.support import CLAUDE, RunningBridge, capture_requests, settings_for_test

NOW = 1_790_000_000.0


def _overall_savings(bridge: RunningBridge) -> float:
    return bridge.scrape().samples()["claude_code_cache_savings_usd", frozenset()]


def test_parallel_scrapes_share_the_derived_families_and_a_change_recomputes_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = api.derived_families

    def counted(*args: object) -> object:
        calls.append(1)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(api, "derived_families", counted)
    bridge = RunningBridge(settings_for_test(tmp_path), clock=lambda: NOW)
    try:
        first, second = [r for r in capture_requests(CLAUDE / "t8_bash_sleep_multi_export")
                         if r.transport == "http" and r.signal == "metrics"][:2]
        assert bridge.post(first.http_path, first.decoded_body)[0] == 200
        before = len(calls)
        with ThreadPoolExecutor(8) as pool:
            savings = set(pool.map(lambda _: _overall_savings(bridge), range(8)))
        assert len(calls) == before + 1  # eight scrapes, one computation
        assert len(savings) == 1
        assert bridge.post(second.http_path, second.decoded_body)[0] == 200
        assert _overall_savings(bridge) != savings.pop()  # the store moved on
        assert len(calls) == before + 2
    finally:
        bridge.stop()
