"""Derived gauges (cache, budgets, burn rate, forecast, sessions) as Prometheus families.

Computed when scraped from the store's exact totals, so they never drift from them.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import Metric

from otlp_bridge.derive.activity import Activity
from otlp_bridge.derive.blocks import plan_window_families
from otlp_bridge.derive.economics import Economics, TokenTotals


def _gauge(name: str, help_: str) -> Metric:
    return Metric(name, help_, "gauge")


def derived_families(economics: Economics, activity: Activity) -> Iterator[Metric]:
    yield from _cache(economics)
    yield from _money(economics)
    yield from _budgets(economics)
    yield from plan_window_families(economics.store.history, economics.now())
    active = _gauge("claude_code_active_sessions", "Sessions with an event within the active window.")
    for who, count in sorted(activity.active_sessions(economics.clock()).items()):
        active.add_sample(active.name, dict(who), count)
    yield active
    unpriced = _gauge("otlp_bridge_unpriced_model", "Models seen in token usage with no price (1 each).")
    for model in economics.unpriced_models():
        unpriced.add_sample(unpriced.name, {"model": model}, 1)
    yield unpriced


def _cache(economics: Economics) -> Iterator[Metric]:
    tokens = economics.tokens_by_model()
    overall = TokenTotals.sum_of(tokens.values())
    ratio = _gauge("claude_code_cache_hit_ratio", "cacheRead / (input + cacheRead + cacheCreation) tokens.")
    for model, totals in sorted(tokens.items()):
        if totals.cache_hit_ratio is not None:
            ratio.add_sample(ratio.name, {"model": model}, totals.cache_hit_ratio)
    if overall.cache_hit_ratio is not None:
        ratio.add_sample(ratio.name, {}, overall.cache_hit_ratio)
    yield ratio

    savings = _gauge("claude_code_cache_savings_usd",
                     "Net USD saved by the prompt cache: reads at input minus read price, less the write premium.")
    priced = economics.savings_by_model()
    for model, saved in sorted(priced.items()):
        if saved is not None:
            savings.add_sample(savings.name, {"model": model}, saved)
    if priced:
        savings.add_sample(savings.name, {}, sum(v for v in priced.values() if v is not None))
    yield savings


def _money(economics: Economics) -> Iterator[Metric]:
    spend = _gauge("claude_code_spend_usd", "Spend in the current day, week and month (configured timezone).")
    for period in ("day", "week", "month"):
        spend.add_sample(spend.name, {"period": period}, economics.spent(period))
    yield spend
    plan = economics.plan_value_ratio()
    if plan is not None:
        value = _gauge("claude_code_plan_value_ratio", "API-equivalent spend this month / subscription price.")
        value.add_sample(value.name, {}, plan)
        yield value


def _budgets(economics: Economics) -> Iterator[Metric]:
    now = economics.now()
    budget_families = {
        "limit": _gauge("claude_code_budget_limit_usd", "Budget limit for the period."),
        "spent": _gauge("claude_code_budget_spent_usd", "Spent in the budget's current period."),
        "remaining": _gauge("claude_code_budget_remaining_usd", "Limit minus spent (negative when over)."),
        "used": _gauge("claude_code_budget_used_ratio", "Spent / limit."),
        "burn": _gauge("claude_code_budget_burn_rate_usd_per_hour", "Spend rate over the burn window."),
        "forecast": _gauge("claude_code_budget_forecast_usd", "Period-end spend at the current burn rate."),
        "exhausted": _gauge("claude_code_budget_exhausted_timestamp_seconds",
                            "When the limit is reached at the current burn rate (absent: not at this rate)."),
    }
    for status in economics.budget_status():
        labels = {"budget": status.name, "period": status.period}
        values = {"limit": status.limit_usd, "spent": status.spent_usd, "remaining": status.remaining_usd,
                  "used": status.used_ratio, "burn": status.burn_usd_per_hour, "forecast": status.forecast_usd(now)}
        for key, value in values.items():
            budget_families[key].add_sample(budget_families[key].name, labels, value)
        exhausted = status.exhausted_at(now)
        if exhausted is not None:
            budget_families["exhausted"].add_sample(budget_families["exhausted"].name, labels, exhausted.timestamp())
    yield from budget_families.values()
