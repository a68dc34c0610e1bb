"""Rule-based recommendations, each with the money it is worth (`potential_savings_usd`).

- low_cache_hit_ratio: a model's cache hit ratio < low_cache_hit_ratio (with ≥ min_tokens sent).
  Saving: (target × sent − cacheRead) × (input − cache_read price).
- large_model_small_requests: a model pricier than smaller_model averages < small_request_output_tokens
  output tokens per request (≥ min_requests). Saving: its tokens' cost − the same tokens at smaller_model's
  prices.
- high_input_output_ratio: tokens sent / received > input_output_ratio. Saving: half the input and
  cache-read cost (what halving the context would save).
- high_api_error_rate: errors / (requests + errors) > api_error_ratio. Saving: 0.
- api_retries_exhausted: any request failed after all retries. Saving: 0.
- tool_failures: a tool's failure ratio > tool_failure_ratio (≥ min_tool_calls). Saving: 0.
- budget_forecast_over_limit: a budget's period-end forecast > its limit (critical once spent ≥ limit).
  Saving: 0 — forecast − limit is an overrun, named in the message with when the limit is reached
  (only if that falls within the period).
- telemetry_silent: a user/device that sent events has been silent > silent_after. Saving: 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from otlp_bridge import families as act
from otlp_bridge.config import InsightSettings
from otlp_bridge.derive.economics import Economics, TokenTotals, cost_at
from otlp_bridge.derive.ledger import agent_cost_insights
from otlp_bridge.derive.query import histogram_by, series_of, total, totals_by
from otlp_bridge.store.accumulator import Store


def usd(value: float) -> str:
    """Dollars to the cent, or to a hundredth of a cent below one dollar (small sessions matter too)."""
    return f"${value:,.4f}" if abs(value) < 1 else f"${value:,.2f}"


SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}  # critical first, then the largest saving
_PERIOD_WORDS = {"day": ("today", "the day"), "week": ("this week", "the week"),
                 "month": ("this month", "the month"), "5h": ("in the last 5 h", "the 5-hour window")}


@dataclass
class Insight:
    type: str
    severity: str  # info, warning, critical
    message: str
    potential_savings_usd: float = 0.0
    scope: dict[str, str] = field(default_factory=dict)


def insights(store: Store, economics: Economics, settings: InsightSettings) -> list[dict[str, Any]]:
    found: list[Insight] = []
    tokens = economics.tokens_by_model()
    found += _cache(economics, tokens, settings)
    found += _model_size(store, economics, tokens, settings)
    found += _context(economics, tokens, settings)
    found += _errors(store, settings)
    found += _tools(store, settings)
    found += _budgets(economics)
    found += _silence(store, economics, settings)
    found += [Insight(**row) for row in agent_cost_insights(store)]
    found.sort(key=lambda i: (SEVERITY_ORDER[i.severity], -i.potential_savings_usd, i.type))
    return [{**asdict(i), "potential_savings_usd": round(i.potential_savings_usd, 6)} for i in found]


def _cache(economics: Economics, tokens: dict[str, TokenTotals], s: InsightSettings) -> list[Insight]:
    out = []
    for model, t in tokens.items():
        ratio, price = t.cache_hit_ratio, economics.prices.price(model)
        if ratio is None or price is None or t.sent < s.min_tokens or ratio >= s.low_cache_hit_ratio:
            continue
        extra_reads = max(s.target_cache_hit_ratio * t.sent - t.cache_read, 0.0)
        out.append(Insight(
            "low_cache_hit_ratio", "warning",
            f"{model}: only {ratio:.0%} of input tokens came from the prompt cache; keep long-lived context "
            f"(CLAUDE.md, tools) stable at the start of the prompt and avoid editing it mid-session.",
            extra_reads * (price.input - price.cache_read) / 1e6, {"model": model}))
    return out


def _model_size(store: Store, economics: Economics, tokens: dict[str, TokenTotals],
                s: InsightSettings) -> list[Insight]:
    smaller = economics.prices.price(s.smaller_model)
    if smaller is None:
        return []
    outputs = histogram_by(store, act.API_OUTPUT.name, "model")
    out = []
    for model, t in tokens.items():
        price = economics.prices.price(model)
        count, output_sum = outputs.get((model,), (0, 0.0))
        if price is None or price.input <= smaller.input or count < s.min_requests:
            continue
        mean_output = output_sum / count
        if mean_output >= s.small_request_output_tokens:
            continue
        saving = cost_at(t, price) - cost_at(t, smaller)
        if saving <= 0:
            continue
        out.append(Insight(
            "large_model_small_requests", "info",
            f"{model} answered {count:.0f} requests averaging {mean_output:.0f} output tokens; "
            f"{s.smaller_model} would have cost {usd(saving)} less for the same tokens.",
            saving, {"model": model, "suggested_model": s.smaller_model}))
    return out


def _context(economics: Economics, tokens: dict[str, TokenTotals], s: InsightSettings) -> list[Insight]:
    overall = TokenTotals.sum_of(tokens.values())
    if not overall.output or overall.sent / overall.output <= s.input_output_ratio:
        return []
    saving = 0.0
    for model, t in tokens.items():
        price = economics.prices.price(model)
        if price is not None:
            saving += 0.5 * (t.input * price.input + t.cache_read * price.cache_read) / 1e6
    return [Insight(
        "high_input_output_ratio", "info",
        f"{overall.sent / overall.output:.0f} tokens sent per token received: long sessions carry their whole "
        f"history; /compact or /clear between tasks shrinks what every request re-sends.", saving)]


def _errors(store: Store, s: InsightSettings) -> list[Insight]:
    errors = totals_by(store, act.API_ERRORS.name, "model")
    requests = totals_by(store, act.API_REQUESTS.name, "model")
    out = []
    for (model,), failed in errors.items():
        attempts = failed + requests.get((model,), 0.0)
        if failed and failed / attempts > s.api_error_ratio:
            by_status = {status: v for (m, status), v in totals_by(store, act.API_ERRORS.name, "model",
                                                                   "status_code").items() if m == model}
            statuses = ", ".join(f"{k}: {v:.0f}" for k, v in sorted(by_status.items()))
            out.append(Insight("high_api_error_rate", "warning",
                               f"{model}: {failed / attempts:.0%} of API attempts failed ({statuses}).",
                               0.0, {"model": model}))
    exhausted = total(store, act.API_EXHAUSTED.name)
    if exhausted:
        out.append(Insight("api_retries_exhausted", "critical",
                           f"{exhausted:.0f} requests failed after all retries: work was lost.", 0.0))
    return out


def _tools(store: Store, s: InsightSettings) -> list[Insight]:
    calls = totals_by(store, act.TOOL_CALLS.name, "tool_name", "success")
    out = []
    for tool in sorted({t for t, _ in calls}):
        failed, ok = calls.get((tool, "false"), 0.0), calls.get((tool, "true"), 0.0)
        if failed + ok >= s.min_tool_calls and failed / (failed + ok) > s.tool_failure_ratio:
            out.append(Insight("tool_failures", "warning",
                               f"{tool} failed {failed:.0f} of {failed + ok:.0f} calls.", 0.0, {"tool_name": tool}))
    return out


def _budgets(economics: Economics) -> list[Insight]:
    now = economics.now()
    out = []
    for status in economics.budget_status():
        forecast = status.forecast_usd(now)
        if forecast <= status.limit_usd:
            continue
        over = status.spent_usd >= status.limit_usd
        spent_when, period_end = _PERIOD_WORDS.get(status.period, (f"this {status.period}", status.period))
        message = f"budget {status.name}: {usd(status.spent_usd)} of {usd(status.limit_usd)} spent {spent_when}"
        if over:
            message += f", over by {usd(status.spent_usd - status.limit_usd)}"
        message += f"; at {usd(status.burn_usd_per_hour)}/h"
        runs_out = status.exhausted_at(now)
        if runs_out is not None and runs_out < status.period_end:  # never a moment after the period
            message += f" it runs out at {_moment(runs_out, now)}"
        message += f", {period_end} ends near {usd(forecast)} ({usd(forecast - status.limit_usd)} over)."
        out.append(Insight("budget_forecast_over_limit", "critical" if over else "warning", message, 0.0,
                           {"budget": status.name}))
    return out


def _moment(at: datetime, now: datetime) -> str:
    """Local time, with the date when it is not today."""
    return at.strftime("%H:%M %Z") if at.date() == now.date() else at.strftime("%a %d %b %H:%M %Z")


def _silence(store: Store, economics: Economics, s: InsightSettings) -> list[Insight]:
    now = economics.now().timestamp()
    out = []
    for labels, seen in series_of(store, act.LAST_SEEN.name):
        quiet = now - seen
        if quiet > s.silent_after.total_seconds():
            who = dict(labels)
            name = who.get("user_email") or who.get("user_id", "?")[:12]
            out.append(Insight("telemetry_silent", "warning",
                               f"{name} has sent nothing for {quiet / 3600:.1f} h: idle, or telemetry broken?",
                               0.0, who))
    return out
