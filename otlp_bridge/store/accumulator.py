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

Plain, synchronous Python: one writer (the event loop) calls `apply`. What
changed is remembered as dirty until `take_dirty` hands it to persistence; a
`Backing` (the durable state) answers for series and inputs no longer held in
memory, so expiry and eviction bound memory without forgetting a total.
"""

from __future__ import annotations

import bisect
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, cast

from otlp_bridge.translate.metrics import (
    FamilyMeta,
    HistogramValue,
    Labels,
    Observation,
    Temporality,
)


class Total:
    """A float sum with Neumaier compensation, and when it last changed."""

    __slots__ = ("comp", "sum", "updated")

    def __init__(self, value: float = 0.0, comp: float = 0.0, updated: float = 0.0) -> None:
        self.sum = value
        self.comp = comp
        self.updated = updated

    def add(self, x: float) -> None:
        s = self.sum
        t = s + x
        if abs(s) >= abs(x):
            self.comp += (s - t) + x
        else:
            self.comp += (x - t) + s
        self.sum = t

    def set(self, x: float) -> None:
        self.sum = x
        self.comp = 0.0

    @property
    def value(self) -> float:
        return self.sum + self.comp


@dataclass(slots=True)
class HistogramTotal:
    bounds: tuple[float, ...]
    counts: list[int]
    count: int = 0
    sum: Total = field(default_factory=Total)
    updated: float = 0.0

    def add(self, counts: tuple[int, ...] | list[int], count: int, total: float) -> None:
        for i, c in enumerate(counts):
            self.counts[i] += c
        self.count += count
        self.sum.add(total)

    def observe(self, value: float) -> None:
        """One observation, in the first bucket whose upper bound holds it (Prometheus `le`)."""
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.sum.add(value)


Series = Total | HistogramTotal
InputKey = bytes | tuple[object, ...]

_RECENT_WINDOWS = 8


@dataclass(slots=True)
class InputState:
    """What is remembered of one input series between its points."""

    start: int
    time: int
    value: float | HistogramValue | None = None  # last cumulative value
    windows: tuple[tuple[int, int], ...] = ()  # recent delta windows
    seen: float = 0.0  # wall clock of the last point applied

    def is_replay(self, obs: Observation) -> bool:
        if obs.temporality is Temporality.DELTA:
            return (obs.start, obs.time) in self.windows
        return obs.start == self.start and obs.time <= self.time


class Backing(Protocol):
    """Durable state that answers for what memory has let go of."""

    def load_series(self, family: str, labels: Labels) -> Series | None: ...

    def load_input(self, key: InputKey) -> InputState | None: ...


@dataclass(slots=True)
class Family:
    meta: FamilyMeta
    series: dict[Labels, Series] = field(default_factory=dict)


@dataclass(slots=True)
class ApplyResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)


SeriesSnapshot = tuple[float, float] | tuple[tuple[float, ...], tuple[int, ...], int, float, float]


@dataclass(slots=True)
class Dirty:
    """Everything changed since the last `take_dirty`, copied so another thread may write it."""

    families: list[FamilyMeta]
    series: list[tuple[str, Labels, SeriesSnapshot, float]]
    inputs: list[tuple[InputKey, InputState]]

    def __bool__(self) -> bool:
        return bool(self.families or self.series or self.inputs)


@dataclass(frozen=True, slots=True)
class Limits:
    max_series: int = 1_000_000
    series_ttl: float = 0.0  # seconds without an update before a series leaves memory; 0 keeps it
    input_ttl: float = 3600.0  # the same for input state (temporality, replay detection)
    max_inputs_in_memory: int = 200_000  # beyond this, the least recently seen clean inputs are evicted


def snapshot_series(series: Series) -> SeriesSnapshot:
    if isinstance(series, Total):
        return series.sum, series.comp
    return series.bounds, tuple(series.counts), series.count, series.sum.sum, series.sum.comp


def series_from_snapshot(snap: SeriesSnapshot, updated: float) -> Series:
    if len(snap) == 2:
        return Total(snap[0], snap[1], updated)  # type: ignore[arg-type]
    bounds, counts, count, total, comp = snap  # type: ignore[misc]
    return HistogramTotal(tuple(bounds), list(counts), count, Total(total, comp), updated)


class Store:
    """Output series and the per-input state that makes their totals exact."""

    def __init__(self, limits: Limits | None = None, backing: Backing | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.limits = limits or Limits()
        self.backing = backing
        self.clock = clock
        self.families: dict[str, Family] = {}
        self._inputs: dict[InputKey, InputState] = {}
        self._series_count = 0
        self._dirty_families: set[str] = set()
        self._dirty_series: set[tuple[str, Labels]] = set()
        self._dirty_inputs: set[InputKey] = set()
        self.version = 0  # bumped on every change, so an unchanged store can reuse its last rendering
        self._now = 0.0
        # Called with every increase a monotonic counter takes (family, labels, increase, point time),
        # so derived views (budget periods) add up exactly the increases the totals do.
        self.on_increase: Callable[[FamilyMeta, Labels, float, int], None] | None = None

    @property
    def series_count(self) -> int:
        return self._series_count

    @property
    def input_count(self) -> int:
        return len(self._inputs)

    def apply(self, observations: list[Observation]) -> ApplyResult:
        result = ApplyResult()
        self._now = self.clock()
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

    # --- derived series: already deduplicated upstream, so no input tracking --------------------
    def add(self, meta: FamilyMeta, labels: Labels, increase: float) -> bool:
        """Add to a derived counter; False when the series cap refused a new series."""
        return self._derived(meta, labels, Total.add, increase)

    def set(self, meta: FamilyMeta, labels: Labels, value: float) -> bool:
        """Set a derived gauge; False when the series cap refused a new series."""
        return self._derived(meta, labels, Total.set, value)

    def _derived(self, meta: FamilyMeta, labels: Labels, change: Callable[[Total, float], None], x: float) -> bool:
        family = self._family(meta)
        series = cast(Total | None, self._series(family, labels, Total)) if family else None
        if series is None:
            return False
        change(series, x)
        self._touch(meta.name, labels, series)
        return True

    def observe(self, meta: FamilyMeta, labels: Labels, bounds: tuple[float, ...], value: float) -> bool:
        """Count one observation into a derived histogram."""
        family = self._family(meta)
        series = cast(HistogramTotal | None, self._series(
            family, labels, lambda: HistogramTotal(bounds, [0] * (len(bounds) + 1)))) if family else None
        if series is None or series.bounds != bounds:
            return False
        series.observe(value)
        self._touch(meta.name, labels, series)
        return True

    def value(self, name: str, labels: Labels) -> float | None:
        """The current value of a counter or gauge series held in memory."""
        family = self.families.get(name)
        series = family.series.get(labels) if family else None
        return series.value if isinstance(series, Total) else None

    def input_state(self, key: InputKey) -> InputState | None:
        """Durable per-stream state a deriver keeps (e.g. an event stream's high-water mark)."""
        return self._input(key)

    def keep_input_state(self, key: InputKey, state: InputState) -> None:
        state.seen = self.clock()
        self._inputs[key] = state
        self._dirty_inputs.add(key)

    def _touch(self, name: str, labels: Labels, series: Series) -> None:
        """A derived series changed outside `apply`, which bumps the version once per batch."""
        self._changed(name, labels, series, self.clock())
        self.version += 1

    # --- restore, persistence, expiry -------------------------------------------------------
    def restore(self, meta: FamilyMeta, series: dict[Labels, Series]) -> None:
        """Put back what durable state holds (at start-up); nothing becomes dirty."""
        family = self.families.setdefault(meta.name, Family(meta))
        for labels, one in series.items():
            if labels not in family.series:
                self._series_count += 1
            family.series[labels] = one

    def take_dirty(self) -> Dirty:
        dirty = Dirty(
            [self.families[name].meta for name in self._dirty_families],
            [(name, labels, snapshot_series(series), series.updated)
             for name, labels in self._dirty_series
             if (series := self.families[name].series.get(labels)) is not None],
            [(key, InputState(i.start, i.time, i.value, i.windows, i.seen))
             for key in self._dirty_inputs if (i := self._inputs.get(key)) is not None],
        )
        self._dirty_families.clear()
        self._dirty_series.clear()
        self._dirty_inputs.clear()
        return dirty

    def mark_dirty(self, dirty: Dirty) -> None:
        """A write that failed: its rows stay owed to the next one."""
        self._dirty_families.update(meta.name for meta in dirty.families)
        self._dirty_series.update((name, labels) for name, labels, _, _ in dirty.series)
        self._dirty_inputs.update(key for key, _ in dirty.inputs)

    def expire(self, now: float | None = None) -> tuple[int, int]:
        """Let go of series and inputs quiet for longer than their TTL (and inputs over the
        memory cap, least recently seen first). Only what is durable, or not backed at all, goes."""
        now = self.clock() if now is None else now
        limits = self.limits
        series_gone = 0
        if limits.series_ttl > 0:
            for family in self.families.values():
                stale = [labels for labels, series in family.series.items()
                         if now - series.updated > limits.series_ttl
                         and (family.meta.name, labels) not in self._dirty_series]
                for labels in stale:
                    del family.series[labels]
                series_gone += len(stale)
            self._series_count -= series_gone
        clean = [(state.seen, key) for key, state in self._inputs.items() if key not in self._dirty_inputs]
        doomed = {key for seen, key in clean if limits.input_ttl > 0 and now - seen > limits.input_ttl}
        excess = len(self._inputs) - len(doomed) - limits.max_inputs_in_memory
        if excess > 0 and self.backing is not None:
            doomed.update(key for _, key in sorted(clean)[:excess + len(doomed)])
        for key in doomed:
            del self._inputs[key]
        if series_gone:
            self.version += 1
        return series_gone, len(doomed)

    # --- applying one observation -------------------------------------------------------------
    def _family(self, meta: FamilyMeta) -> Family | None:
        family = self.families.get(meta.name)
        if family is None:
            family = self.families[meta.name] = Family(meta)
            self._dirty_families.add(meta.name)
        elif family.meta.kind is not meta.kind:
            return None
        return family

    def _series(self, family: Family, labels: Labels, new: Callable[[], Series]) -> Series | None:
        series = family.series.get(labels)
        if series is None:
            if self.backing is not None:
                series = self.backing.load_series(family.meta.name, labels)
            if series is None:
                if self._series_count >= self.limits.max_series:
                    return None
                series = new()
            family.series[labels] = series
            self._series_count += 1
        return series

    def _input(self, key: InputKey) -> InputState | None:
        state = self._inputs.get(key)
        if state is None and self.backing is not None:
            state = self.backing.load_input(key)
            if state is not None:
                self._inputs[key] = state
        return state

    def _apply_one(self, obs: Observation) -> str | None:
        family = self._family(obs.family)
        if family is None:
            return "type_conflict"
        previous = self._input(obs.input_key)
        if obs.temporality is Temporality.LAST_VALUE:
            return self._set_gauge(family, obs, previous)
        if previous is not None and previous.is_replay(obs):
            return "duplicate"
        if isinstance(obs.value, HistogramValue):
            return self._add_histogram(family, obs, previous)
        return self._add_number(family, obs, previous)

    def _set_gauge(self, family: Family, obs: Observation, previous: InputState | None) -> str | None:
        if previous is not None and obs.time < previous.time:
            return "out_of_order"
        series = cast(Total | None, self._series(family, obs.labels, Total))
        if series is None:
            return "series_limit"
        series.set(cast(float, obs.value))
        self._changed(family.meta.name, obs.labels, series, self._now)
        self._remember(obs, previous, None)
        return None

    def _add_number(self, family: Family, obs: Observation, previous: InputState | None) -> str | None:
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
        series = cast(Total | None, self._series(family, obs.labels, Total))
        if series is None:
            return "series_limit"
        series.add(increase)
        self._changed(family.meta.name, obs.labels, series, self._now)
        self._remember(obs, previous, value if obs.temporality is Temporality.CUMULATIVE else None)
        if monotonic and self.on_increase is not None:
            self.on_increase(family.meta, obs.labels, increase, obs.time)
        return None

    def _add_histogram(self, family: Family, obs: Observation, previous: InputState | None) -> str | None:
        value = cast(HistogramValue, obs.value)
        series = cast(HistogramTotal | None, self._series(
            family, obs.labels, lambda: HistogramTotal(value.bounds, [0] * len(value.counts))))
        if series is None:
            return "series_limit"
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
        self._changed(family.meta.name, obs.labels, series, self._now)
        self._remember(obs, previous, value if obs.temporality is Temporality.CUMULATIVE else None)
        return None

    def _changed(self, name: str, labels: Labels, series: Series, now: float) -> None:
        series.updated = now
        self._dirty_series.add((name, labels))

    def _remember(self, obs: Observation, previous: InputState | None, value: float | HistogramValue | None) -> None:
        if previous is None:
            previous = self._inputs[obs.input_key] = InputState(obs.start, obs.time)
        previous.start, previous.time, previous.value, previous.seen = obs.start, obs.time, value, self._now
        if obs.temporality is Temporality.DELTA:
            previous.windows = (*previous.windows[1 - _RECENT_WINDOWS:], (obs.start, obs.time))
        self._dirty_inputs.add(obs.input_key)
