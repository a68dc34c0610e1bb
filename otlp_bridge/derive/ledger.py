"""One ledger for every coding agent: tokens, cost, requests, tool calls and sessions with one meaning.

A derive step: from the increases the store applied to each agent's own series (`translate/agents.py`
says which, and what they mean), the increases of the ledger series, applied through the same store.

| series                                                      | meaning                                       |
|-------------------------------------------------------------|-----------------------------------------------|
| coding_agent_tokens_total{agent,model,type}                 | type: input (uncached), cache_read,           |
|                                                             | cache_write, output (without reasoning),      |
|                                                             | reasoning                                     |
| coding_agent_cost_usd_total{agent,model,source}             | source="reported" (Claude Code's cost.usage)  |
|                                                             | or "priced" (tokens × the price table)        |
| coding_agent_unpriced_tokens_total{agent,model}             | tokens of models the table has no price for   |
| coding_agent_requests_total{agent,model}                    | successful model API requests                 |
| coding_agent_tool_calls_total{agent,tool,success}           | tool calls finished                           |
| coding_agent_sessions_total{agent}                          | sessions (Codex: threads) started             |

Every other label of the agent's series rides along (user, team, device, job, …), so a budget that
matches a label of the raw series matches the ledger too, and adding `agent` narrows it.
Priced cost = (input × input + cache_read × cache read + cache_write × cache write
+ (output + reasoning) × output) / 1e6, per model, at the price listed for exactly that model.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from otlp_bridge.derive.pricing import Price, PriceTable, listed_price
from otlp_bridge.derive.query import totals_by
from otlp_bridge.series import Applied, FamilyMeta, Kind, Labels, Observation, Temporality, with_labels
from otlp_bridge.store.accumulator import Store
from otlp_bridge.translate.agents import REPORTS_COST, SOURCES, TOKEN_TYPES, Measure, Source

TOKENS = FamilyMeta("coding_agent_tokens_total", Kind.COUNTER,
                    "Tokens of every coding agent by type: input (uncached), cache_read, cache_write, "
                    "output (without reasoning), reasoning.")
COST = FamilyMeta("coding_agent_cost_usd_total", Kind.COUNTER,
                  "Cost of every coding agent in USD: as the agent reported it, or priced from its tokens.")
UNPRICED = FamilyMeta("coding_agent_unpriced_tokens_total", Kind.COUNTER,
                      "Tokens of models with no listed price (not in the cost; set one under [pricing]).")
REQUESTS = FamilyMeta("coding_agent_requests_total", Kind.COUNTER, "Successful model API requests per agent.")
TOOL_CALLS = FamilyMeta("coding_agent_tool_calls_total", Kind.COUNTER, "Tool calls finished per agent.")
SESSIONS = FamilyMeta("coding_agent_sessions_total", Kind.COUNTER, "Sessions started per agent (Codex: threads).")
FAMILIES = (TOKENS, COST, UNPRICED, REQUESTS, TOOL_CALLS, SESSIONS)
_FAMILY = {Measure.TOKENS: TOKENS, Measure.COST: COST, Measure.REQUESTS: REQUESTS,
           Measure.TOOL_CALLS: TOOL_CALLS, Measure.SESSIONS: SESSIONS}


def _base_labels(source: Source, labels: Labels) -> Labels:
    """The raw labels without the one that says what a point counts, renamed, with the agent."""
    kept = {source.rename.get(k, k): v for k, v in labels if k != source.key}
    return with_labels(tuple(kept.items()), agent=source.agent.value)


@dataclass(frozen=True, slots=True)
class _Plan:
    """What an increase of one raw series becomes in the ledger: worked out once per series, since
    every export of a session adds to the same few."""

    writes: tuple[tuple[FamilyMeta, Labels, int], ...]  # ledger series, and the sign its increase takes
    base: Labels  # the ledger labels without the token type
    priced: tuple[tuple[str, int], ...] = ()  # token types (and signs) to price, for agents that report no cost


_NOTHING = _Plan((), ())  # a point the ledger's meaning does not cover (a failed request)


def _plan(source: Source, labels: Labels) -> _Plan:
    raw = dict(labels)
    if not source.counts(raw):
        return _NOTHING
    base = _base_labels(source, labels)
    if source.measure is not Measure.TOKENS:
        extra = {"source": "reported"} if source.measure is Measure.COST else {}
        return _Plan(((_FAMILY[source.measure], with_labels(base, **extra), 1),), base)
    parts = source.parts.get(raw.get(source.key, ""), ())
    return _Plan(tuple((TOKENS, with_labels(base, type=token_type), sign) for token_type, sign in parts), base,
                 parts if source.agent not in REPORTS_COST else ())


def priced_cost(tokens: Mapping[str, float], price: Price) -> float:
    """USD of ledger tokens by type at `price`."""
    return (tokens.get("input", 0.0) * price.input + tokens.get("cache_read", 0.0) * price.cache_read
            + tokens.get("cache_write", 0.0) * price.cache_write_5m
            + (tokens.get("output", 0.0) + tokens.get("reasoning", 0.0)) * price.output) / 1e6


class _Increases:
    """Increases of ledger series within one batch, netted per series (an agent's cached tokens are
    subtracted from its input of the same export), each filed at the newest point time it came from.
    A net below zero (cached tokens without their input, which no recorded agent sends apart) is
    left to the store to refuse and count as `negative_delta`."""

    def __init__(self) -> None:
        # (family name, labels) → [family, increase, time]: a name hashes faster than a FamilyMeta
        self.values: dict[tuple[str, Labels], list[Any]] = {}

    def add(self, family: FamilyMeta, labels: Labels, increase: float, time_ns: int) -> None:
        entry = self.values.get((family.name, labels))
        if entry is None:
            entry = self.values[family.name, labels] = [family, 0.0, 0]
        entry[1] += increase
        entry[2] = max(entry[2], time_ns)

    def observations(self) -> list[Observation]:
        return [Observation(family, None, labels, Temporality.DELTA, int(time_ns), int(time_ns), value)
                for (_, labels), (family, value, time_ns) in self.values.items() if value]


class Ledger:
    """The derive step (`derive(applied, now)`); the price table is its only configuration."""

    def __init__(self, prices: PriceTable, plans: int = 8192) -> None:
        self.prices = prices
        # raw series → its plan; bounded (cleared when full): the raw labels are what clients sent
        self._plans: dict[tuple[str, Labels], _Plan] = {}
        self._max_plans = plans

    def derive(self, applied: list[Applied], _now: float) -> list[Observation]:
        out = _Increases()
        to_price: dict[Labels, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        times: dict[Labels, int] = {}  # of agents that report no cost: tokens by type, per series
        plans = self._plans
        for one in applied:
            source = SOURCES.get(one.family.name)
            if source is None:
                continue
            plan = plans.get((source.family, one.labels))
            if plan is None:
                if len(plans) >= self._max_plans:
                    plans.clear()
                plan = plans[source.family, one.labels] = _plan(source, one.labels)
            for family, labels, sign in plan.writes:
                out.add(family, labels, sign * one.increase, one.time_ns)
            if plan.priced:
                tokens = to_price[plan.base]
                for token_type, sign in plan.priced:
                    tokens[token_type] += sign * one.increase
                times[plan.base] = max(times.get(plan.base, 0), one.time_ns)
        for base, tokens in to_price.items():
            price = listed_price(self.prices, dict(base).get("model", ""))
            if price is None:
                out.add(UNPRICED, base, sum(tokens.values()), times[base])
            else:
                out.add(COST, with_labels(base, source="priced"), priced_cost(tokens, price), times[base])
        return out.observations()


# --- read side: /summary ---------------------------------------------------------------------------
def unpriced_models(store: Store) -> list[str]:
    """Models whose tokens the ledger could not price (for `otlp_bridge_unpriced_model`)."""
    return sorted({model for (model,) in totals_by(store, UNPRICED.name, "model")})


def agents_summary(store: Store) -> dict[str, Any]:
    """Per agent: tokens by type, cost (and where it came from), requests, tool calls, sessions, cost
    per request, and the same per model; plus the models whose tokens could not be priced. Dollars are
    rounded to 1e-10 (float noise off, nothing a cent could notice), as the rest of /summary is."""
    tokens = totals_by(store, TOKENS.name, "agent", "model", "type")
    costs = totals_by(store, COST.name, "agent", "model", "source")
    unpriced = totals_by(store, UNPRICED.name, "agent", "model")
    counts = {family.name: totals_by(store, family.name, "agent") for family in (REQUESTS, TOOL_CALLS, SESSIONS)}
    names = sorted({key[0] for table in (tokens, costs, unpriced, *counts.values()) for key in table})
    rows: list[dict[str, Any]] = []
    for agent in names:
        def of(table: dict[tuple[str, ...], float], *match: str, agent: str = agent) -> float:
            return sum(v for key, v in table.items() if key[0] == agent and key[1:1 + len(match)] == match)

        cost, requests = round(of(costs), 10), counts[REQUESTS.name].get((agent,), 0.0)
        models = sorted({key[1] for table in (tokens, costs) for key in table if key[0] == agent})
        rows.append({
            "agent": agent,
            "cost_usd": cost,
            "cost_sources": sorted({key[2] for key in costs if key[0] == agent}),
            "tokens": {t: sum((v for (a, _, tt), v in tokens.items() if a == agent and tt == t), 0.0)
                       for t in TOKEN_TYPES},
            "requests": requests,
            "tool_calls": counts[TOOL_CALLS.name].get((agent,), 0.0),
            "sessions": counts[SESSIONS.name].get((agent,), 0.0),
            "cost_per_request_usd": round(cost / requests, 10) if requests else None,
            "models": [{"model": m, "cost_usd": round(of(costs, m), 10), "tokens": of(tokens, m)} for m in models],
            "unpriced_models": sorted(m for (a, m) in unpriced if a == agent),
        })
    rows.sort(key=lambda row: float(row["cost_usd"]), reverse=True)
    return {"agents": rows, "cost_usd": round(sum(float(row["cost_usd"]) for row in rows), 10),
            "tokens": {t: sum(float(row["tokens"][t]) for row in rows) for t in TOKEN_TYPES}}


def agent_cost_insights(store: Store, min_requests: float = 10) -> list[dict[str, Any]]:
    """For /insights: what a model request costs on each agent that made at least `min_requests`, when
    there are two or more such agents. The saving is what the priciest agent's requests would have cost
    at the cheapest agent's average: an upper bound, since their tasks may differ."""
    rows = [row for row in agents_summary(store)["agents"]
            if row["requests"] >= min_requests and row["cost_per_request_usd"] is not None]
    if len(rows) < 2:  # a comparison needs two sides
        return []
    rows.sort(key=lambda row: float(row["cost_per_request_usd"]), reverse=True)
    dearest, cheapest = rows[0], rows[-1]
    each = ", ".join(f"${row['cost_per_request_usd']:,.4f} on {row['agent']} ({row['requests']:,.0f} requests)"
                     for row in rows)
    saving = (dearest["cost_per_request_usd"] - cheapest["cost_per_request_usd"]) * dearest["requests"]
    return [{"type": "agent_cost_per_request", "severity": "info",
             "message": f"A model request costs {each}; tasks differ between agents, so compare like with like.",
             "potential_savings_usd": round(saving, 10), "scope": {"agent": dearest["agent"]}}]
