"""Plan windows: the rolling 5-hour blocks and the weekly window subscription users live by.

Definition (ccusage's, which users already know): a window starts at the first activity after the
previous window ended, floored to the hour, and ends `length` later (5 hours; 7 days for the week).
Activity inside a window never extends it; the first activity at or after its end opens the next.
Per user (the `user_id` label; "" for series without one), from the store's hourly period history,
so the floor is exact. For the window holding `now` (none when the last one has ended):
- spend, tokens and requests in it, its start, end and time left;
- burn rate = spend / hours since the window started (at least one minute);
- projected total = spend + burn rate × hours left.
Requests count only where the history keeps `claude_code_api_requests_total`. A chain of windows
is followed back two weeks at most: activity older than that does not move today's windows (and a
scrape stays cheap on a long history).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from prometheus_client.metrics_core import Metric

from otlp_bridge.families import API_REQUESTS, COST, TOKENS
from otlp_bridge.store.history import History, hours_between, local_hour

BLOCK_HOURS = 5
WEEK_HOURS = 7 * 24
LOOKBACK_HOURS = 2 * WEEK_HOURS  # how far back a chain of windows is followed
_MIN_ELAPSED_HOURS = 1 / 60


@dataclass
class HourActivity:
    cost_usd: float = 0.0
    tokens: float = 0.0
    requests: float = 0.0

    @property
    def active(self) -> bool:
        return self.cost_usd > 0 or self.tokens > 0 or self.requests > 0


def windows(hours: Mapping[int, HourActivity], length: int) -> list[tuple[int, int]]:
    """(start hour, end hour) of every window, oldest first; hours are indexes (seconds // 3600)."""
    out: list[tuple[int, int]] = []
    for hour in sorted(h for h, activity in hours.items() if activity.active):
        if not out or hour >= out[-1][1]:
            out.append((hour, hour + length))
    return out


@dataclass(frozen=True)
class PlanWindow:
    kind: str  # "5h" or "week"
    user: str
    start: datetime
    end: datetime
    cost_usd: float
    tokens: float
    requests: float

    def hours_left(self, now: datetime) -> float:
        return max((self.end - now).total_seconds(), 0.0) / 3600

    def burn_rate_usd_per_hour(self, now: datetime) -> float:
        elapsed = max((now - self.start).total_seconds() / 3600, _MIN_ELAPSED_HOURS)
        return self.cost_usd / elapsed

    def projected_usd(self, now: datetime) -> float:
        return self.cost_usd + self.burn_rate_usd_per_hour(now) * self.hours_left(now)


def hour_start(hour: int, tz: tzinfo) -> datetime:
    """The moment a local hour index begins (the earlier one when clocks go back)."""
    naive = datetime(1970, 1, 1) + timedelta(hours=hour)
    return naive.replace(tzinfo=tz, fold=0)


def current_window(kind: str, user: str, hours: Mapping[int, HourActivity], length: int,
                   now: datetime) -> PlanWindow | None:
    """The window holding `now` (an aware time), with what it holds so far; None when none is open."""
    tz = now.tzinfo or UTC
    now_hour = local_hour(now.timestamp(), tz)
    found = windows({h: a for h, a in hours.items() if h <= now_hour}, length)
    if not found or now_hour >= found[-1][1]:
        return None
    first, last = found[-1]
    held = [hours[h] for h in range(first, min(last, now_hour + 1)) if h in hours]
    return PlanWindow(kind, user, hour_start(first, tz), hour_start(last, tz), sum(a.cost_usd for a in held),
                      sum(a.tokens for a in held), sum(a.requests for a in held))


def plan_windows(history: History | None, now: datetime) -> list[PlanWindow]:
    """The open 5-hour block and weekly window of every user with activity in the last `LOOKBACK_HOURS`."""
    if history is None:
        return []
    now_hour = local_hour(now.timestamp(), now.tzinfo or UTC)
    first = now_hour - LOOKBACK_HOURS
    sums: dict[str, dict[str, dict[int, float]]] = {}  # user → field → hour → value
    for family, field_name in ((COST, "cost_usd"), (TOKENS, "tokens"), (API_REQUESTS.name, "requests")):
        for labels, per_hour in history.series(family):
            user = next((v for k, v in labels if k == "user_id"), "")
            into = sums.setdefault(user, {}).setdefault(field_name, {})
            for hour, value in hours_between(per_hour, first, now_hour + 1):
                into[hour] = into.get(hour, 0.0) + value
    found = []
    for user, fields in sorted(sums.items()):
        hours = {h: HourActivity(fields.get("cost_usd", {}).get(h, 0.0), fields.get("tokens", {}).get(h, 0.0),
                                 fields.get("requests", {}).get(h, 0.0))
                 for h in set().union(*fields.values())}
        for kind, length in (("5h", BLOCK_HOURS), ("week", WEEK_HOURS)):
            window = current_window(kind, user, hours, length, now)
            if window is not None:
                found.append(window)
    return found


def window_row(window: PlanWindow, now: datetime, *, requests_known: bool) -> dict[str, Any]:
    """A window as `/summary` shows it (`requests` null where the history does not count them)."""
    return {"kind": window.kind, "user": window.user, "start": window.start.isoformat(timespec="seconds"),
            "end": window.end.isoformat(timespec="seconds"),
            "seconds_left": round(window.hours_left(now) * 3600, 1),
            "seconds_total": (window.end - window.start).total_seconds(),
            "cost_usd": round(window.cost_usd, 10), "tokens": window.tokens,
            "requests": window.requests if requests_known else None,
            "burn_rate_usd_per_hour": round(window.burn_rate_usd_per_hour(now), 10),
            "projected_usd": round(window.projected_usd(now), 10)}


GAUGES = {
    "spent": ("claude_code_plan_window_spent_usd", "Spend in the user's current plan window (5h block or week)."),
    "tokens": ("claude_code_plan_window_tokens", "Tokens in the user's current plan window."),
    "requests": ("claude_code_plan_window_requests", "API requests in the user's current plan window."),
    "end": ("claude_code_plan_window_end_timestamp_seconds", "When the user's current plan window ends."),
    "burn": ("claude_code_plan_window_burn_rate_usd_per_hour", "Spend per hour since the window started."),
    "projected": ("claude_code_plan_window_projected_usd", "Window-end spend at the current burn rate."),
}


def requests_in_history(history: History | None) -> bool:
    return history is not None and API_REQUESTS.name in history.families


def plan_window_families(history: History | None, now: datetime) -> Iterator[Metric]:
    families = {key: Metric(name, help_, "gauge") for key, (name, help_) in GAUGES.items()}
    requests_known = requests_in_history(history)
    for window in plan_windows(history, now):
        labels = {"window": window.kind, **({"user_id": window.user} if window.user else {})}
        values = {"spent": window.cost_usd, "tokens": window.tokens, "end": window.end.timestamp(),
                  "burn": window.burn_rate_usd_per_hour(now), "projected": window.projected_usd(now)}
        if requests_known:
            values["requests"] = window.requests
        for key, value in values.items():
            families[key].add_sample(families[key].name, labels, value)
    yield from families.values()
