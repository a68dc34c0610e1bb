"""What the money says: cache efficiency and savings, budgets, burn rate, forecast, plan value.

Formulas (USD; prices per million tokens, from `pricing`):
- cache hit ratio = cacheRead / (input + cacheRead + cacheCreation)
- net cache savings = cacheRead × (input − cache_read) − cacheCreation × (cache_write_5m − input)
  (what reads saved over paying full input price, less the premium paid to write the cache)
- period spend = the sum of `claude_code.cost.usage` increases whose point time falls in the
  period (in the configured timezone) and whose labels match the budget — the same increases as
  the totals, so it is exact; kept durable in the store.
- burn rate = spend in the last `burn_window` / its length in hours
- forecast = period spend + burn rate × hours left in the period
- exhausted at = now + (limit − spent) / burn rate
- plan value = API-equivalent spend this month / subscription price per month
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from otlp_bridge.derive.pricing import Price, PriceTable
from otlp_bridge.derive.query import totals_by
from otlp_bridge.store.accumulator import Store
from otlp_bridge.translate.metrics import FamilyMeta, Kind, Labels

COST = "claude_code_cost_usage_USD_total"
TOKENS = "claude_code_token_usage_tokens_total"
INTERNAL_PREFIX = "otlp_bridge_internal_"
SPEND = FamilyMeta(INTERNAL_PREFIX + "spend_usd_total", Kind.COUNTER, "Spend per scope and period (internal).")
ALL = "total"  # the scope of the implicit day/week/month totals that need no budget


def budget_scope(name: str) -> str:
    """Budgets get a namespace of their own, so no budget name can collide with ALL."""
    return f"budget:{name}"

Period = Literal["day", "week", "month"]


@dataclass(frozen=True)
class Budget:
    name: str
    period: Period
    limit_usd: float
    match: tuple[tuple[str, str], ...] = ()  # label → value, all must match

    def matches(self, labels: Labels) -> bool:
        present = dict(labels)
        return all(present.get(k) == v for k, v in self.match)


@dataclass(frozen=True)
class BudgetStatus:
    name: str
    period: Period
    period_start: datetime
    period_end: datetime
    limit_usd: float
    spent_usd: float
    burn_usd_per_hour: float

    @property
    def remaining_usd(self) -> float:
        return self.limit_usd - self.spent_usd

    @property
    def used_ratio(self) -> float:
        return self.spent_usd / self.limit_usd if self.limit_usd > 0 else 0.0

    def forecast_usd(self, now: datetime) -> float:
        hours_left = max((self.period_end - now).total_seconds(), 0.0) / 3600
        return self.spent_usd + self.burn_usd_per_hour * hours_left

    def exhausted_at(self, now: datetime) -> datetime | None:
        """When the limit is reached at the current burn rate; None if never (or already)."""
        if self.spent_usd >= self.limit_usd or self.burn_usd_per_hour <= 0:
            return None
        return now + timedelta(hours=self.remaining_usd / self.burn_usd_per_hour)


def period_bounds(period: Period, moment: datetime) -> tuple[datetime, datetime]:
    """Start and end of the day/week (from Monday)/month holding `moment`, in its timezone."""
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        start = day
        end = (start + timedelta(days=1, hours=3)).replace(hour=0)  # DST-safe next midnight
    elif period == "week":
        start = day - timedelta(days=day.weekday())
        end = (start + timedelta(days=7, hours=3)).replace(hour=0)
    else:
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    tz = moment.tzinfo
    return start.replace(tzinfo=tz), end.replace(tzinfo=tz)


def _spend_labels(scope: str, period: Period, moment: datetime) -> Labels:
    """The internal series holding a scope's spend in the period that contains `moment`."""
    start, _ = period_bounds(period, moment)
    return (("period", f"{period}:{start.date().isoformat()}"), ("scope", scope))


@dataclass
class TokenTotals:
    input: float = 0.0
    output: float = 0.0
    cache_read: float = 0.0
    cache_creation: float = 0.0

    @property
    def sent(self) -> float:
        return self.input + self.cache_read + self.cache_creation

    @property
    def cache_hit_ratio(self) -> float | None:
        return self.cache_read / self.sent if self.sent else None

    @classmethod
    def sum_of(cls, many: Iterable[TokenTotals]) -> TokenTotals:
        out = cls()
        for one in many:
            out.input += one.input
            out.output += one.output
            out.cache_read += one.cache_read
            out.cache_creation += one.cache_creation
        return out


def cache_savings(tokens: TokenTotals, price: Price) -> float:
    """Net USD the prompt cache saved (negative when writes cost more than reads saved)."""
    saved = tokens.cache_read * (price.input - price.cache_read)
    premium = tokens.cache_creation * (price.cache_write_5m - price.input)
    return (saved - premium) / 1e6


def cost_at(tokens: TokenTotals, price: Price) -> float:
    """What these tokens cost at `price` (cache writes at the 5-minute rate)."""
    return (tokens.input * price.input + tokens.output * price.output
            + tokens.cache_creation * price.cache_write_5m + tokens.cache_read * price.cache_read) / 1e6


_TOKEN_TYPES = {"input": "input", "output": "output", "cacheRead": "cache_read", "cacheCreation": "cache_creation"}


class Economics:
    def __init__(self, store: Store, prices: PriceTable, budgets: list[Budget], *, timezone: str = "UTC",
                 subscription_usd_per_month: float = 0.0, burn_window_seconds: float = 3600.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.prices = prices
        self.budgets = budgets
        self.tz = ZoneInfo(timezone)
        self.subscription = subscription_usd_per_month
        self.burn_window = burn_window_seconds
        self.clock = clock
        self._recent: dict[str, deque[tuple[float, float]]] = {}  # scope → (point time, increase)

    # --- write side: every cost increase, as the store applies it -----------------------------
    def on_increase(self, family: FamilyMeta, labels: Labels, increase: float, time_ns: int) -> None:
        if family.name != COST or increase == 0:
            return
        moment = datetime.fromtimestamp(time_ns / 1e9, self.tz) if time_ns else self.now()
        scopes: list[tuple[str, Period]] = [(ALL, "day"), (ALL, "week"), (ALL, "month")]
        scopes += [(budget_scope(b.name), b.period) for b in self.budgets if b.matches(labels)]
        for scope, period in scopes:
            self.store.add(SPEND, _spend_labels(scope, period, moment), increase)
        for scope in {scope for scope, _ in scopes}:
            self._recent.setdefault(scope, deque()).append((moment.timestamp(), increase))

    # --- read side -------------------------------------------------------------------------------
    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), self.tz)

    def spent(self, scope: str, period: Period, now: datetime | None = None) -> float:
        return self.store.value(SPEND.name, _spend_labels(scope, period, now or self.now())) or 0.0

    def burn_rate(self, scope: str) -> float:
        """USD per hour over the burn window ending now."""
        recent = self._recent.get(scope)
        if not recent:
            return 0.0
        horizon = self.clock() - self.burn_window
        while recent and recent[0][0] < horizon:
            recent.popleft()
        return sum(increase for _, increase in recent) / (self.burn_window / 3600)

    def budget_status(self) -> list[BudgetStatus]:
        now = self.now()
        out = []
        for budget in self.budgets:
            start, end = period_bounds(budget.period, now)
            scope = budget_scope(budget.name)
            out.append(BudgetStatus(budget.name, budget.period, start, end, budget.limit_usd,
                                    self.spent(scope, budget.period, now), self.burn_rate(scope)))
        return out

    def tokens_by_model(self) -> dict[str, TokenTotals]:
        out: dict[str, TokenTotals] = {}
        for (model, kind), value in totals_by(self.store, TOKENS, "model", "type").items():
            field_name = _TOKEN_TYPES.get(kind)
            if field_name:
                totals = out.setdefault(model, TokenTotals())
                setattr(totals, field_name, getattr(totals, field_name) + value)
        return out

    def cost_by_model(self) -> dict[str, float]:
        return {model: value for (model,), value in totals_by(self.store, COST, "model").items()}

    def savings_by_model(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for model, tokens in self.tokens_by_model().items():
            price = self.prices.price(model)
            out[model] = cache_savings(tokens, price) if price else None
        return out

    def unpriced_models(self) -> list[str]:
        return sorted(m for m in self.tokens_by_model() if self.prices.price(m) is None)

    def plan_value_ratio(self) -> float | None:
        """API-equivalent spend this month over the subscription price (None without one)."""
        return self.spent(ALL, "month") / self.subscription if self.subscription > 0 else None
