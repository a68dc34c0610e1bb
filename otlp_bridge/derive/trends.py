"""Spend over time and per person, from the store's hourly period history (telemetry and imported
transcripts alike): what the status page charts.

- daily: the last `days` local days, oldest first: spend per model, and the cache's net savings
  (each model's tokens that day at its prices; its cache writes split 5-minute/1-hour in the
  proportion `Economics` uses for the totals).
- people: spend and tokens this month per (user_id, device, team), with when each last sent an event.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any

from otlp_bridge import families as fam
from otlp_bridge.derive.economics import Economics, TokenTotals, cache_savings, period_bounds
from otlp_bridge.derive.query import series_of
from otlp_bridge.store.history import local_hour

_TYPES = {"input": "input", "output": "output", "cacheRead": "cache_read", "cacheCreation": "cache_creation"}
WHO = ("user_id", "device", "team")
_EPOCH = date(1970, 1, 1)  # local day indexes count from here


def daily(economics: Economics, days: int = 30) -> list[dict[str, Any]]:
    history = economics.store.history
    if history is None:
        return []
    now = economics.now()
    today = local_hour(now.timestamp(), economics.tz) // 24
    first = today - days + 1
    lo, hi = first * 24, (today + 1) * 24  # the hours of those days
    spend: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for labels, per_hour in history.series(fam.COST):
        model = dict(labels).get("model", "")
        for hour, value in per_hour.items():
            if lo <= hour < hi:
                spend[hour // 24][model] += value
    by_type: dict[tuple[int, str, str], float] = defaultdict(float)  # (day, model, field) → tokens
    for labels, per_hour in history.series(fam.TOKENS):
        values = dict(labels)
        field_name = _TYPES.get(values.get("type", ""))
        if field_name is None:
            continue
        model = values.get("model", "")
        for hour, value in per_hour.items():
            if lo <= hour < hi:
                by_type[hour // 24, model, field_name] += value
    tokens: dict[tuple[int, str], TokenTotals] = defaultdict(TokenTotals)
    for (day, model, field_name), value in by_type.items():
        setattr(tokens[day, model], field_name, value)
    one_hour = {model: t.cache_creation_1h / t.cache_creation
                for model, t in economics.tokens_by_model().items() if t.cache_creation}
    prices = {model: economics.prices.price(model) for _, model in tokens}
    savings: dict[int, float] = {}  # days with priced tokens only
    for (day, model), totals in tokens.items():
        price = prices[model]
        if price is not None:
            totals.cache_creation_1h = totals.cache_creation * one_hour.get(model, 0.0)
            savings[day] = savings.get(day, 0.0) + cache_savings(totals, price)
    rows = []
    for day in range(first, today + 1):
        by_model = {model: round(v, 10) for model, v in sorted(spend.get(day, {}).items())}
        rows.append({"date": (_EPOCH + timedelta(days=day)).isoformat(),
                     "cost_usd": round(sum(by_model.values()), 10), "by_model": by_model,
                     "cache_savings_usd": round(savings[day], 10) if day in savings else None})
    return rows


def people(economics: Economics) -> list[dict[str, Any]]:
    history = economics.store.history
    now = economics.now()
    start, end = period_bounds("month", now)
    first, last = local_hour(start.timestamp(), economics.tz), local_hour(end.timestamp(), economics.tz)
    rows: dict[tuple[str, ...], dict[str, Any]] = {}

    def row(labels: dict[str, str]) -> dict[str, Any]:
        key = tuple(labels.get(k, "") for k in WHO)
        return rows.setdefault(key, {**dict(zip(WHO, key, strict=True)), "cost_usd": 0.0, "tokens": 0.0,
                                     "last_seen": None, "seconds_ago": None})

    for family, column in ((fam.COST, "cost_usd"), (fam.TOKENS, "tokens")):
        for labels, per_hour in history.series(family) if history is not None else ():
            found = row(dict(labels))
            found[column] += sum(v for hour, v in per_hour.items() if first <= hour < last)
    for labels, seen in series_of(economics.store, fam.LAST_SEEN.name):
        found = row(dict(labels))
        if found["seconds_ago"] is None or now.timestamp() - seen < found["seconds_ago"]:
            found["last_seen"] = datetime.fromtimestamp(seen, economics.tz).isoformat(timespec="seconds")
            found["seconds_ago"] = round(now.timestamp() - seen, 1)
    out = [{**r, "cost_usd": round(r["cost_usd"], 10)} for r in rows.values() if r["cost_usd"] or r["tokens"]
           or r["last_seen"]]
    return sorted(out, key=lambda r: -r["cost_usd"])
