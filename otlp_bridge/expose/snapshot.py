"""A copy of what a scrape shows, taken on the event loop (cheap) so rendering can run in a
worker thread without reading the store while the loop writes it."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

from otlp_bridge.families import INTERNAL_PREFIX
from otlp_bridge.self_metrics import SelfMetrics
from otlp_bridge.series import FamilyMeta, Kind, Labels
from otlp_bridge.store.accumulator import HistogramTotal, Store

HistogramSnapshot = tuple[tuple[float, ...], tuple[int, ...], int, float]


@dataclass(frozen=True, slots=True)
class FamilySnapshot:
    """One family's series as parallel lists: labels, values, and when each was created (Unix seconds;
    0.0 when unknown). Lists of floats, not a tuple per series: a copy of 100k series then allocates
    nothing the garbage collector must trace (tuples would set off full collections mid-scrape)."""

    meta: FamilyMeta
    labels: list[Labels]
    values: list[float] | list[HistogramSnapshot]
    created: list[float]

    @classmethod
    def of(cls, meta: FamilyMeta, samples: list[tuple[Labels, float | HistogramSnapshot, float]]) -> FamilySnapshot:
        labels, values, created = (list(column) for column in zip(*samples, strict=True)) if samples else ([], [], [])
        return cls(meta, labels, values, created)

    def samples(self) -> Iterator[tuple[Labels, float | HistogramSnapshot, float]]:
        return zip(self.labels, self.values, self.created, strict=True)


CHUNK = 5000  # series copied between two yields to the event loop


async def snapshot(store: Store) -> list[FamilySnapshot]:
    """Copy the store's exposed families, yielding to the loop every CHUNK series so exports keep
    flowing during a scrape of many series. Each value is one the series really had; a series that
    changes mid-copy shows its old or its new value, as with any scrape."""
    families = []
    for family in list(store.families.values()):
        if family.meta.name.startswith(INTERNAL_PREFIX) or not family.series:
            continue  # internal, or every series gone (staleness markers): no HELP/TYPE without samples
        # Copied at once (no yield between): the dict may grow while we yield below.
        labels, held = list(family.series), list(family.series.values())
        values: list[Any] = []
        created: list[float] = []
        histogram = family.meta.kind is Kind.HISTOGRAM
        for start in range(0, len(held), CHUNK):
            chunk = held[start:start + CHUNK]
            if histogram:
                values.extend([_histogram_snapshot(series) for series in chunk])  # type: ignore[arg-type]
            else:
                values.extend([series.value for series in chunk])  # type: ignore[union-attr]
            created.extend([series.created for series in chunk])
            if len(held) > CHUNK:
                await asyncio.sleep(0)
        families.append(FamilySnapshot(family.meta, labels, values, created))
    return families


def _histogram_snapshot(series: HistogramTotal) -> HistogramSnapshot:
    return series.bounds, tuple(series.counts), series.count, series.sum.value


def self_families(store: Store, stats: SelfMetrics, exposition: Counter[tuple[str, str]]) -> Iterator[Metric]:
    """The bridge's own counters and gauges; `exposition` counts what scrapes left out or fixed."""
    requests = Metric("otlp_bridge_requests", "OTLP export requests by transport, signal and outcome.", "counter")
    for (transport, signal, outcome), count in sorted(stats.requests.items()):
        requests.add_sample("otlp_bridge_requests_total",
                            {"transport": transport, "signal": signal, "outcome": outcome}, count)
    yield requests
    items = Metric("otlp_bridge_items", "Data points, log records and spans received, by outcome.", "counter")
    for (signal, outcome), count in sorted(stats.items.items()):
        items.add_sample("otlp_bridge_items_total", {"signal": signal, "outcome": outcome}, count)
    yield items
    rejected = Metric("otlp_bridge_rejected_items", "Items refused, by reason.", "counter")
    for (signal, reason), count in sorted(stats.rejected.items()):
        rejected.add_sample("otlp_bridge_rejected_items_total", {"signal": signal, "reason": reason}, count)
    yield rejected
    refused = Metric("otlp_bridge_connections_refused", "Connections refused before any request, by reason.",
                     "counter")
    for (transport, reason), count in sorted(stats.connections.items()):
        refused.add_sample("otlp_bridge_connections_refused_total", {"transport": transport, "reason": reason}, count)
    yield refused
    fixed = Metric("otlp_bridge_exposition_omitted",
                   "What /metrics, /summary and /insights left out or replaced so every answer stays valid, "
                   "by endpoint and reason.", "counter")
    for (endpoint, reason), count in sorted(exposition.items()):
        fixed.add_sample("otlp_bridge_exposition_omitted_total", {"endpoint": endpoint, "reason": reason}, count)
    yield fixed
    live = Metric("otlp_bridge_series", "Live series exposed (bridge's own excluded).", "gauge")
    live.add_sample("otlp_bridge_series", {}, store.series_count)
    yield live
    inputs = Metric("otlp_bridge_input_series", "Input series tracked for temporality and dedupe.", "gauge")
    inputs.add_sample("otlp_bridge_input_series", {}, store.input_count)
    yield inputs


def histogram_buckets(value: HistogramSnapshot) -> Iterator[tuple[str, int]]:
    """(le, cumulative count) for each bucket of a histogram snapshot, ending with +Inf. A bound that
    is not finite is skipped (its bucket folds into the next): `le` must be a number, +Inf comes once."""
    bounds, counts, count, _ = value
    cumulative = 0
    for bound, bucket in zip(bounds, counts, strict=False):
        cumulative += bucket
        if bound - bound == 0:  # finite: inf - inf and nan - nan are nan
            yield floatToGoString(bound), cumulative
    yield "+Inf", count
