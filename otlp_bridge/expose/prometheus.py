"""The store and the bridge's own counters as Prometheus exposition.

`snapshot` runs on the event loop and copies plain values (cheap); `render`
turns a snapshot into text in a worker thread, so a scrape never holds the
loop while it formats, and never reads the store while the loop writes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

from otlp_bridge.derive.economics import INTERNAL_PREFIX
from otlp_bridge.self_metrics import SelfMetrics
from otlp_bridge.store.accumulator import HistogramTotal, Store, Total
from otlp_bridge.translate.metrics import FamilyMeta, Kind, Labels

HistogramSnapshot = tuple[tuple[float, ...], tuple[int, ...], int, float]


@dataclass(frozen=True)
class Snapshot:
    families: list[tuple[FamilyMeta, list[tuple[Labels, float | HistogramSnapshot]]]]
    self_families: list[Metric]


def snapshot(store: Store, stats: SelfMetrics, derived: Iterable[Metric] = ()) -> Snapshot:
    families = []
    for family in store.families.values():
        if family.meta.name.startswith(INTERNAL_PREFIX):
            continue
        samples: list[tuple[Labels, float | HistogramSnapshot]] = []
        for labels, series in family.series.items():
            if isinstance(series, Total):
                samples.append((labels, series.value))
            else:
                samples.append((labels, _histogram_snapshot(series)))
        families.append((family.meta, samples))
    return Snapshot(families, [*derived, *_self_families(store, stats)])


def _histogram_snapshot(series: HistogramTotal) -> HistogramSnapshot:
    return series.bounds, tuple(series.counts), series.count, series.sum.value


def _self_families(store: Store, stats: SelfMetrics) -> Iterator[Metric]:
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
    live = Metric("otlp_bridge_series", "Live series exposed (bridge's own excluded).", "gauge")
    live.add_sample("otlp_bridge_series", {}, store.series_count)
    yield live
    inputs = Metric("otlp_bridge_input_series", "Input series tracked for temporality and dedupe.", "gauge")
    inputs.add_sample("otlp_bridge_input_series", {}, store.input_count)
    yield inputs


def _family_metrics(snap: Snapshot) -> Iterator[Metric]:
    for meta, samples in snap.families:
        if meta.kind is Kind.HISTOGRAM:
            metric = Metric(meta.name, meta.help, "histogram")
            for labels, value in samples:
                _add_histogram(metric, meta.name, dict(labels), value)  # type: ignore[arg-type]
        else:
            # prometheus_client names a counter family without its `_total` sample suffix.
            metric = Metric(meta.name.removesuffix("_total") if meta.kind is Kind.COUNTER else meta.name,
                            meta.help, meta.kind.value)
            for labels, value in samples:
                metric.add_sample(meta.name, dict(labels), value)  # type: ignore[arg-type]
        yield metric
    yield from snap.self_families


def _add_histogram(metric: Metric, name: str, labels: dict[str, str], value: HistogramSnapshot) -> None:
    bounds, counts, count, total = value
    cumulative = 0
    for bound, bucket in zip(bounds, counts, strict=False):
        cumulative += bucket
        metric.add_sample(f"{name}_bucket", {**labels, "le": floatToGoString(bound)}, cumulative)
    metric.add_sample(f"{name}_bucket", {**labels, "le": "+Inf"}, count)
    metric.add_sample(f"{name}_count", labels, count)
    metric.add_sample(f"{name}_sum", labels, total)


class _SnapshotCollector:
    def __init__(self, snap: Snapshot) -> None:
        self._snap = snap

    def collect(self) -> Iterator[Metric]:
        return _family_metrics(self._snap)


def render(snap: Snapshot, accept: str | None) -> tuple[bytes, str]:
    """Exposition body and content type, Prometheus text or OpenMetrics as `accept` asks."""
    encoder, content_type = choose_encoder(accept or "")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snap))  # type: ignore[arg-type]
    return encoder(registry), content_type
