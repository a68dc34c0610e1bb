"""The budget insight and the order of /insights, over a real store and Economics with a test clock:
"runs out at" only within the period, an overrun is never called a saving, critical first."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from otlp_bridge.config import InsightSettings
from otlp_bridge.derive.economics import Budget, Economics
from otlp_bridge.derive.insights import insights
from otlp_bridge.derive.pricing import PriceTable
from otlp_bridge.store.accumulator import Store
from tests.builders import BERLIN, COST_FAMILY, TOKEN_FAMILY, Clock, delta, store_for

TEAM = (("job", "claude-code"), ("team", "platform"))
NOW = datetime(2026, 11, 20, 12, 30, tzinfo=BERLIN)  # a Friday; the month ends in 10 days 11.5 hours


def _economics(limit: float, period: str = "month") -> tuple[Store, Economics]:
    clock = Clock(NOW)
    store = store_for(clock, "Europe/Berlin")
    economics = Economics(store, PriceTable(), [Budget("team", period, limit, (("team", "platform"),))],  # type: ignore[arg-type]
                          timezone="Europe/Berlin", burn_window_seconds=3600, clock=clock)
    return store, economics


def _spend(store: Store, moment: datetime, usd: float, n: int) -> None:
    assert store.apply([delta(COST_FAMILY, TEAM, usd, moment, stream=(TEAM, n))]).accepted == 1


def _budget_insights(store: Store, economics: Economics) -> list[dict[str, Any]]:
    return [i for i in insights(store, economics, InsightSettings()) if i["type"] == "budget_forecast_over_limit"]


def test_a_budget_on_course_to_overrun_says_when_it_runs_out_within_the_period() -> None:
    store, economics = _economics(100.0)
    _spend(store, NOW - timedelta(days=5), 60.0, 1)
    _spend(store, NOW - timedelta(minutes=20), 1.5, 2)  # burning: the forecast passes the limit
    (status,) = economics.budget_status()
    runs_out = status.exhausted_at(economics.now())
    assert runs_out is not None
    assert runs_out < status.period_end
    (found,) = _budget_insights(store, economics)
    assert found["severity"] == "warning"
    assert found["potential_savings_usd"] == 0  # forecast − limit is an overrun, not a saving
    overrun = status.forecast_usd(economics.now()) - 100.0
    assert overrun > 0
    assert found["message"] == (
        f"budget team: $61.50 of $100.00 spent this month; at ${status.burn_usd_per_hour:,.2f}/h it runs out at "
        f"{runs_out.strftime('%a %d %b %H:%M %Z')}, the month ends near "
        f"${status.forecast_usd(economics.now()):,.2f} (${overrun:,.2f} over).")


def test_a_budget_already_over_is_critical_and_names_no_moment() -> None:
    store, economics = _economics(50.0)
    _spend(store, NOW - timedelta(days=3), 60.0, 1)
    _spend(store, NOW - timedelta(minutes=20), 1.0, 2)
    (found,) = _budget_insights(store, economics)
    assert found["severity"] == "critical"
    assert found["potential_savings_usd"] == 0
    assert "runs out" not in found["message"]
    assert found["message"].startswith("budget team: $61.00 of $50.00 spent this month, over by $11.00; at $")


def test_a_day_budget_that_would_run_out_tomorrow_gives_no_insight() -> None:
    store, economics = _economics(100.0, "day")
    _spend(store, NOW.replace(hour=12, minute=10), 5.0, 1)  # $5 in the burn window: about $9/h, not enough today
    (status,) = economics.budget_status()
    assert status.forecast_usd(economics.now()) < 100.0
    assert _budget_insights(store, economics) == []


def test_critical_insights_come_first_whatever_their_savings() -> None:
    store, economics = _economics(10.0)
    _spend(store, NOW - timedelta(days=1), 20.0, 1)
    _spend(store, NOW - timedelta(minutes=10), 1.0, 2)
    model = (("model", "claude-opus-4-5"),)
    for n, (kind, tokens) in enumerate((("input", 2_000_000.0), ("cacheRead", 1_000.0), ("output", 50_000.0))):
        labels = (*model, ("type", kind))
        assert store.apply([delta(TOKEN_FAMILY, labels, tokens, NOW - timedelta(hours=1), stream=n)]).accepted == 1
    found = insights(store, economics, InsightSettings())
    assert [i["type"] for i in found][:2] == ["budget_forecast_over_limit", "low_cache_hit_ratio"]
    assert found[0]["severity"] == "critical"
    assert found[1]["potential_savings_usd"] > found[0]["potential_savings_usd"] == 0
