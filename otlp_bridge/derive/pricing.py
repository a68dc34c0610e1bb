"""List prices per model (USD per million tokens) and model-name normalisation.

Claude Code's `cost.usage` is its own estimate at list price; the bridge uses
this table only for what the metrics cannot say: what the cache saved, and what
a request would have cost on another model. Unknown models are reported, never
guessed (see `otlp_bridge_unpriced_model`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Price:
    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float


def _p(input_: float, output: float, write_5m: float, write_1h: float, read: float) -> Price:
    return Price(input_, output, write_5m, write_1h, read)


DEFAULT_PRICES: dict[str, Price] = {
    # Derived from the cost_usd Claude Code itself reported in the captures (2.1.330 / 2.1.197):
    # 123 input, 42 output, 890 cache-write, 4567 cache-read tokens cost exactly what it said.
    "claude-opus-5-5": _p(4.0, 20.0, 5.0, 8.0, 0.20),
    "claude-opus-4-8": _p(5.0, 25.0, 6.25, 10.0, 0.50),
    # Anthropic's published list prices.
    "claude-opus-4-5": _p(5.0, 25.0, 6.25, 10.0, 0.50),
    "claude-opus-4-1": _p(15.0, 75.0, 18.75, 30.0, 1.50),
    "claude-opus-4": _p(15.0, 75.0, 18.75, 30.0, 1.50),
    "claude-sonnet-4-5": _p(3.0, 15.0, 3.75, 6.0, 0.30),
    "claude-sonnet-4": _p(3.0, 15.0, 3.75, 6.0, 0.30),
    "claude-3-7-sonnet": _p(3.0, 15.0, 3.75, 6.0, 0.30),
    "claude-3-5-sonnet": _p(3.0, 15.0, 3.75, 6.0, 0.30),
    "claude-haiku-4-5": _p(1.0, 5.0, 1.25, 2.0, 0.10),
    "claude-3-5-haiku": _p(0.80, 4.0, 1.0, 1.6, 0.08),
    "claude-3-opus": _p(15.0, 75.0, 18.75, 30.0, 1.50),
    "claude-3-haiku": _p(0.25, 1.25, 0.30, 0.50, 0.03),
}


def _no_write_premium(input_: float, output: float, cache_read: float) -> Price:
    """OpenAI and Gemini charge nothing extra to fill the prompt cache: a cache write costs input."""
    return Price(input_, output, input_, input_, cache_read)


# Standard tier, prompts up to 200k tokens (the metrics cannot tell a request's size); reasoning and
# thinking tokens are billed as output. Read 2026-11-23.
DEFAULT_PRICES.update({
    # OpenAI: developers.openai.com/api/docs/pricing and its model pages (gpt-5-codex's: 1.25/0.125/10),
    # as transcribed June-November 2026; cached input is a tenth of input on the GPT-5 family.
    "gpt-5.5": _no_write_premium(5.0, 30.0, 0.50),
    "gpt-5.4": _no_write_premium(2.50, 15.0, 0.25),
    "gpt-5.4-mini": _no_write_premium(0.75, 4.50, 0.075),
    "gpt-5.4-nano": _no_write_premium(0.20, 1.25, 0.02),
    "gpt-5.3-codex": _no_write_premium(1.75, 14.0, 0.175),
    "gpt-5.2": _no_write_premium(1.75, 14.0, 0.175),
    "gpt-5.2-codex": _no_write_premium(1.75, 14.0, 0.175),
    "gpt-5.1": _no_write_premium(1.25, 10.0, 0.125),
    "gpt-5.1-codex": _no_write_premium(1.25, 10.0, 0.125),
    "gpt-5-codex": _no_write_premium(1.25, 10.0, 0.125),
    "gpt-5": _no_write_premium(1.25, 10.0, 0.125),
    # Google: ai.google.dev/gemini-api/docs/pricing (as transcribed 2026-10-07); cached tokens at a
    # 90% discount on input, cache creation at the input price (docs.cloud.google.com context-cache
    # overview). Gemini 3.8 Flash's price doubles on 2027-01-01 (1.50/7.50): override it then.
    "gemini-3.8-flash": _no_write_premium(0.75, 3.75, 0.075),
    "gemini-3.5-flash": _no_write_premium(1.50, 9.0, 0.15),
    "gemini-3.5-flash-lite": _no_write_premium(0.30, 2.50, 0.03),
    "gemini-3.1-pro-preview": _no_write_premium(2.0, 12.0, 0.20),
    "gemini-2.5-pro": _no_write_premium(1.25, 10.0, 0.125),
    "gemini-2.5-flash": _no_write_premium(0.30, 2.50, 0.03),
    "gemini-2.5-flash-lite": _no_write_premium(0.10, 0.40, 0.01),
})

# Bedrock ("us.anthropic.claude-…-v1:0"), Vertex ("claude-…@20250805"), context suffixes ("[1m]"),
# release dates ("-20250929") and "-latest" all name the same priced model.
_PREFIX = re.compile(r"^(?:(?:us|eu|apac|global)\.)?(?:anthropic[./])?")
_SUFFIXES = re.compile(r"(?:\[[^\]]*\])|(?:@\d{8})|(?:-v\d+(?::\d+)?)|(?:-\d{8})|(?:-latest)$")


def normalise(model: str) -> str:
    """The base model name a price is listed under."""
    name = _PREFIX.sub("", model.strip().lower())
    previous = None
    while previous != name:
        previous, name = name, _SUFFIXES.sub("", name)
    return name


class PriceTable:
    def __init__(self, overrides: dict[str, Price] | None = None) -> None:
        self.prices = {**DEFAULT_PRICES, **{normalise(k): v for k, v in (overrides or {}).items()}}
        # longest first, so claude-opus-4-1 wins over claude-opus-4
        self._names = sorted(self.prices, key=len, reverse=True)

    def price(self, model: str) -> Price | None:
        name = normalise(model)
        if name in self.prices:
            return self.prices[name]
        for known in self._names:
            if name.startswith(known + "-"):
                return self.prices[known]
        return None


_DATED_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")  # OpenAI's "gpt-5-codex-2025-09-15"


def listed_price(table: PriceTable, model: str) -> Price | None:
    """The price listed for exactly this model (or a dated snapshot of it), never for a longer name
    that merely starts like a listed one: `gpt-5.1-codex-mini` and `gemini-2.5-flash-lite` are other,
    cheaper models than `gpt-5.1-codex` and `gemini-2.5-flash`, and an unlisted one stays unpriced."""
    return table.prices.get(_DATED_SNAPSHOT.sub("", normalise(model)))
