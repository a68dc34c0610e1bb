"""What one push carries: every exposed series' current value at one instant, and the zero sample
that starts each counter or histogram created since the previous push.

Read from the store on the event loop (its only writer) in chunks, yielding between them as a
scrape does, so exports keep flowing while 200k series are copied.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric

from otlp_bridge.expose.snapshot import CHUNK, histogram_buckets
from otlp_bridge.families import INTERNAL_PREFIX
from otlp_bridge.series import Kind, Labels
from otlp_bridge.store.accumulator import HistogramTotal, Store, Total

Point = tuple[str, Labels, float]  # sample name, labels, value


@dataclass
class Collected:
    time_ms: int
    points: list[Point] = field(default_factory=list)
    # Zero samples at each new counter's creation: without them `increase()` in the receiver cannot
    # see the first value of a series that appears with its whole total (a new user, a new model).
    starts: list[tuple[str, Labels, int]] = field(default_factory=list)  # sample name, labels, created ms


def _histogram_points(name: str, labels: Labels, series: HistogramTotal) -> list[Point]:
    snap = (series.bounds, tuple(series.counts), series.count, series.sum.value)
    points: list[Point] = [(f"{name}_bucket", (*labels, ("le", le)), float(cumulative))
                           for le, cumulative in histogram_buckets(snap)]
    points.append((f"{name}_count", labels, float(series.count)))
    points.append((f"{name}_sum", labels, series.sum.value))
    return points


async def collect(store: Store, since: float, now: float, derived: Iterable[Metric] = ()) -> Collected:
    """Every exposed series at `now` (Unix seconds); a start for each counter created after `since`
    (the previous push's instant), so no start is sent twice and none lands before the receiver
    could have seen the series."""
    out = Collected(round(now * 1000))
    for family in list(store.families.values()):
        meta = family.meta
        if meta.name.startswith(INTERNAL_PREFIX):  # the bridge's own bookkeeping, never exposed
            continue
        items = list(family.series.items())  # the dict may grow while we yield
        for first in range(0, len(items), CHUNK):
            for labels, series in items[first:first + CHUNK]:
                points = ([(meta.name, labels, series.value)] if isinstance(series, Total)
                          else _histogram_points(meta.name, labels, series))
                out.points.extend(points)
                created = getattr(series, "created", None) or 0.0
                created_ms = round(created * 1000)
                if meta.kind is not Kind.GAUGE and since < created and created_ms < out.time_ms:
                    out.starts.extend((name, point_labels, created_ms) for name, point_labels, _ in points)
            if len(items) > CHUNK:
                await asyncio.sleep(0)
    for metric in derived:  # the derived gauges (budgets, cache ratio, ...) computed from the same totals
        out.points.extend((s.name, tuple(sorted(s.labels.items())), s.value) for s in metric.samples)
    return out
