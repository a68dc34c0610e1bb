"""The status page in a real headless Chromium (DevTools protocol), fed with real captures and real
transcripts imported into the bridge's history: numbers against /summary, no console errors, nothing
wider than a phone (390 px) or a laptop (1280 px), and a screenshot of each."""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from otlp_bridge.derive.economics import TokenTotals, cache_savings
from otlp_bridge.derive.insights import usd
from otlp_bridge.derive.pricing import PriceTable
from tests.cdp import Rendering, render
from tests.support import CLAUDE, RunningBridge, replay, settings_for_test
from tests.test_agents import OTHER, replay_recorded
from tests.test_transcripts import CAPTURES, SESSIONS, read
from tests.test_transcripts_history import COST, OLD, older_copy

NOW = 1795421519.0 + 60  # Monday 2026-11-23 08:12:59 UTC, a minute after the last capture
WIDTHS = (390, 1280)
PROBE = """({
  rects: [...document.querySelectorAll('#daily-chart rect')].map(r => [r.dataset.day, r.dataset.model,
                                                                        Number(r.dataset.usd)]),
  gauges: [...document.querySelectorAll('svg.gauge')].map(g => g.getAttribute('aria-label')),
  budget: [...document.querySelectorAll('.budget')].map(b => b.textContent),
  blocks: [...document.querySelectorAll('#plan-windows .block-spent')].map(e => e.textContent),
  weeks: [...document.querySelectorAll('#plan-windows .week-spent')].map(e => e.textContent),
  people: [...document.querySelectorAll('#people tr')].slice(1).map(tr => [...tr.cells].map(c => c.textContent)),
  agents: [...document.querySelectorAll('#agents tr')].slice(1).map(tr => [
    tr.cells[0].querySelector('b').textContent, tr.querySelector('.agent-spend').textContent,
    tr.querySelector('.agent-requests').textContent,
    Object.fromEntries([...tr.querySelectorAll('.tok')].map(s => [s.dataset.type, s.querySelector('b').textContent]))]),
  tools: [...document.querySelectorAll('#tools tr')].slice(1).map(tr => [...tr.cells].map(c => c.textContent)),
  linked: [...document.querySelectorAll('[src],[href]')].map(e => e.getAttribute('src') || e.getAttribute('href')),
})"""


@dataclass
class Page:
    summary: dict[str, Any]
    insights: list[dict[str, Any]]
    renderings: dict[int, Rendering]
    shots: dict[int, Path]


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    tmp = tmp_path_factory.mktemp("page")
    settings = settings_for_test(tmp, budgets=[{"name": "daily", "period": "day", "limit_usd": 0.5}])
    live = RunningBridge(settings, clock=lambda: NOW)
    for session in SESSIONS:  # a morning with telemetry on
        replay(live, session / "otlp")
    for run in ("t10_fail_reject_details", "t12_api_error_400"):  # last night: a failing tool, an API error
        replay(live, CLAUDE / run)
    for run in ("gemini-0.61.0/default-model-http", "codex-0.169.0/two-tools-grpc"):  # the other agents
        replay_recorded(live, OTHER / run)
    live.stop()
    # The weeks before telemetry, from transcripts only.
    older = [older_copy(s, tmp / "transcripts", days) for s in OLD for days in (3, 10)]
    imported = subprocess.run([sys.executable, "-m", "otlp_bridge", "import", *map(str, older),
                               "--state-dir", str(tmp / "state")], capture_output=True, text=True, timeout=120,
                              check=False)
    assert imported.returncode == 0, imported.stderr
    bridge = RunningBridge(settings, clock=lambda: NOW)
    try:
        url = f"http://127.0.0.1:{bridge.ports.metrics}/"
        shots = {width: tmp / f"status-{width}.png" for width in WIDTHS}
        yield Page(bridge.get_json("/summary"), bridge.get_json("/insights")["insights"],
                   {width: render(url, width, screenshot=shots[width], probe=PROBE) for width in WIDTHS}, shots)
    finally:
        bridge.stop()


@pytest.mark.parametrize("width", WIDTHS)
def test_page_fits_and_renders_cleanly(page: Page, width: int) -> None:
    shown = page.renderings[width]
    assert shown.errors == []
    assert shown.scroll_width <= width
    assert shown.too_wide == []
    assert page.shots[width].stat().st_size > 10_000  # a real rendering, not an empty canvas
    assert all(link.startswith(("data:", "#")) for link in shown.probed["linked"])  # self-contained


def test_spend_tokens_and_activity_match_the_summary(page: Page) -> None:
    text, s = page.renderings[1280].text_by_id, page.summary
    for element, key in (("cost-all-time", "all_time"), ("cost-today", "today"), ("cost-week", "this_week"),
                         ("cost-month", "this_month"), ("cost-saved", "saved_by_cache")):
        assert text[element] == usd(s["cost_usd"][key]), element
    assert text["tokens-sent"] == f'{s["tokens"]["sent"]:,.0f}'
    assert text["tokens-cache"] == f'{s["tokens"]["from_cache"]:,.0f}'
    assert text["cache-hit"] == f'{s["tokens"]["cache_hit_ratio"] * 100:.1f}%'
    assert text["sessions"] == f'{s["activity"]["sessions"]:.0f}'
    # the summary itself: this morning's telemetry today; the imported weeks in this month's history, not in
    # the live totals (all time is telemetry only, all of it this month)
    assert s["cost_usd"]["today"] == pytest.approx(sum(COST.values()), rel=1e-9)
    assert s["cost_usd"]["this_month"] == pytest.approx(
        s["cost_usd"]["all_time"] + 2 * sum(COST[o] for o in OLD), rel=1e-9)


def test_daily_bars_are_the_history(page: Page) -> None:
    shown = page.renderings[1280]
    days = page.summary["daily"]
    assert len(days) == 30
    assert shown.text_by_id["daily-total"] == usd(sum(d["cost_usd"] for d in days))
    drawn: dict[tuple[str, str], float] = defaultdict(float)
    for day, model, value in shown.probed["rects"]:
        drawn[day, model] += value
    assert dict(drawn) == {(d["date"], m): v for d in days for m, v in d["by_model"].items() if v > 0}
    # The imported Friday (3 days back) holds s1–s4 exactly as Claude Code priced them.
    # Cache savings per day: the telemetry's (all of it this month) plus the imported weeks', each cache
    # write at the price of its lifetime.
    imported = 0.0
    for usage in read(*(CAPTURES / o / "transcripts" for o in OLD))[1].records:
        tokens = TokenTotals(usage.input, usage.output, usage.cache_read, usage.cache_creation, usage.cache_write_1h)
        imported += cache_savings(tokens, PriceTable().price(usage.model))  # type: ignore[arg-type]
    assert sum(d["cache_savings_usd"] or 0.0 for d in days) == pytest.approx(
        page.summary["cost_usd"]["saved_by_cache"] + 2 * imported, rel=1e-9)
    friday = next(d for d in days if d["date"] == "2026-11-20")
    assert friday["cost_usd"] == pytest.approx(sum(COST[o] for o in OLD), rel=1e-9)
    assert friday["by_model"]["claude-haiku-4-5"] == pytest.approx(COST["s2_haiku_parallel_tools"], rel=1e-9)


def test_plan_windows_budgets_people_tools_and_insights(page: Page) -> None:
    probed, s = page.renderings[1280].probed, page.summary
    blocks = sorted((w for w in s["plan_windows"] if w["kind"] == "5h"), key=lambda w: -w["cost_usd"])
    assert blocks
    assert probed["blocks"] == [usd(w["cost_usd"]) for w in blocks][:8]
    assert all(w["start"].startswith("2026-11-23T08:00") for w in blocks)  # floored to the first activity's hour
    assert (blocks[0]["cost_usd"], blocks[0]["requests"]) == (pytest.approx(COST["s1_opus_tools_vary"]), 4)
    budget = s["budgets"][0]
    assert probed["gauges"] == [f'{budget["used_ratio"] * 100:.1f}%']
    assert usd(budget["forecast_usd"]) in probed["budget"][0]
    assert budget["exhausted_at"] is not None
    assert f'runs out at {budget["exhausted_at"][:16].replace("T", " ")}' in probed["budget"][0]
    assert [row[1] for row in probed["people"]] == [usd(p["cost_usd"]) for p in s["people"]]
    assert len(probed["people"]) == len(s["people"]) > 1
    shown_tools = {row[0]: row[2] for row in probed["tools"]}
    for tool in s["tools"]:
        assert shown_tools[tool["tool"]] == f'{tool["failure_ratio"] * 100:.1f}%'
    assert any(t["failures"] for t in s["tools"])
    for insight in page.insights:
        assert insight["type"] in page.renderings[1280].text_by_id["insights"]


def test_agents_section_is_the_ledger(page: Page) -> None:
    """One row per agent, largest spend first, with the ledger's spend, requests and tokens by type."""
    shown, ledger = page.renderings[1280], page.summary["agents"]
    assert [row[0] for row in shown.probed["agents"]] == [a["agent"] for a in ledger["agents"]]
    assert {a["agent"] for a in ledger["agents"]} == {"claude-code", "gemini-cli", "codex"}
    for (_, spend, requests, tokens), agent in zip(shown.probed["agents"], ledger["agents"], strict=True):
        assert spend == usd(agent["cost_usd"]), agent["agent"]
        assert requests == f'{agent["requests"]:,.0f}', agent["agent"]
        assert tokens == {t: f"{v:,.0f}" for t, v in agent["tokens"].items() if v}, agent["agent"]
        assert min(agent["requests"], agent["cost_usd"]) > 0, agent["agent"]
        assert tokens, agent["agent"]
    assert shown.text_by_id["agents-total"] == usd(ledger["cost_usd"])
    # Claude Code's row is its own telemetry: the cost it reported, all of it live.
    claude = next(a for a in ledger["agents"] if a["agent"] == "claude-code")
    assert claude["cost_usd"] == pytest.approx(page.summary["cost_usd"]["all_time"], rel=1e-9)
