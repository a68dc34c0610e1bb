"""A copy of what a scrape shows, taken on the event loop (cheap) so rendering can run in a
worker thread without reading the store while the loop writes it."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

from otlp_bridge.families import INTERNAL_PREFIX
from otlp_bridge.self_metrics import SelfMetrics
from otlp_bridge.series import FamilyMeta, Labels
from otlp_bridge.store.accumulator import HistogramTotal, Store, Total

HistogramSnapshot = tuple[tuple[float, ...], tuple[int, ...], int, float]
# labels, value, created (Unix seconds; 0.0 when unknown)
Sample = tuple[Labels, float | HistogramSnapshot, float]
FamilySnapshot = tuple[FamilyMeta, list[Sample]]

CHUNK = 5000  # series copied between two yields to the event loop


async def snapshot(store: Store) -> list[FamilySnapshot]:
    """Copy the store's exposed families, yielding to the loop every CHUNK series so exports keep
    flowing during a scrape of many series. Each value is one the series really had; a series that
    changes mid-copy shows its old or its new value, as with any scrape."""
    families = []
    for family in list(store.families.values()):
        if family.meta.name.startswith(INTERNAL_PREFIX):
            continue
        items = list(family.series.items())  # the dict may grow while we yield
        samples: list[Sample] = []
        for start in range(0, len(items), CHUNK):
            samples.extend([(labels, series.value if type(series) is Total else _histogram_snapshot(series),
                             series.created) for labels, series in items[start:start + CHUNK]])
            if len(items) > CHUNK:
                await asyncio.sleep(0)
        families.append((family.meta, samples))
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
