"""Exact totals of Prometheus series, fed by observations. `Store.apply` is the only way to write.

The exactness rules, in one place:
- DELTA: the value is the increase.
- CUMULATIVE: the increase is the difference to the last value of the same stream. A monotonic
  stream is (series, start time), as the Collector keys it: two processes that share every
  attribute but started apart are two streams, and a new start time is a new stream whose whole
  value is new. A lower value within one stream is a reset too.
- A replay (a client retry) is not applied again: for DELTA, a point whose (start, time) window is
  among the last few applied for its input stream; for CUMULATIVE, a point not newer than the last.
- Increases go into the output series (labels after the drop list), so dropping `session.id` folds
  sessions together without losing anything.
- Non-monotonic cumulative sums add their change, so a folded up-down counter is the sum of its
  inputs' current values; gauges are last-value, and a gauge point without a value (a staleness
  marker) removes its series.
- Totals stay finite: a point whose addition would overflow is refused, never stored.
- Point times are the client's: one later than the store's clock is filed at "now" (and counted), so
  a skewed clock cannot put spend in the future.
Totals are summed with Neumaier compensation so long runs of decimal deltas (0.0066954 USD …) keep
the total the client itself would report.

Plain, synchronous Python: one writer (the event loop) calls `apply`, which answers with every
increase it applied, so later steps derive from exactly what was counted. A store with a `Backing`
(durable state) also logs each `apply` call — its clock and its observations — for the backing to
journal (`take_log`); replaying that log (`replay`) on the last checkpoint gives the same store, as
the Prometheus TSDB replays its WAL. What changed is remembered as dirty until `take_dirty` hands it
to a checkpoint; the backing answers for series and inputs no longer held in memory, so expiry and
eviction bound memory without forgetting.
Input state ages on an uptime clock, not the wall clock: a wall clock that jumps days ahead must not
make a live cumulative stream look forgotten (it would then be counted again).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol, cast

from otlp_bridge.series import (
    Applied,
    FamilyMeta,
    HistogramValue,
    Kind,
    Labels,
    Observation,
    Temporality,
)
from otlp_bridge.store.history import History
from otlp_bridge.store.known import KeyFilter

FUTURE_TOLERANCE_NS = 60 * 10**9  # clock skew below this is not worth counting


class Total:
    """A float sum with Neumaier compensation, when it was created and when it last changed."""

    __slots__ = ("comp", "created", "sum", "updated")

    def __init__(self, value: float = 0.0, comp: float = 0.0, updated: float = 0.0, created: float = 0.0) -> None:
        self.sum = value
        self.comp = comp
        self.updated = updated
        self.created = created

    def add(self, x: float) -> None:
        s = self.sum
        t = s + x
        lost = (s - t) + x if abs(s) >= abs(x) else (x - t) + s
        if lost:  # exact sums (tokens, lines) keep the shared 0.0: no float object per series
            self.comp += lost
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
    created: float = 0.0

    def add(self, counts: tuple[int, ...] | list[int], count: int, total: float) -> None:
        for i, c in enumerate(counts):
            self.counts[i] += c
        self.count += count
        self.sum.add(total)


Series = Total | HistogramTotal

_RECENT_WINDOWS = 8
InputRow = tuple[int, int, object, tuple[tuple[int, int], ...], float]  # start, time, value, windows, seen


@dataclass(slots=True)
class InputState:
    """What is remembered of one input stream between its points."""

    start: int
    time: int
    value: float | HistogramValue | None = None  # last cumulative value
    windows: tuple[tuple[int, int], ...] = ()  # delta windows before the current (start, time)
    seen: float = 0.0  # uptime of the last point applied

    def row(self) -> InputRow:
        """As plain tuples (what persistence writes): a histogram value as (bounds, counts, count, sum)."""
        value: float | tuple[object, ...] | None = self.value  # type: ignore[assignment]
        if isinstance(value, HistogramValue):
            value = (value.bounds, value.counts, value.count, value.sum)
        return self.start, self.time, value, self.windows, self.seen

    @classmethod
    def from_row(cls, row: InputRow | list[object]) -> InputState:
        start, time_, value, windows, seen = row
        if isinstance(value, tuple | list):
            value = HistogramValue(tuple(value[0]), tuple(value[1]), value[2], value[3])
        return cls(start, time_, value, tuple(map(tuple, windows)), seen)  # type: ignore[arg-type, call-overload]

    def is_replay(self, obs: Observation) -> bool:
        if obs.temporality is Temporality.DELTA:
            return (obs.start == self.start and obs.time == self.time) or (obs.start, obs.time) in self.windows
        return obs.start == self.start and obs.time <= self.time


class NameGuard(Protocol):
    """Which family names may coexist in one exposition (the naming rules' bookkeeping)."""

    def refusal(self, name: str, kind: Kind) -> str | None: ...

    def add(self, name: str, kind: Kind) -> None: ...


class Backing(Protocol):
    """Durable state that answers for what memory has let go of."""

    def load_series(self, family: str, labels: Labels) -> Series | None: ...

    def load_input(self, key: bytes) -> InputState | None: ...


@dataclass(slots=True)
class Family:
    meta: FamilyMeta
    series: dict[Labels, Series] = field(default_factory=dict)


@dataclass(slots=True)
class ApplyResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    applied: list[Applied] = field(default_factory=list)
    future: int = 0  # points stamped ahead of the store's clock, filed at "now"


SeriesSnapshot = tuple[float, float] | tuple[tuple[float, ...], tuple[int, ...], int, float, float]


SeriesRow = tuple[SeriesSnapshot, float, float] | None  # value, updated, created; None: the series is gone
HistoryRows = dict[tuple[str, Labels, int], float | None]  # (family, labels, hour) → increase; None: gone


@dataclass(slots=True)
class Dirty:
    """Everything changed since the last `take_dirty` as plain values (so another thread may write it),
    keyed by row: persistence keeps the newest of each row with one `dict.update`."""

    families: dict[str, FamilyMeta]
    series: dict[tuple[str, Labels], SeriesRow]
    inputs: dict[bytes, InputRow]
    history: HistoryRows

    def __bool__(self) -> bool:
        return bool(self.families or self.series or self.inputs or self.history)


@dataclass(frozen=True, slots=True)
class Limits:
    max_series: int = 1_000_000
    max_families: int = 100_000
    series_ttl: float = 0.0  # seconds without an update before a series leaves memory; 0 keeps it
    input_ttl: float = 3600.0  # uptime seconds before a quiet input leaves memory (it stays on disk)
    max_inputs_in_memory: int = 200_000  # beyond this, the least recently seen clean inputs are evicted


def snapshot_series(series: Series) -> SeriesSnapshot:
    if isinstance(series, Total):
        return series.sum, series.comp
    return series.bounds, tuple(series.counts), series.count, series.sum.sum, series.sum.comp


def series_from_snapshot(snap: SeriesSnapshot, updated: float, created: float) -> Series:
    if len(snap) == 2:
        return Total(snap[0], snap[1], updated, created)
    bounds, counts, count, total, comp = snap
    return HistogramTotal(tuple(bounds), list(counts), count, Total(total, comp), updated, created)


# One observation as the journal holds it: family (name, kind, help, monotonic), input key, labels,
# temporality, start, time, value (a histogram as bounds, counts, count, sum).
LogEntry = tuple[str, str, str, bool, bytes | None, Labels, str, int, int, object]
LogRecord = tuple[float, float, bool, list[LogEntry]]  # clock, uptime, history_only, observations


# Enum `.value` and hashing are Python-level calls; on this path (every observation) the members'
# identities are several times cheaper keys.
_TEXT = {id(member): member.value for member in (*Kind, *Temporality)}
_TEMPORALITY = {t.value: t for t in Temporality}


def _series_key(name: str, labels: Labels) -> bytes:
    return hash((name, labels)).to_bytes(8, "little", signed=True)  # this process's hash: never stored


def _entry(obs: Observation) -> LogEntry:
    meta, value = obs.family, obs.value
    if isinstance(value, HistogramValue):
        value = (value.bounds, value.counts, value.count, value.sum)  # type: ignore[assignment]
    return (meta.name, _TEXT[id(meta.kind)], meta.help, meta.monotonic, obs.input_key, obs.labels,
            _TEXT[id(obs.temporality)], obs.start, obs.time, value)


def _observation(metas: dict[tuple[str, str, str, bool], FamilyMeta], entry: LogEntry) -> Observation:
    name, kind, help_, monotonic, key, labels, temporality, start, time_, value = entry
    meta = metas.get((name, kind, help_, monotonic))
    if meta is None:
        meta = metas[name, kind, help_, monotonic] = FamilyMeta(name, Kind(kind), help_, monotonic)
    if isinstance(value, tuple | list):
        bounds, counts, count, total = value
        value = HistogramValue(tuple(bounds), tuple(counts), count, total)
    # Labels as marshal gives them: pairs shared within a record, equal (not identical) to those held.
    return Observation(meta, key, labels, _TEMPORALITY[temporality], start, time_, value)  # type: ignore[arg-type]


class Uptime:
    """Seconds the store has been running, summed over restarts (persisted with input state)."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._origin = monotonic()

    def __call__(self) -> float:
        return self._monotonic() - self._origin

    def resume(self, at: float) -> None:
        """Continue from `at` (the newest `seen` on disk), so retention counts only running time."""
        self._origin = self._monotonic() - at


class Store:
    """Output series, the per-input state that makes their totals exact, and their hourly history."""

    def __init__(self, limits: Limits | None = None, backing: Backing | None = None, *,
                 clock: Callable[[], float] = time.time, history: History | None = None,
                 uptime: Uptime | None = None, names: NameGuard | None = None) -> None:
        self.limits = limits or Limits()
        self.backing = backing
        self.clock = clock
        self.uptime = uptime or Uptime()
        self.history = history
        self.names = names
        self.families: dict[str, Family] = {}
        self._inputs: dict[bytes, InputState] = {}
        self._series_count = 0
        self._tracking = backing is not None  # what changed matters only to a backing's checkpoints
        if history is not None:
            history.tracking = self._tracking
        self._dirty_families: set[str] = set()
        self._dirty_series: set[tuple[str, Labels]] = set()
        self._dirty_inputs: set[bytes] = set()
        self.version = 0  # moves only on a change a scrape would show, so an unchanged store reuses its body
        self._released: KeyFilter | None = None  # series memory let go of (made at the first)
        self._log: list[LogRecord] = []  # apply calls not yet journaled (only with a backing)
        self._now = 0.0
        self._times: dict[int, int] = {}  # equal point times of one apply call, as one object each
        self._now_ns = 0
        self._filed_ns = 0
        self._seen = 0.0
        self._changed_any = False

    @property
    def series_count(self) -> int:
        return self._series_count

    @property
    def input_count(self) -> int:
        return len(self._inputs)

    def apply(self, observations: Iterable[Observation], *, history_only: bool = False) -> ApplyResult:
        """Apply observations; the answer lists every increase applied, in order.

        `history_only` files increases in the hourly history without touching totals: history from
        before the live stream (imported transcripts) must not make counters jump."""
        return self._apply(observations, history_only, self.clock(), self.uptime(), self.backing is not None)

    def replay(self, log: Iterable[LogRecord]) -> float:
        """Apply a journaled log again, each call at the clock it first ran at; returns the newest uptime."""
        metas: dict[tuple[str, str, str, bool], FamilyMeta] = {}
        seen = 0.0
        for now, seen, history_only, entries in log:
            self._apply(map(partial(_observation, metas), entries), history_only, now, seen, False)
        return seen

    @property
    def has_log(self) -> bool:
        """Whether applied observations wait to be journaled."""
        return bool(self._log)

    def take_log(self) -> list[LogRecord]:
        """The `apply` calls since the last take, oldest first, as plain values (marshal writes them)."""
        log, self._log = self._log, []
        return log

    def return_log(self, log: list[LogRecord]) -> None:
        """A journal write that failed: its calls are owed again, ahead of what came since."""
        self._log[:0] = log

    def _apply(self, observations: Iterable[Observation], history_only: bool, now: float, seen: float,
               logged: bool) -> ApplyResult:
        result = ApplyResult()
        self._now = now
        self._now_ns = int(now * 1e9)
        self._seen = seen
        self._times = {}
        self._changed_any = False
        entries: list[LogEntry] = []
        for obs in observations:
            # The point keeps its own times (they tell a replay); only where it is filed is clamped.
            self._filed_ns = obs.time if 0 < obs.time <= self._now_ns else self._now_ns
            if obs.time > self._now_ns + FUTURE_TOLERANCE_NS:
                result.future += 1
            reason = self._apply_one(obs, result.applied, history_only)
            if reason is None:
                result.accepted += 1
            elif reason == "duplicate":
                result.duplicates += 1
                continue  # changed nothing: nothing to replay
            else:
                result.rejected[reason] += 1  # logged all the same: a refusal may follow a new family
            if logged:
                entries.append(_entry(obs))
        if entries:
            self._log.append((now, seen, history_only, entries))
        if self._changed_any:
            self.version += 1
        return result

    def keeps_history(self, family: str) -> bool:
        return self.history is not None and family in self.history.families

    def value(self, name: str, labels: Labels) -> float | None:
        """The current value of a counter or gauge series held in memory."""
        family = self.families.get(name)
        series = family.series.get(labels) if family else None
        return series.value if isinstance(series, Total) else None

    # --- restore, persistence, expiry -------------------------------------------------------
    def restore(self, meta: FamilyMeta, series: dict[Labels, Series]) -> None:
        """Put back what durable state holds (at start-up); nothing becomes dirty."""
        family = self.families.setdefault(meta.name, Family(meta))
        if self.names is not None:
            self.names.add(meta.name, meta.kind)
        if not family.series:  # the usual case at start-up: take the dict as it is
            family.series = series
            self._series_count += len(series)
            return
        for labels, one in series.items():
            if labels not in family.series:
                self._series_count += 1
            family.series[labels] = one

    def take_dirty(self) -> Dirty:
        series: dict[tuple[str, Labels], SeriesRow] = {}
        families = self.families
        for key in self._dirty_series:
            family = families.get(key[0])
            one = family.series.get(key[1]) if family else None
            series[key] = None if one is None else (snapshot_series(one), one.updated, one.created)
        inputs = self._inputs
        dirty = Dirty(
            {name: families[name].meta for name in self._dirty_families if name in families},
            series,
            {key: i.row() for key in self._dirty_inputs if (i := inputs.get(key)) is not None},
            self.history.take_dirty() if self.history is not None else {},
        )
        self._dirty_families.clear()
        self._dirty_series.clear()
        self._dirty_inputs.clear()
        return dirty

    def expire(self, now: float | None = None) -> tuple[int, int]:
        """Let go of series quiet for longer than their TTL, and of inputs quiet for longer than theirs
        in uptime (and over the memory cap, least recently seen first). Only what is durable, or not
        backed at all, goes."""
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
                    self.released(family.meta.name, labels)
                series_gone += len(stale)
            self._series_count -= series_gone
        uptime = self.uptime()
        clean = [(state.seen, key) for key, state in self._inputs.items() if key not in self._dirty_inputs]
        doomed = {key for seen, key in clean if limits.input_ttl > 0 and uptime - seen > limits.input_ttl}
        excess = len(self._inputs) - len(doomed) - limits.max_inputs_in_memory
        if excess > 0:  # backed: read back when needed; not backed: bounded memory beats an ancient replay
            doomed.update(key for _, key in sorted(clean)[:excess + len(doomed)])
        for key in doomed:
            del self._inputs[key]
        if series_gone:
            self.version += 1
        return series_gone, len(doomed)

    # --- applying one observation -------------------------------------------------------------
    def _family(self, meta: FamilyMeta) -> Family | str:
        """The family to write, or why there is none."""
        family = self.families.get(meta.name)
        if family is None:
            if len(self.families) >= self.limits.max_families:
                return "family_limit"
            if self.names is not None:
                if self.names.refusal(meta.name, meta.kind):
                    return "name_collision"
                self.names.add(meta.name, meta.kind)
            family = self.families[meta.name] = Family(meta)
            if self._tracking:
                self._dirty_families.add(meta.name)
        elif family.meta.kind is not meta.kind or family.meta.monotonic is not meta.monotonic:
            return "name_collision"  # another kind holds the name
        return family

    def released(self, name: str, labels: Labels) -> None:
        """Note a series the backing holds but memory does not (expired, or left on disk at start-up)."""
        if self._released is None:
            self._released = KeyFilter()
        self._released.add(_series_key(name, labels))

    def _held_elsewhere(self, name: str, labels: Labels) -> bool:
        """Whether the backing may hold a series memory does not: only one memory let go of can be
        there, so a new series (most are) costs no disk read."""
        return self._released is not None and _series_key(name, labels) in self._released

    def _series(self, family: Family, labels: Labels, new: Callable[[], Series]) -> Series | None:
        series = family.series.get(labels)
        if series is None:
            if self.backing is not None and self._held_elsewhere(family.meta.name, labels):
                series = self.backing.load_series(family.meta.name, labels)
            if series is None:
                if self._series_count >= self.limits.max_series:
                    return None
                series = new()
                series.created = self._now
            family.series[labels] = series
            self._series_count += 1
        return series

    def _input(self, key: bytes) -> InputState | None:
        state = self._inputs.get(key)
        if state is None and self.backing is not None:
            state = self.backing.load_input(key)
            if state is not None:
                self._inputs[key] = state
        return state

    def _apply_one(self, obs: Observation, applied: list[Applied], history_only: bool) -> str | None:
        family = self._family(obs.family)
        if isinstance(family, str):
            return family
        previous = self._input(obs.input_key) if obs.input_key is not None else None
        if history_only and (obs.temporality is Temporality.LAST_VALUE or not self.keeps_history(family.meta.name)):
            return "no_history"
        if obs.temporality is Temporality.LAST_VALUE:
            return self._set_gauge(family, obs, previous)
        if previous is not None and previous.is_replay(obs):
            return "duplicate"
        if isinstance(obs.value, HistogramValue):
            return self._add_histogram(family, obs, previous, applied, history_only)
        return self._add_number(family, obs, previous, applied, history_only)

    def _set_gauge(self, family: Family, obs: Observation, previous: InputState | None) -> str | None:
        if previous is not None and obs.time < previous.time:
            return "out_of_order"
        if obs.value is None:  # staleness marker
            self._remove(family, obs.labels)
            self._remember(obs, previous, None)
            return None
        value = cast(float, obs.value)
        if not math.isfinite(value):
            return "non_finite"
        series = cast(Total | None, self._series(family, obs.labels, Total))
        if series is None:
            return "series_limit"
        if series.value != value or series.updated == 0.0:
            series.set(value)
            self._changed(family.meta.name, obs.labels, series)
        self._remember(obs, previous, None)
        return None

    def _add_number(self, family: Family, obs: Observation, previous: InputState | None,
                    applied: list[Applied], history_only: bool) -> str | None:
        value = obs.value
        if not isinstance(value, float | int) or not math.isfinite(value):
            return "non_finite"
        monotonic = family.meta.monotonic
        if obs.temporality is Temporality.DELTA:
            if monotonic and value < 0:
                return "negative_delta"
            increase = float(value)
        elif previous is None or not isinstance(previous.value, int | float):
            increase = float(value)
        elif monotonic and (obs.start != previous.start or value < previous.value):
            increase = float(value)  # a new stream, or the counter restarted within its stream
        else:
            increase = value - previous.value
        if not history_only:
            series = cast(Total | None, self._series(family, obs.labels, Total))
            if series is None:
                return "series_limit"
            if not math.isfinite(series.value + increase):
                return "overflow"
            if increase != 0 or series.updated == 0.0:
                series.add(increase)
                self._changed(family.meta.name, obs.labels, series)
        self._file_history(family, obs, increase)
        self._remember(obs, previous, value if obs.temporality is Temporality.CUMULATIVE else None)
        if monotonic and increase:
            applied.append(Applied(family.meta, obs.labels, increase, 0, self._filed_ns, obs.origin))
        return None

    def _add_histogram(self, family: Family, obs: Observation, previous: InputState | None,
                       applied: list[Applied], history_only: bool) -> str | None:
        value = cast(HistogramValue, obs.value)
        last = previous.value if previous is not None else None
        if (
            obs.temporality is Temporality.CUMULATIVE
            and isinstance(last, HistogramValue)
            and last.bounds == value.bounds
            and value.count >= last.count
            and all(c >= p for c, p in zip(value.counts, last.counts, strict=True))
        ):
            counts: tuple[int, ...] | list[int] = [c - p for c, p in zip(value.counts, last.counts, strict=True)]
            count, total = value.count - last.count, value.sum - last.sum
        else:  # delta, first sight, or a reset
            counts, count, total = value.counts, value.count, value.sum
        if not history_only:
            series = cast(HistogramTotal | None, self._series(
                family, obs.labels, lambda: HistogramTotal(value.bounds, [0] * len(value.counts))))
            if series is None:
                return "series_limit"
            if series.bounds != value.bounds:
                return "histogram_bounds_changed"
            if not math.isfinite(total) or not math.isfinite(series.sum.value + total):
                return "overflow"
            series.add(counts, count, total)
            self._changed(family.meta.name, obs.labels, series)
        self._file_history(family, obs, total)
        self._remember(obs, previous, value if obs.temporality is Temporality.CUMULATIVE else None)
        if count:
            applied.append(Applied(family.meta, obs.labels, total, count, self._filed_ns, obs.origin))
        return None

    def _file_history(self, family: Family, obs: Observation, increase: float) -> None:
        if increase and self.history is not None and family.meta.name in self.history.families:
            self.history.add(family.meta.name, obs.labels, self._filed_ns / 1e9, increase)
            self._changed_any = True  # period spend shows it (an import files history alone)

    def _remove(self, family: Family, labels: Labels) -> None:
        if labels in family.series:
            del family.series[labels]
            self._series_count -= 1
        elif (self.backing is None or not self._held_elsewhere(family.meta.name, labels)
              or self.backing.load_series(family.meta.name, labels) is None):
            return
        if self._tracking:
            self._dirty_series.add((family.meta.name, labels))  # dirty and absent: deleted on disk too
        self._changed_any = True

    def _changed(self, name: str, labels: Labels, series: Series) -> None:
        series.updated = self._now
        if self._tracking:
            self._dirty_series.add((name, labels))
        self._changed_any = True

    def _remember(self, obs: Observation, previous: InputState | None, value: float | HistogramValue | None) -> None:
        key = obs.input_key
        if key is None:
            return
        if previous is None:
            previous = self._inputs[key] = InputState(obs.start, obs.time)
        elif obs.temporality is Temporality.DELTA:  # a stream seen once (most events) keeps no tuple
            previous.windows = (*previous.windows[2 - _RECENT_WINDOWS:], (previous.start, previous.time))
        times = self._times  # points of one export mostly share their times: one int object for all
        start, time_ = times.setdefault(obs.start, obs.start), times.setdefault(obs.time, obs.time)
        previous.start, previous.time, previous.value, previous.seen = start, time_, value, self._seen
        if self._tracking:
            self._dirty_inputs.add(key)
