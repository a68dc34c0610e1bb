"""The official OpenTelemetry Python SDK exporters as clients, many intervals, known values."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, ObservableGauge, UpDownCounter
from opentelemetry.sdk.metrics.export import AggregationTemporality, MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

from tests.support import RunningBridge

BOUNDS = (1.0, 5.0, 10.0, 50.0)
INTERVALS = 25


def _temporality(kind: AggregationTemporality) -> dict[type, AggregationTemporality]:
    return {Counter: kind, UpDownCounter: kind, Histogram: kind, ObservableGauge: kind}


def _exporter(bridge: RunningBridge, transport: str, temporality: AggregationTemporality, gzip: bool) -> MetricExporter:
    preferred = _temporality(temporality)
    if transport == "grpc":
        from grpc import Compression  # noqa: PLC0415 - only the gRPC exporter takes grpc's enum

        return GrpcMetricExporter(endpoint=f"127.0.0.1:{bridge.ports.grpc}", insecure=True,
                                  compression=Compression.Gzip if gzip else None,
                                  preferred_temporality=preferred)
    return HttpMetricExporter(endpoint=f"{bridge.http_base}/v1/metrics",
                              compression=HttpCompression.Gzip if gzip else HttpCompression.NoCompression,
                              preferred_temporality=preferred)


@dataclass
class Expected:
    counter: dict[str, float] = field(default_factory=lambda: {"a": 0.0, "b": 0.0})
    decimal_adds: list[float] = field(default_factory=list)
    updown: float = 0.0
    gauge: float = 0.0
    observations: list[float] = field(default_factory=list)


def _drive(provider: MeterProvider, flush: Callable[[], None]) -> Expected:
    """Record known values for INTERVALS export intervals; returns what a scrape must show."""
    meter = provider.get_meter("bridge.test")
    counter = meter.create_counter("test.requests", unit="1", description="requests")
    money = meter.create_counter("test.spend", unit="USD")
    updown = meter.create_up_down_counter("test.inflight")
    gauge = meter.create_gauge("test.temperature", unit="Cel")
    histogram = meter.create_histogram("test.latency", unit="ms")
    expected = Expected()
    for i in range(INTERVALS):
        key = "a" if i % 3 else "b"
        counter.add(i, {"route": key})
        expected.counter[key] += i
        money.add(0.0066954)  # Claude Code's per-request cost: decimal, not binary-exact
        expected.decimal_adds.append(0.0066954)
        step = 3 if i % 2 else -2
        updown.add(step)
        expected.updown += step
        gauge.set(i * 1.5, {"room": "lab"})
        expected.gauge = i * 1.5
        for v in (i % 7, i * 2.5, 0.5):
            histogram.record(v, {"route": key})
            expected.observations.append(v)
        flush()
    return expected


@pytest.mark.parametrize("transport", ["grpc", "http"])
@pytest.mark.parametrize("temporality", [AggregationTemporality.DELTA, AggregationTemporality.CUMULATIVE],
                         ids=["delta", "cumulative"])
@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
def test_sdk_exports_scrape_exactly(
    bridge: RunningBridge, transport: str, temporality: AggregationTemporality, gzip: bool,
) -> None:
    exporter = _exporter(bridge, transport, temporality, gzip)
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(
        resource=Resource.create({"service.name": "sdk-test", "service.instance.id": "i-1", "team.id": "core"}),
        metric_readers=[reader],
        views=[View(instrument_name="test.latency", aggregation=ExplicitBucketHistogramAggregation(BOUNDS))],
    )
    try:
        expected = _drive(provider, lambda: provider.force_flush(10_000))
    finally:
        provider.shutdown()
    scrape = bridge.scrape()
    job = {"job": "sdk-test", "instance": "i-1"}
    # unit "1" adds nothing, monotonic sums end in _total
    assert scrape.total("test_requests_total", route="a", **job) == expected.counter["a"]
    assert scrape.total("test_requests_total", route="b", **job) == expected.counter["b"]
    # delta: our compensated sum is the correctly rounded total; cumulative: exactly the value the
    # SDK itself last reported (its own running float sum), however many intervals it took.
    sdk_running_total = 0.0
    for amount in expected.decimal_adds:
        sdk_running_total += amount
    delta = temporality is AggregationTemporality.DELTA
    spend = math.fsum(expected.decimal_adds) if delta else sdk_running_total
    assert scrape.total("test_spend_USD_total", **job) == spend
    assert scrape.total("test_inflight", **job) == expected.updown
    assert scrape.total("test_temperature_celsius", room="lab", **job) == expected.gauge
    obs = expected.observations
    assert scrape.total("test_latency_milliseconds_count", **job) == len(obs)
    assert scrape.total("test_latency_milliseconds_sum", **job) == pytest.approx(math.fsum(obs), rel=1e-12)
    for bound in BOUNDS:
        le = str(bound)
        assert scrape.total("test_latency_milliseconds_bucket", le=le, **job) == sum(v <= bound for v in obs), le
    assert scrape.total("test_latency_milliseconds_bucket", le="+Inf", **job) == len(obs)
    (info,) = scrape.series("target_info")
    assert info["team_id"] == "core"
    assert info["job"] == "sdk-test"
    assert scrape.total("otlp_bridge_requests_total", transport=transport, signal="metrics", outcome="success") \
        >= INTERVALS
    assert scrape.total("otlp_bridge_rejected_items_total") == 0
