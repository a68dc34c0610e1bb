"""Exact totals of Prometheus series, fed by observations.

The exactness rules, in one place:
- DELTA: the value is the increase.
- CUMULATIVE: the increase is the difference to the last value seen with the
  same start time; a new start time, or (for monotonic sums) a lower value,
  is a reset and the increase is the whole new value.
- A replay (a client retry) is not applied again: for DELTA, a point whose
  (start, time) window is among the last few applied for its input series;
  for CUMULATIVE, a point not newer than the last one with its start time.
  Exact windows, not "older than the last", because two processes can share
  one attribute set (session id turned off) and interleave their deltas.
- Increases go into the output series (labels after the drop list), so
  dropping `session.id` folds sessions together without losing anything.
- Non-monotonic cumulative sums add their change, so a folded up-down counter
  is the sum of its inputs' current values; gauges are last-value.
Totals are summed with Neumaier compensation so long runs of decimal deltas
(0.0066954 USD …) keep the total the client itself would report.

Plain, synchronous Python: one writer (the event loop) calls `apply`.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import cast

from otlp_bridge.translate.metrics import (
    FamilyMeta,
    HistogramValue,
    Labels,
    Observation,
    Temporality,
)


class Total:
    """A float sum with Neumaier compensation."""

    __slots__ = ("_comp", "_sum")

    def __init__(self, value: float = 0.0) -> None:
        self._sum = value
        self._comp = 0.0

    def add(self, x: float) -> None:
        s = self._sum
        t = s + x
        if abs(s) >= abs(x):
            self._comp += (s - t) + x
        else:
            self._comp += (x - t) + s
        self._sum = t

    def set(self, x: float) -> None:
        self._sum = x
        self._comp = 0.0

    @property
    def value(self) -> float:
        return self._sum + self._comp


@dataclass(slots=True)
class HistogramTotal:
    bounds: tuple[float, ...]
    counts: list[int]
    count: int = 0
    sum: Total = field(default_factory=Total)

    def add(self, counts: tuple[int, ...] | list[int], count: int, total: float) -> None:
        for i, c in enumerate(counts):
            self.counts[i] += c
        self.count += count
        self.sum.add(total)


_RECENT_WINDOWS = 8


@dataclass(slots=True)
class _Input:
    """What is remembered of one input series between its points."""

    start: int
    time: int
    value: float | HistogramValue | None = None  # last cumulative value
    windows: tuple[tuple[int, int], ...] = ()  # recent delta windows

    def is_replay(self, obs: Observation) -> bool:
        if obs.temporality is Temporality.DELTA:
            return (obs.start, obs.time) in self.windows
        return obs.start == self.start and obs.time <= self.time


@dataclass(slots=True)
class Family:
    meta: FamilyMeta
    series: dict[Labels, Total | HistogramTotal] = field(default_factory=dict)


@dataclass(slots=True)
class ApplyResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)


class Store:
    """Output series and the per-input state that makes their totals exact."""

    def __init__(self) -> None:
        self.families: dict[str, Family] = {}
        self._inputs: dict[tuple[object, ...], _Input] = {}
        self.version = 0  # bumped on every change, so an unchanged store can reuse its last rendering

    @property
    def series_count(self) -> int:
        return sum(len(f.series) for f in self.families.values())

    @property
    def input_count(self) -> int:
        return len(self._inputs)

    def apply(self, observations: list[Observation]) -> ApplyResult:
        result = ApplyResult()
        for obs in observations:
            reason = self._apply_one(obs)
            if reason is None:
                result.accepted += 1
            elif reason == "duplicate":
                result.duplicates += 1
            else:
                result.rejected[reason] += 1
        if result.accepted:
            self.version += 1
        return result

    def _family(self, meta: FamilyMeta) -> Family | None:
        family = self.families.get(meta.name)
        if family is None:
            family = self.families[meta.name] = Family(meta)
        elif family.meta.kind is not meta.kind:
            return None
        return family

    def _apply_one(self, obs: Observation) -> str | None:
        family = self._family(obs.family)
        if family is None:
            return "type_conflict"
        previous = self._inputs.get(obs.input_key)
        if obs.temporality is Temporality.LAST_VALUE:
            return self._set_gauge(family, obs, previous)
        if previous is not None and previous.is_replay(obs):
            return "duplicate"
        if isinstance(obs.value, HistogramValue):
            return self._add_histogram(family, obs, previous)
        return self._add_number(family, obs, previous)

    def _set_gauge(self, family: Family, obs: Observation, previous: _Input | None) -> str | None:
        if previous is not None and obs.time < previous.time:
            return "out_of_order"
        value = cast(float, obs.value)
        series = cast(Total | None, family.series.get(obs.labels))
        if series is None:
            family.series[obs.labels] = Total(value)
        else:
            series.set(value)
        self._remember(obs, previous, None)
        return None

    def _add_number(self, family: Family, obs: Observation, previous: _Input | None) -> str | None:
        value = cast(float, obs.value)
        if not math.isfinite(value):
            return "non_finite"
        monotonic = family.meta.monotonic
        if obs.temporality is Temporality.DELTA:
            if monotonic and value < 0:
                return "negative_delta"
            increase = value
        elif previous is None or not isinstance(previous.value, int | float):
            increase = value
        elif monotonic and (obs.start != previous.start or value < previous.value):
            increase = value  # the counter restarted
        else:
            increase = value - previous.value
        series = cast(Total | None, family.series.get(obs.labels))
        if series is None:
            series = family.series[obs.labels] = Total()
        series.add(increase)
        self._remember(obs, previous, value if obs.temporality is Temporality.CUMULATIVE else None)
        return None

    def _add_histogram(self, family: Family, obs: Observation, previous: _Input | None) -> str | None:
        value = cast(HistogramValue, obs.value)
        series = cast(HistogramTotal | None, family.series.get(obs.labels))
        if series is None:
            series = HistogramTotal(value.bounds, [0] * len(value.counts))
        if series.bounds != value.bounds:
            return "histogram_bounds_changed"
        last = previous.value if previous is not None else None
        if (
            obs.temporality is Temporality.CUMULATIVE
            and isinstance(last, HistogramValue)
            and obs.start == previous.start  # type: ignore[union-attr]
            and last.bounds == value.bounds
            and value.count >= last.count
            and all(c >= p for c, p in zip(value.counts, last.counts, strict=True))
        ):
            series.add([c - p for c, p in zip(value.counts, last.counts, strict=True)], value.count - last.count,
                       value.sum - last.sum)
        else:  # delta, first sight, or a reset
            series.add(value.counts, value.count, value.sum)
        family.series.setdefault(obs.labels, series)
        self._remember(obs, previous, value if obs.temporality is Temporality.CUMULATIVE else None)
        return None

    def _remember(self, obs: Observation, previous: _Input | None, value: float | HistogramValue | None) -> None:
        if previous is None:
            previous = self._inputs[obs.input_key] = _Input(obs.start, obs.time)
        previous.start, previous.time, previous.value = obs.start, obs.time, value
        if obs.temporality is Temporality.DELTA:
            previous.windows = (*previous.windows[1 - _RECENT_WINDOWS:], (obs.start, obs.time))
