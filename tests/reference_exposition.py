"""A snapshot exposed through prometheus_client's own exposition: the reference the purpose-built
renderers (otlp_bridge/expose/render.py) are tested against, in both formats."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from otlp_bridge.expose.snapshot import FamilySnapshot, HistogramSnapshot, histogram_buckets
from otlp_bridge.series import Kind


def _family_metrics(families: list[FamilySnapshot], openmetrics: bool) -> Iterator[Metric]:
    for family in families:
        meta, samples = family.meta, list(family.samples())
        if meta.kind is Kind.HISTOGRAM:
            metric = Metric(meta.name, meta.help, "histogram")
            for labels, value, created in samples:
                _add_histogram(metric, meta.name, dict(labels), value, created, openmetrics)  # type: ignore[arg-type]
        else:
            # prometheus_client names a counter family without its `_total` sample suffix.
            base = meta.name.removesuffix("_total") if meta.kind is Kind.COUNTER else meta.name
            metric = Metric(base, meta.help, meta.kind.value)
            for labels, value, created in samples:
                metric.add_sample(meta.name, dict(labels), value)  # type: ignore[arg-type]
                if openmetrics and meta.kind is Kind.COUNTER and created:
                    metric.add_sample(base + "_created", dict(labels), created)
        yield metric


def _add_histogram(metric: Metric, name: str, labels: dict[str, str], value: HistogramSnapshot, created: float,
                   openmetrics: bool) -> None:
    for le, cumulative in histogram_buckets(value):
        metric.add_sample(f"{name}_bucket", {**labels, "le": le}, cumulative)
    metric.add_sample(f"{name}_count", labels, value[2])
    metric.add_sample(f"{name}_sum", labels, value[3])
    if openmetrics and created:
        metric.add_sample(f"{name}_created", labels, created)


class _Collector:
    def __init__(self, metrics: list[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> list[Metric]:
        return self._metrics


def reference(families: list[FamilySnapshot], tail: list[Metric], openmetrics: bool) -> str:
    """The exposition prometheus_client writes for the same families and tail."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector([*_family_metrics(families, openmetrics), *tail]))  # type: ignore[arg-type]
    return (generate_openmetrics if openmetrics else generate_latest)(registry).decode()
