"""The `/summary` document: what people ask, answered from the store's exact totals."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from otlp_bridge import families as fam
from otlp_bridge.derive import trends
from otlp_bridge.derive.activity import Activity
from otlp_bridge.derive.blocks import plan_windows, requests_in_history, window_row
from otlp_bridge.derive.economics import Economics, TokenTotals
from otlp_bridge.derive.ledger import agents_summary
from otlp_bridge.derive.query import histogram_by, series_of, total, totals_by
from otlp_bridge.store.accumulator import Store


def _round(value: float | None, digits: int = 10) -> float | None:
    """Float noise off, nothing a cent could notice."""
    return None if value is None else round(value, digits)


def _most(counts: dict[tuple[str, ...], float]) -> list[tuple[tuple[str, ...], float]]:
    return sorted(counts.items(), key=lambda item: item[1], reverse=True)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="seconds")


def summary(store: Store, economics: Economics, activity: Activity, top: int = 10) -> dict[str, Any]:
    now = economics.now()
    tokens = economics.tokens_by_model()
    overall = TokenTotals.sum_of(tokens.values())
    savings = economics.savings_by_model()
    costs = economics.cost_by_model()
    requests = {model: v for (model,), v in totals_by(store, fam.API_REQUESTS.name, "model").items()}
    models = [
        {"model": model, "cost_usd": _round(costs.get(model, 0.0)), "requests": requests.get(model, 0.0),
         "tokens": {"input": t.input, "output": t.output, "cache_read": t.cache_read,
                    "cache_creation": t.cache_creation},
         "cache_hit_ratio": _round(t.cache_hit_ratio), "cache_savings_usd": _round(savings.get(model))}
        for model, t in sorted(tokens.items(), key=lambda item: costs.get(item[0], 0.0), reverse=True)
    ]

    calls = totals_by(store, fam.TOOL_CALLS.name, "tool_name", "success")
    durations = histogram_by(store, fam.TOOL_DURATION.name, "tool_name")
    by_calls = sorted({tool for tool, _ in calls},
                      key=lambda tool: calls.get((tool, "true"), 0.0) + calls.get((tool, "false"), 0.0), reverse=True)
    tools = []
    for tool in by_calls:
        ok, failed = calls.get((tool, "true"), 0.0), calls.get((tool, "false"), 0.0)
        count, seconds = durations.get((tool,), (0, 0.0))
        tools.append({"tool": tool, "calls": ok + failed, "failures": failed,
                      "failure_ratio": _round(failed / (ok + failed)) if ok + failed else None,
                      "mean_duration_seconds": _round(seconds / count) if count else None})

    api_requests = total(store, fam.API_REQUESTS.name)
    errors = totals_by(store, fam.API_ERRORS.name, "status_code")
    error_count = sum(errors.values())
    budgets = [
        {"name": s.name, "period": s.period, "period_start": _iso(s.period_start), "period_end": _iso(s.period_end),
         "limit_usd": s.limit_usd, "spent_usd": _round(s.spent_usd), "remaining_usd": _round(s.remaining_usd),
         "used_ratio": _round(s.used_ratio), "burn_rate_usd_per_hour": _round(s.burn_usd_per_hour),
         "forecast_usd": _round(s.forecast_usd(now)), "exhausted_at": _iso(s.exhausted_at(now))}
        for s in economics.budget_status()
    ]
    last_seen = [
        {**dict(labels), "timestamp": _iso(datetime.fromtimestamp(value, now.tzinfo)),
         "seconds_ago": round(now.timestamp() - value, 1)}
        for labels, value in sorted(series_of(store, fam.LAST_SEEN.name), key=lambda pair: pair[1], reverse=True)]
    plan = economics.plan_value_ratio()
    return {
        "generated_at": _iso(now),
        "tokens": {
            "sent": overall.sent, "received": overall.output, "from_cache": overall.cache_read,
            "input": overall.input, "cache_creation": overall.cache_creation,
            "cache_hit_ratio": _round(overall.cache_hit_ratio),
        },
        "cost_usd": {
            "today": _round(economics.spent("day")), "this_week": _round(economics.spent("week")),
            "this_month": _round(economics.spent("month")), "all_time": _round(total(store, fam.COST)),
            "saved_by_cache": _round(sum(v for v in savings.values() if v is not None)),
            "subscription_usd_per_month": economics.subscription or None,
            "plan_value_ratio": _round(plan),
        },
        "budgets": budgets,
        "models": models[:top],
        "unpriced_models": economics.unpriced_models(),
        "tools": tools[:top],
        "commands": [{"command": c, "count": v} for (c,), v in _most(totals_by(store, fam.COMMANDS.name,
                                                                                "command_name"))][:top],
        "workflows": [{"workflow": w, "count": v} for (w,), v in _most(totals_by(store, fam.WORKFLOWS.name,
                                                                                 "workflow"))],
        "api": {"requests": api_requests, "errors": error_count,
                "error_ratio": _round(error_count / (api_requests + error_count)) if api_requests + error_count
                else None,
                "errors_by_status": {status: v for (status,), v in errors.items()},
                "retries_exhausted": total(store, fam.API_EXHAUSTED.name)},
        "activity": {
            "sessions": total(store, "claude_code_session_count_total"),
            "active_sessions": sum(activity.active_sessions(now.timestamp()).values()),
            "prompts": total(store, fam.PROMPTS.name),
            "lines_added": total(store, "claude_code_lines_of_code_count_total", {"type": "added"}),
            "lines_removed": total(store, "claude_code_lines_of_code_count_total", {"type": "removed"}),
            "commits": total(store, "claude_code_commit_count_total"),
            "pull_requests": total(store, "claude_code_pull_request_count_total"),
            "active_time_seconds": total(store, "claude_code_active_time_seconds_total"),
        },
        "last_seen": last_seen,
        "agents": agents_summary(store),  # every coding agent in one ledger (derive/ledger.py)
        # spend over time, per person, and the open plan windows (derive/trends.py, derive/blocks.py)
        "daily": trends.daily(economics), "people": trends.people(economics),
        "plan_windows": [window_row(w, now, requests_known=requests_in_history(store.history))
                         for w in plan_windows(store.history, now)],
    }
