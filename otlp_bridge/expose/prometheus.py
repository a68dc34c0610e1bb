"""A snapshot as exposition through prometheus_client (OpenMetrics, and the reference the
purpose-built text renderer is tested against)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric

from otlp_bridge.expose.snapshot import HistogramSnapshot, Snapshot, histogram_buckets
from otlp_bridge.translate.metrics import Kind


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
    for le, cumulative in histogram_buckets(value):
        metric.add_sample(f"{name}_bucket", {**labels, "le": le}, cumulative)
    metric.add_sample(f"{name}_count", labels, value[2])
    metric.add_sample(f"{name}_sum", labels, value[3])


class _SnapshotCollector:
    def __init__(self, snap: Snapshot) -> None:
        self._snap = snap

    def collect(self) -> Iterator[Metric]:
        return _family_metrics(self._snap)


def render(snap: Snapshot, accept: str | None) -> tuple[bytes, str]:
    """Exposition body and content type through prometheus_client, as `accept` asks."""
    encoder, content_type = choose_encoder(accept or "")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snap))  # type: ignore[arg-type]
    return encoder(registry), content_type
