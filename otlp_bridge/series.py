"""The types every step of the write path shares: translate and derive make `Observation`s, the store
applies them and answers with what it `Applied`. A module of its own so the store never imports the
translators that feed it."""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass
from enum import Enum, StrEnum

Labels = tuple[tuple[str, str], ...]


class Kind(StrEnum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


class Temporality(Enum):
    DELTA = "delta"
    CUMULATIVE = "cumulative"
    LAST_VALUE = "last_value"


@dataclass(frozen=True, slots=True)
class FamilyMeta:
    name: str  # full Prometheus name; counters end in `_total`
    kind: Kind
    help: str
    monotonic: bool = True


@dataclass(frozen=True, slots=True)
class HistogramValue:
    bounds: tuple[float, ...]
    counts: tuple[int, ...]  # per bucket, len(bounds) + 1
    count: int
    sum: float

    @classmethod
    def single(cls, bounds: tuple[float, ...], value: float) -> HistogramValue:
        """One observation, in the first bucket whose upper bound holds it (Prometheus `le`)."""
        counts = [0] * (len(bounds) + 1)
        counts[bisect.bisect_left(bounds, value)] = 1
        return cls(bounds, tuple(counts), 1, value)


@dataclass(slots=True)
class Observation:
    """One point for one output series.

    `input_key` names the input stream whose temporality and replays the store tracks; None for a
    derived point whose source was already deduplicated. `value` None on a gauge is a staleness
    marker: the series goes away. `origin` is the translator's own record (an event), handed back in
    `Applied` so a later step can derive from exactly what was applied."""

    family: FamilyMeta
    input_key: bytes | None
    labels: Labels
    temporality: Temporality
    start: int
    time: int
    value: float | HistogramValue | None
    origin: object = None


@dataclass(frozen=True, slots=True)
class Applied:
    """An increase the store applied to a counter or histogram (gauges yield none).

    For a histogram `increase` is its sum's increase and `count` its count's; `time_ns` is the
    point's time as the store filed it (never in the future)."""

    family: FamilyMeta
    labels: Labels
    increase: float
    count: int
    time_ns: int
    origin: object = None


def with_labels(labels: Labels, **extra: str) -> Labels:
    """`labels` plus `extra` (which win; empty values are left out), sorted as every label set is."""
    merged = dict(labels)
    merged.update({k: v for k, v in extra.items() if v != ""})
    return tuple(sorted(merged.items()))


def input_key(*parts: object) -> bytes:
    """The identity of an input series as a 16-byte digest: what temporality and replay state are
    kept under, in memory and on disk, for a fraction of the size of the parts themselves."""
    return input_digest(repr(parts))


def input_digest(parts_repr: str) -> bytes:
    """`input_key` of parts whose repr is given (translators cache the repr up to a varying tail)."""
    return hashlib.blake2b(parts_repr.encode(), digest_size=16).digest()


# Label pairs shared by many series (job, user, model, …) are held once: a series' labels then cost
# little more than a tuple of pointers. Bounded: past the cap the table starts over (sharing is lost
# for what came before, nothing else). Real traffic has a few thousand distinct pairs; under a
# cardinality attack every pair is new, and a large table would only hold the attacker's values.
_PAIRS: dict[tuple[str, str], tuple[str, str]] = {}
_MAX_PAIRS = 1 << 16


def intern_labels(labels: Labels) -> Labels:
    """`labels` built from pairs already held, where there are such."""
    if len(_PAIRS) > _MAX_PAIRS:
        _PAIRS.clear()
    return tuple(map(_PAIRS.setdefault, labels, labels))
