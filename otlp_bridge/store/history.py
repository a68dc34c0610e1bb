"""Increases per output series per hour: what budgets, burn rates and forecasts are queries over.

Kept for the families worth asking "how much in this period" (cost and tokens), so a budget added,
renamed or edited later is exact for everything the bridge holds. Hours are counted in the
configured timezone (a local hour index: local seconds since the epoch // 3600), so every local
midnight is a bucket boundary even where the UTC offset is not whole hours; a local hour that
happens twice when the clocks go back shares one bucket.

Bounded: buckets older than `retention_hours` are pruned, and past `max_buckets` the oldest go first.
Written only by the store, as it applies increases.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, tzinfo

from otlp_bridge.series import Labels

Key = tuple[str, Labels]  # family, labels


def local_hour(seconds: float, tz: tzinfo) -> int:
    """The local hour index of a Unix time."""
    return int((seconds + _offset(int(seconds // _SLOT), tz)) // 3600)


# UTC offsets change only on quarter-hour boundaries (today's zones, DST included), so one look-up per
# zone and quarter hour serves every point filed in it; bounded by starting over.
_SLOT = 900
_OFFSETS: dict[tuple[int, tzinfo], float] = {}


def _offset(slot: int, tz: tzinfo) -> float:
    found = _OFFSETS.get((slot, tz))
    if found is None:
        if len(_OFFSETS) > 65536:
            _OFFSETS.clear()
        offset = datetime.fromtimestamp(slot * _SLOT, tz).utcoffset()
        found = _OFFSETS[slot, tz] = offset.total_seconds() if offset else 0.0
    return found


class History:
    def __init__(self, families: Iterable[str], tz: tzinfo, *, retention_hours: int = 24 * 62,
                 max_buckets: int = 1_000_000) -> None:
        self.families = frozenset(families)
        self.tz = tz
        self.retention_hours = retention_hours
        self.max_buckets = max_buckets
        self.buckets: dict[Key, dict[int, float]] = {}
        self.size = 0
        self.evicted = 0  # buckets let go early because the table was full
        self.dirty: set[tuple[Key, int]] = set()
        self.tracking = True  # what changed matters only to a durable store's checkpoints (the store says)

    def add(self, family: str, labels: Labels, seconds: float, increase: float) -> None:
        """File an increase under its hour. Never refuses (the total it belongs to is already
        counted): past the cap the oldest tenth of the buckets is let go, and counted."""
        hour = local_hour(seconds, self.tz)
        key = (family, labels)
        per_hour = self.buckets.get(key)
        if per_hour is None:
            per_hour = self.buckets[key] = {}
        if hour not in per_hour:
            per_hour[hour] = 0.0
            self.size += 1
        per_hour[hour] += increase
        if self.tracking:
            self.dirty.add((key, hour))
        if self.size > self.max_buckets:
            self.evicted += len(self._drop(self._oldest(self.size - self.max_buckets * 9 // 10)))

    def restore(self, family: str, labels: Labels, hours: dict[int, float]) -> None:
        """Put back one series' hours (at start-up: the dict as loaded becomes the series' own)."""
        per_hour = self.buckets.get((family, labels))
        if per_hour is None:
            self.buckets[family, labels] = hours
            self.size += len(hours)
            return
        self.size += len(hours.keys() - per_hour.keys())
        per_hour.update(hours)

    def total(self, family: str, start: float, end: float, match: Mapping[str, str] | None = None) -> float:
        """Sum of a family's increases filed in [start, end) (Unix seconds; hour resolution), over the
        series whose labels include every `match` pair."""
        return math.fsum(value for _, value in self._between(family, start, end, match))

    def by_hour(self, family: str, start: float, end: float,
                match: Mapping[str, str] | None = None) -> dict[int, float]:
        """Per local hour index, the family's increases in [start, end)."""
        out: dict[int, float] = {}
        for hour, value in self._between(family, start, end, match):
            out[hour] = out.get(hour, 0.0) + value
        return out

    def series(self, family: str, match: Mapping[str, str] | None = None) -> Iterator[tuple[Labels, dict[int, float]]]:
        """A family's series (those whose labels include every `match` pair) with their hours."""
        for (name, labels), per_hour in self.buckets.items():
            if name == family and (not match or _matches(labels, match)):
                yield labels, per_hour

    def _between(self, family: str, start: float, end: float,
                 match: Mapping[str, str] | None) -> Iterator[tuple[int, float]]:
        first, last = local_hour(start, self.tz), local_hour(end, self.tz)
        for _, per_hour in self.series(family, match):
            yield from hours_between(per_hour, first, last)

    def prune(self, now: float) -> list[tuple[Key, int]]:
        """Drop buckets past retention; returns what went (persistence deletes it too)."""
        oldest = local_hour(now, self.tz) - self.retention_hours
        return self._drop([(key, hour) for key, per_hour in self.buckets.items() for hour in per_hour
                           if hour < oldest])

    def _oldest(self, count: int) -> list[tuple[Key, int]]:
        everything = sorted((hour, key) for key, per_hour in self.buckets.items() for hour in per_hour)
        return [(key, hour) for hour, key in everything[:count]]

    def _drop(self, gone: list[tuple[Key, int]]) -> list[tuple[Key, int]]:
        for key, hour in gone:
            per_hour = self.buckets[key]
            del per_hour[hour]
            if not per_hour:
                del self.buckets[key]
            if self.tracking:
                self.dirty.add((key, hour))  # dirty and absent: deleted on disk too
        self.size -= len(gone)
        return gone

    def take_dirty(self) -> dict[tuple[str, Labels, int], float | None]:
        """Changed buckets, (family, labels, hour) → value (None: the bucket is gone)."""
        buckets = self.buckets
        out = {(key[0], key[1], hour): buckets.get(key, {}).get(hour) for key, hour in self.dirty}
        self.dirty.clear()
        return out


def hours_between(per_hour: dict[int, float], first: int, last: int) -> Iterator[tuple[int, float]]:
    """A series' buckets in hours [first, last): by the hours of the window when it is the shorter
    (a day's or a 5-hour window's look-ups into 62 days of buckets), else by the buckets."""
    if last - first < len(per_hour):
        for hour in range(first, last):
            value = per_hour.get(hour)
            if value is not None:
                yield hour, value
    else:
        yield from ((hour, value) for hour, value in per_hour.items() if first <= hour < last)


def _matches(labels: Labels, match: Mapping[str, str]) -> bool:
    present = dict(labels)
    return all(present.get(k) == v for k, v in match.items())
