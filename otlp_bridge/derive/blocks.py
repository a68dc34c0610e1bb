"""Plan windows: the rolling 5-hour blocks and the weekly window subscription users live by.

Definition (ccusage's, which users already know): a window starts at the first activity after the
previous window ended, floored to the hour, and ends `length` later (5 hours; 7 days for the week).
Activity inside a window never extends it; the first activity at or after its end opens the next.
Per user (the `user_id` label; "" for series without one), from the store's hourly period history,
so the floor is exact. For the window holding `now` (none when the last one has ended):
- spend, tokens and requests in it, its start, end and time left;
- burn rate = spend / hours since the window started (at least one minute);
- projected total = spend + burn rate × hours left.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from otlp_bridge.store.history import local_hour

BLOCK_HOURS = 5
WEEK_HOURS = 7 * 24
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
