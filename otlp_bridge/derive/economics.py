"""What the money says: cache efficiency and savings, budgets, burn rate, forecast, plan value.

Read-only queries over the store: totals for "all time", the store's hourly history for anything
with a period, so a budget added, renamed or edited later is exact for everything the bridge holds,
and a restart changes nothing (the history is durable).

Formulas (USD; prices per million tokens, from `pricing`):
- cache hit ratio = cacheRead / (input + cacheRead + cacheCreation)
- net cache savings = cacheRead × (input − cache_read)
  − cacheCreation_5m × (cache_write_5m − input) − cacheCreation_1h × (cache_write_1h − input)
  (what reads saved over paying full input price, less the premium paid to write the cache). The
  metrics do not split cache writes by lifetime; the api_request events do, so each model's
  cacheCreation is split in the proportion its events report (all 5-minute without events).
- period spend = the cost increases filed in the period (configured timezone, hour resolution) whose
  labels match the budget — the same increases as the totals. Budgets count the cross-agent ledger's
  cost (Claude Code's own cost plus every other agent's, labelled `agent`); `claude_code_spend_usd`
  counts Claude Code's.
- burn rate = spend since the start of the hour `burn_window` ago / the time since then, in hours
- forecast = period spend + burn rate × hours left in the period
- exhausted at = now + (limit − spent) / burn rate, only when that falls within the period
- plan value = API-equivalent spend this month / subscription price per month
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from otlp_bridge.derive.ledger import unpriced_models as ledger_unpriced
from otlp_bridge.derive.pricing import Price, PriceTable, normalise
from otlp_bridge.derive.query import totals_by
from otlp_bridge.families import CACHE_WRITES, COST, TOKENS
from otlp_bridge.store.accumulator import Store

Period = Literal["day", "week", "month", "5h"]
ROLLING_HOURS = 5  # the "5h" period: this hour and the four before it


@dataclass(frozen=True)
class Budget:
    name: str
    period: Period
    limit_usd: float
    match: tuple[tuple[str, str], ...] = ()  # label → value, all must match


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
        """When the limit is reached at the current burn rate; None if not within this period (or already)."""
        if self.spent_usd >= self.limit_usd or self.burn_usd_per_hour <= 0:
            return None
        moment = now + timedelta(hours=self.remaining_usd / self.burn_usd_per_hour)
        return moment if moment < self.period_end else None


def period_bounds(period: Period, moment: datetime) -> tuple[datetime, datetime]:
    """Start and end of the day/week (from Monday)/month holding `moment`, in its timezone; for "5h",
    the rolling window of this hour and the four before it."""
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    tz = moment.tzinfo
    if period == "5h":
        hour = moment.replace(minute=0, second=0, microsecond=0)
        return hour - timedelta(hours=ROLLING_HOURS - 1), hour + timedelta(hours=1)
    if period == "day":
        start = day
        end = (start + timedelta(days=1, hours=3)).replace(hour=0)  # DST-safe next midnight
    elif period == "week":
        start = day - timedelta(days=day.weekday())
        end = (start + timedelta(days=7, hours=3)).replace(hour=0)
    else:
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    return start.replace(tzinfo=tz), end.replace(tzinfo=tz)


@dataclass
class TokenTotals:
    input: float = 0.0
    output: float = 0.0
    cache_read: float = 0.0
    cache_creation: float = 0.0
    cache_creation_1h: float = 0.0  # of cache_creation, the writes that live one hour

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
            out.cache_creation_1h += one.cache_creation_1h
        return out


def _write_premium(tokens: TokenTotals, price: Price) -> float:
    five_minute = tokens.cache_creation - tokens.cache_creation_1h
    return (five_minute * (price.cache_write_5m - price.input)
            + tokens.cache_creation_1h * (price.cache_write_1h - price.input))


def cache_savings(tokens: TokenTotals, price: Price) -> float:
    """Net USD the prompt cache saved (negative when writes cost more than reads saved)."""
    saved = tokens.cache_read * (price.input - price.cache_read)
    return (saved - _write_premium(tokens, price)) / 1e6


def cost_at(tokens: TokenTotals, price: Price) -> float:
    """What these tokens cost at `price`, each cache write at the rate of its lifetime."""
    return (tokens.input * price.input + tokens.output * price.output + tokens.cache_read * price.cache_read
            + tokens.cache_creation * price.input + _write_premium(tokens, price)) / 1e6


_TOKEN_TYPES = {"input": "input", "output": "output", "cacheRead": "cache_read", "cacheCreation": "cache_creation"}


class Economics:
    def __init__(self, store: Store, prices: PriceTable, budgets: list[Budget], *, timezone: str = "UTC",
                 subscription_usd_per_month: float = 0.0, burn_window_seconds: float = 3600.0,
                 clock: Callable[[], float] = time.time, budget_family: str = COST) -> None:
        """`budget_family` is the cost budgets are queries over: the cross-agent ledger's in the bridge,
        so a budget can match `agent` and a combined one sees every agent."""
        self.store = store
        self.budget_family = budget_family
        self.prices = prices
        self.budgets = budgets
        self.tz = ZoneInfo(timezone)
        self.subscription = subscription_usd_per_month
        self.burn_window = burn_window_seconds
        self.clock = clock

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), self.tz)

    def spent(self, period: Period, now: datetime | None = None, match: Mapping[str, str] | None = None,
              family: str = COST) -> float:
        """Cost filed in the period holding `now`, over the series matching `match` (all without one)."""
        start, end = period_bounds(period, now or self.now())
        return self._cost_between(family, start.timestamp(), end.timestamp(), match)

    def burn_rate(self, match: Mapping[str, str] | None = None, family: str = COST) -> float:
        """USD per hour from the start of the hour `burn_window` ago until now."""
        now = self.now()
        since = (now - timedelta(seconds=self.burn_window)).replace(minute=0, second=0, microsecond=0)
        hours = (now - since).total_seconds() / 3600
        spent = self._cost_between(family, since.timestamp(), now.timestamp() + 3600, match)
        return spent / hours if hours > 0 else 0.0

    def _cost_between(self, family: str, start: float, end: float, match: Mapping[str, str] | None) -> float:
        history = self.store.history
        return history.total(family, start, end, match) if history is not None else 0.0

    def budget_status(self) -> list[BudgetStatus]:
        now = self.now()
        out = []
        for budget in self.budgets:
            start, end = period_bounds(budget.period, now)
            match = dict(budget.match)
            out.append(BudgetStatus(budget.name, budget.period, start, end, budget.limit_usd,
                                    self.spent(budget.period, now, match, self.budget_family),
                                    self.burn_rate(match, self.budget_family)))
        return out

    def tokens_by_model(self) -> dict[str, TokenTotals]:
        out: dict[str, TokenTotals] = {}
        for (model, kind), value in totals_by(self.store, TOKENS, "model", "type").items():
            field_name = _TOKEN_TYPES.get(kind)
            if field_name:
                totals = out.setdefault(model, TokenTotals())
                setattr(totals, field_name, getattr(totals, field_name) + value)
        share = self._one_hour_share()
        for model, totals in out.items():
            totals.cache_creation_1h = totals.cache_creation * share.get(normalise(model), 0.0)
        return out

    def _one_hour_share(self) -> dict[str, float]:
        """Per (normalised) model, the share of cache writes the api_request events call 1-hour."""
        writes: dict[str, list[float]] = {}
        for (model, ttl), value in totals_by(self.store, CACHE_WRITES.name, "model", "ttl").items():
            pair = writes.setdefault(normalise(model), [0.0, 0.0])
            pair[ttl == "1h"] += value
        return {model: one_hour / (five + one_hour) for model, (five, one_hour) in writes.items() if five + one_hour}

    def cost_by_model(self) -> dict[str, float]:
        return {model: value for (model,), value in totals_by(self.store, COST, "model").items()}

    def savings_by_model(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for model, tokens in self.tokens_by_model().items():
            price = self.prices.price(model)
            out[model] = cache_savings(tokens, price) if price else None
        return out

    def unpriced_models(self) -> list[str]:
        """Models with tokens and no price: Claude Code's, and any agent's the ledger could not price."""
        claude = {m for m in self.tokens_by_model() if self.prices.price(m) is None}
        return sorted(claude | set(ledger_unpriced(self.store)))

    def plan_value_ratio(self) -> float | None:
        """API-equivalent spend this month over the subscription price (None without one)."""
        return self.spent("month") / self.subscription if self.subscription > 0 else None
