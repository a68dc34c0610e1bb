"""The status page in a real headless Chromium, fed with real captures."""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.chromium import dump_dom, screenshot
from tests.support import CLAUDE, RunningBridge, replay, settings_for_test

NOW = 1795382900.0


class _Collect(HTMLParser):
    """Text by element id, and every element's tag, from the DOM Chromium dumped."""

    def __init__(self) -> None:
        super().__init__()
        self.by_id: dict[str, str] = {}
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self._open: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag not in ("meta", "link", "br", "img", "input", "path"):
            self._open.append(attributes.get("id"))
            if attributes.get("id"):
                self.by_id[attributes["id"] or ""] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag not in ("meta", "link", "br", "img", "input", "path") and self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for element in self._open:
            if element:
                self.by_id[element] += data


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningBridge, _Collect, Path]]:
    tmp = tmp_path_factory.mktemp("page")
    bridge = RunningBridge(settings_for_test(
        tmp, budgets=[{"name": "monthly", "period": "month", "limit_usd": 0.05}]), clock=lambda: NOW)
    for run in ("t7_write_edit_acceptEdits", "t10_fail_reject_details", "t12_api_error_400", "t20_model_haiku"):
        replay(bridge, CLAUDE / run)
    url = f"http://127.0.0.1:{bridge.ports.metrics}/"
    collected = _Collect()
    collected.feed(dump_dom(url))
    shot = tmp / "status.png"
    screenshot(url, shot)
    yield bridge, collected, shot
    bridge.stop()


def test_page_shows_the_numbers(page: tuple[RunningBridge, _Collect, Path]) -> None:
    _, dom, _ = page
    cost = 0.0200862 + 0.0133908 + 0.0019022
    assert dom.by_id["cost-all-time"].strip() == f"${cost:,.4f}"
    assert dom.by_id["cost-today"].strip() == f"${cost:,.4f}"
    reads, sent = 4567 * 6, (123 + 4567 + 890) * 6
    assert dom.by_id["tokens-cache"].strip() == f"{reads:,}"
    assert dom.by_id["tokens-sent"].strip() == f"{sent:,}"
    assert dom.by_id["cache-hit"].strip() == f"{reads / sent * 100:.1f}%"
    assert dom.by_id["sessions"].strip() == "4"
    opus_saved = (4567 * 5 * 3.8 - 890 * 5 * 1.0) / 1e6
    haiku_saved = (4567 * 0.9 - 890 * 0.25) / 1e6
    assert dom.by_id["cost-saved"].strip() == f"${opus_saved + haiku_saved:,.4f}"
    assert "large_model_small_requests" in dom.by_id["insights"]
    assert "high_api_error_rate" in dom.by_id["insights"]


def test_page_has_a_budget_gauge_and_no_external_assets(page: tuple[RunningBridge, _Collect, Path]) -> None:
    _, dom, shot = page
    gauges = [attrs for tag, attrs in dom.tags if tag == "svg"]
    assert gauges
    assert gauges[0]["aria-label"] == f"{(0.0200862 + 0.0133908 + 0.0019022) / 0.05 * 100:.1f}%"
    for tag, attrs in dom.tags:  # self-contained: nothing fetched from anywhere else
        for key in ("src", "href"):
            assert not (attrs.get(key) or "").startswith(("http:", "https:", "//")), (tag, attrs)
    assert shot.stat().st_size > 10_000  # a real rendering, not an empty canvas
