"""Transcript usage into a bridge's hourly period history — history only, never the live totals.

The rule that keeps it from counting anything twice, per user (the import's `user_id` label; all
telemetry when the import names no user):
1. Telemetry wins. Let F be the first hour the history holds a telemetry increase for that user
   (cost or tokens, any series not labelled `source="transcripts"`). Transcript usage is imported
   only for hours before F; usage in F or later is already covered (counted, skipped).
2. Importing again changes nothing. Imported series carry `source="transcripts"` and the import's
   labels; an hour already holding imported usage gains only what the transcripts show beyond it
   (a re-import, or one after the transcripts grew), never loses any (old transcripts age out).

The history's hours are local hours in the bridge's timezone, so budgets, forecasts, daily spend and
plan windows see imported hours exactly as they see telemetry. Each response counts as one API
request where the history keeps requests (plan windows count them).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from otlp_bridge.derive.pricing import PriceTable
from otlp_bridge.families import API_REQUESTS, COST, TOKENS
from otlp_bridge.pipeline import Pipeline
from otlp_bridge.series import FamilyMeta, Kind, Labels, Observation, Temporality
from otlp_bridge.store.history import History, local_hour
from otlp_bridge.transcripts.history import cost_of, tokens_by_type
from otlp_bridge.transcripts.reader import Usage

SOURCE = ("source", "transcripts")
# As Claude Code describes its instruments, so a family first made by an import reads like the live one.
FAMILIES = {COST: FamilyMeta(COST, Kind.COUNTER, "Cost of the Claude Code session"),
            TOKENS: FamilyMeta(TOKENS, Kind.COUNTER, "Number of tokens used"),
            API_REQUESTS.name: API_REQUESTS}
_EPSILON = 1e-12  # float noise between a sum and the same sum filed before
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_OWN_LABELS = frozenset({"model", "project", "type", SOURCE[0]})
MAX_IDENTITY_LABELS = 16
MAX_LABEL_VALUE = 1024


@dataclass
class HistoryImport:
    imported_hours: int = 0  # (series, hour) buckets that gained usage
    responses: int = 0  # transcript responses in hours the rule let in
    covered: int = 0  # responses in hours telemetry already covers
    unchanged: int = 0  # buckets a previous import already holds in full
    rejected: Counter[str] = field(default_factory=Counter)
    first_telemetry_hour: int | None = None


def identity(given: Mapping[str, str]) -> Labels:
    """The import's identity labels (user_id, device, team, …), checked, with `source="transcripts"`."""
    if len(given) > MAX_IDENTITY_LABELS:
        raise ValueError(f"at most {MAX_IDENTITY_LABELS} labels")
    for key, value in given.items():
        if not _LABEL_NAME.match(key) or key.startswith("__") or key in _OWN_LABELS:
            raise ValueError(f"{key!r} is not a label name an import may set (not {', '.join(sorted(_OWN_LABELS))})")
        if not isinstance(value, str) or len(value) > MAX_LABEL_VALUE:
            raise ValueError(f"{key}: want text of at most {MAX_LABEL_VALUE} characters")
    return tuple(sorted({**given, SOURCE[0]: SOURCE[1]}.items()))


def first_telemetry_hour(history: History, user: str | None) -> int | None:
    hours = [
        min(per_hour)
        for family in (COST, TOKENS)
        for labels, per_hour in history.series(family)
        if per_hour and SOURCE not in labels and (user is None or dict(labels).get("user_id") == user)
    ]
    return min(hours, default=None)


def _series_labels(usage: Usage, identity: Labels) -> Labels:
    labels = {**dict(identity), "model": usage.model, "project": usage.project, SOURCE[0]: SOURCE[1]}
    return tuple(sorted(labels.items()))


def import_usage(pipeline: Pipeline, usages: Iterable[Usage], prices: PriceTable, identity: Labels) -> HistoryImport:
    """File the transcripts' usage in the bridge's history by the rule above, through its pipeline, so
    derived series (the cross-agent ledger budgets count) gain history the same way; the totals stay as
    they are. `identity` are the import's labels (e.g. user_id, device, team)."""
    history = pipeline.store.history
    if history is None:
        raise ValueError("this bridge keeps no period history")
    result = HistoryImport(first_telemetry_hour=first_telemetry_hour(history, dict(identity).get("user_id")))
    wanted: dict[tuple[str, Labels, int], float] = {}
    latest: dict[tuple[Labels, int], float] = {}  # when each imported hour's last response was
    for usage in usages:
        hour = local_hour(usage.time, history.tz)
        if result.first_telemetry_hour is not None and hour >= result.first_telemetry_hour:
            result.covered += usage.responses
            continue
        result.responses += usage.responses
        labels = _series_labels(usage, identity)
        latest[labels, hour] = max(latest.get((labels, hour), 0.0), usage.time)
        for kind, count in tokens_by_type(usage).items():
            key = (TOKENS, tuple(sorted((*labels, ("type", kind)))), hour)
            wanted[key] = wanted.get(key, 0.0) + count
        price = prices.price(usage.model)
        if price is not None:
            wanted[COST, labels, hour] = wanted.get((COST, labels, hour), 0.0) + cost_of(usage, price)
        if API_REQUESTS.name in history.families:  # one response, one request
            wanted[API_REQUESTS.name, labels, hour] = wanted.get((API_REQUESTS.name, labels, hour), 0.0) \
                + usage.responses
    observations = []
    for (family, labels, hour), value in sorted(wanted.items()):
        held = history.buckets.get((family, labels), {}).get(hour, 0.0)
        if value - held <= _EPSILON * max(value, 1.0):
            result.unchanged += value > 0
            continue
        plain = tuple(pair for pair in labels if pair[0] != "type")
        time_ns = int(latest[plain, hour] * 1e9)
        observations.append(Observation(FAMILIES[family], None, labels, Temporality.DELTA, time_ns, time_ns,
                                        value - held))
    applied = pipeline.apply(observations, history_only=True)
    result.imported_hours = applied.accepted
    result.rejected.update(applied.rejected)
    return result
