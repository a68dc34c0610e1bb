"""Translation, one row a case: an OTLP metric in, the observations (or refusals) out."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from otlp_bridge.series import Kind, Temporality
from otlp_bridge.translate.metrics import LabelPolicy, Translation, translate_metrics

POLICY = LabelPolicy(frozenset({"session.id"}), max_value_length=12)
RESOURCE = {"service.name": "claude-code", "team.id": "platform", "session.id": "s"}


def _attrs(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": {"stringValue": v}} for k, v in values.items()]


def _translate(metric: dict[str, Any], resource: dict[str, str] | None = None) -> Translation:
    document = {"resourceMetrics": [{"resource": {"attributes": _attrs(resource or RESOURCE)},
                                     "scopeMetrics": [{"metrics": [metric]}]}]}
    return translate_metrics(json_format.ParseDict(document, ExportMetricsServiceRequest()), POLICY)


def _point(value: float = 1.0, start: int = 100, time: int = 200, **attributes: str) -> dict[str, Any]:
    return {"asDouble": value, "startTimeUnixNano": str(start), "timeUnixNano": str(time),
            "attributes": _attrs(attributes)}


def _sum(points: list[dict[str, Any]], *, temporality: int = 1, monotonic: bool = True,
         name: str = "claude_code.cost.usage", unit: str = "USD") -> dict[str, Any]:
    return {"name": name, "unit": unit,
            "sum": {"aggregationTemporality": temporality, "isMonotonic": monotonic, "dataPoints": points}}


@pytest.mark.parametrize(("metric", "family", "kind", "temporality"), [
    (_sum([_point()]), "claude_code_cost_usage_USD_total", Kind.COUNTER, Temporality.DELTA),
    (_sum([_point()], temporality=2), "claude_code_cost_usage_USD_total", Kind.COUNTER, Temporality.CUMULATIVE),
    (_sum([_point()], temporality=2, monotonic=False, name="queue.depth", unit="1"), "queue_depth",
     Kind.GAUGE, Temporality.CUMULATIVE),
    ({"name": "cpu.utilization", "unit": "1", "gauge": {"dataPoints": [_point()]}}, "cpu_utilization_ratio",
     Kind.GAUGE, Temporality.LAST_VALUE),
    ({"name": "latency", "unit": "ms", "histogram": {"aggregationTemporality": 1, "dataPoints": [
        {"count": "2", "sum": 3.0, "bucketCounts": ["1", "1"], "explicitBounds": [1.0], "timeUnixNano": "5"}]}},
     "latency_milliseconds", Kind.HISTOGRAM, Temporality.DELTA),
])
def test_kinds_and_temporalities(metric: dict[str, Any], family: str, kind: Kind, temporality: Temporality) -> None:
    (obs,) = _translate(metric).observations
    assert (obs.family.name, obs.family.kind, obs.temporality) == (family, kind, temporality)


def test_labels_follow_the_policy_and_the_resource_gives_job() -> None:
    (obs,) = _translate(_sum([_point(model="claude-opus-5-5", **{"session.id": "s1", "": "x"})])).observations
    assert obs.labels == (("job", "claude-code"), ("model", "claude-opus-"))  # dropped, '' gone, value capped


def test_target_info_carries_resource_attributes_under_the_same_policy() -> None:
    (info,) = _translate(_sum([_point()])).targets
    assert info.labels == (("job", "claude-code"), ("team_id", "platform"))  # session.id dropped here too


def test_a_monotonic_cumulative_stream_is_keyed_by_its_start_time() -> None:
    a, b = _translate(_sum([_point(start=100), _point(start=150)], temporality=2)).observations
    assert a.labels == b.labels
    assert a.input_key != b.input_key  # two processes sharing every attribute: two streams
    c, d = _translate(_sum([_point(start=100), _point(start=150)], temporality=1)).observations
    assert c.input_key == d.input_key  # deltas move their start every export: one stream
    e, f = _translate(_sum([_point(start=100), _point(start=150)], temporality=2, monotonic=False,
                           name="queue.depth", unit="")).observations
    assert e.input_key == f.input_key  # an up-down counter restarting replaces its contribution


@pytest.mark.parametrize(("metric", "reason"), [
    (_sum([_point()], temporality=0), "unspecified_temporality"),
    (_sum([_point()], name="otlp_bridge.internal.spend", unit="USD"), "reserved_name"),
    (_sum([_point()], name="claude_code.api_requests", unit=""), "reserved_name"),
    (_sum([_point()], name="claude_code.cost.usage.USD.total", unit="", monotonic=False), "reserved_name"),
    (_sum([_point()], name="...", unit=""), "invalid_name"),
    ({"name": "x", "summary": {"dataPoints": [{"count": "1", "sum": 1.0}]}}, "unsupported_summary"),
    ({"name": "h", "histogram": {"aggregationTemporality": 1, "dataPoints": [
        {"count": "3", "sum": 1.0, "bucketCounts": ["1", "1"], "explicitBounds": [1.0]}]}}, "invalid_value"),
])
def test_refusals(metric: dict[str, Any], reason: str) -> None:
    translation = _translate(metric)
    assert translation.observations == []
    assert translation.rejected == {reason: 1}


def test_a_staleness_marker_removes_a_gauge_and_is_nothing_on_a_sum() -> None:
    marker = {**_point(), "flags": 1}
    del marker["asDouble"]
    (gone,) = _translate({"name": "g", "gauge": {"dataPoints": [marker]}}).observations
    assert gone.value is None
    assert _translate(_sum([marker])).observations == []
    assert _translate(_sum([marker])).rejected == {}


def test_target_info_only_for_a_resource_that_says_more_than_who_it_is() -> None:
    assert _translate(_sum([_point()]), {"service.name": "claude-code", "service.instance.id": "i-1"}).targets == []
    assert _translate(_sum([_point()]), {"service.name": "claude-code", "os.type": "linux"}).targets
