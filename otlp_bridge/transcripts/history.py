"""Transcript usage priced with the bridge's table and summed per period, model and project.

Cost of one response = (input × input price + output × output price + 5-minute cache writes ×
`cache_write_5m` + 1-hour cache writes × `cache_write_1h` + cache reads × `cache_read`) / 10⁶ —
the same prices Claude Code's `cost.usage` uses. A model the table does not know gets no cost (its
tokens still count) and is listed in `unpriced`: never guessed, never $0.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from otlp_bridge.derive.pricing import Price, PriceTable
from otlp_bridge.transcripts.reader import Usage

# The `type` values of `claude_code.token.usage`, as the CLI sends them.
TOKEN_TYPES = ("input", "output", "cacheRead", "cacheCreation")


def tokens_by_type(usage: Usage) -> dict[str, int]:
    return {"input": usage.input, "output": usage.output, "cacheRead": usage.cache_read,
            "cacheCreation": usage.cache_creation}


def cost_of(usage: Usage, price: Price) -> float:
    return (usage.input * price.input + usage.output * price.output + usage.cache_read * price.cache_read
            + usage.cache_write_5m * price.cache_write_5m + usage.cache_write_1h * price.cache_write_1h) / 1e6


@dataclass
class Totals:
    messages: int = 0
    tokens: Counter[str] = field(default_factory=Counter)
    cost_usd: float = 0.0
    unpriced_messages: int = 0
    first: float = float("inf")  # Unix seconds of the first and last response
    last: float = float("-inf")

    def add(self, usage: Usage, cost: float | None) -> None:
        self.messages += 1
        self.tokens.update(tokens_by_type(usage))
        if cost is None:
            self.unpriced_messages += 1
        else:
            self.cost_usd += cost
        self.first = min(self.first, usage.time)
        self.last = max(self.last, usage.time)

    @property
    def priced(self) -> bool:
        return self.messages > self.unpriced_messages


SeriesKey = tuple[str, str]  # model, project


class History:
    """Totals per (period start, model, project), with `step_seconds` long periods aligned to UTC."""

    def __init__(self, prices: PriceTable, step_seconds: int = 3600) -> None:
        self.prices = prices
        self.step = step_seconds
        self.periods: dict[SeriesKey, dict[int, Totals]] = {}
        self.by_model: dict[str, Totals] = {}
        self.unpriced: Counter[str] = Counter()  # model → responses without a price

    def add(self, usage: Usage) -> None:
        price = self.prices.price(usage.model)
        cost = None if price is None else cost_of(usage, price)
        if price is None:
            self.unpriced[usage.model] += 1
        start = int(usage.time // self.step * self.step)
        series = self.periods.setdefault((usage.model, usage.project), {})
        series.setdefault(start, Totals()).add(usage, cost)
        self.by_model.setdefault(usage.model, Totals()).add(usage, cost)

    def extend(self, usages: Iterable[Usage]) -> None:
        for usage in usages:
            self.add(usage)

    def total(self) -> Totals:
        out = Totals()
        for one in self.by_model.values():
            out.messages += one.messages
            out.tokens.update(one.tokens)
            out.cost_usd += one.cost_usd
            out.unpriced_messages += one.unpriced_messages
            out.first, out.last = min(out.first, one.first), max(out.last, one.last)
        return out
