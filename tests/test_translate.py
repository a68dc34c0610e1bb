"""Translation, one row a case: an OTLP metric in, the observations (or refusals) out."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from otlp_bridge import families
from otlp_bridge.derive.ledger import Ledger
from otlp_bridge.derive.pricing import PriceTable
from otlp_bridge.series import Applied, FamilyMeta, Kind, Temporality, input_key
from otlp_bridge.translate import attributes, metrics
from otlp_bridge.translate.attributes import (
    CACHED_BYTES,
    Recent,
    key_value,
    label_map,
    label_pair,
    plain,
    plain_map,
    string_map,
)
from otlp_bridge.translate.events import translate_events
from otlp_bridge.translate.metrics import LabelPolicy, Translation, translate_metrics

POLICY = LabelPolicy(frozenset({"session.id"}), max_value_length=12)
CLAUDE = Path(__file__).resolve().parent.parent / "proto_fixtures" / "claude-code-2.1.330"
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


# --- what is cached: a hit gives exactly what a miss gives, and every cache is bounded ---------------
STAMPED = (("device", "ci"),)


@pytest.fixture
def empty_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_BY_POLICY", {})
    monkeypatch.setattr(metrics, "_RESOURCES", Recent(1024))
    monkeypatch.setattr(metrics, "_FAMILIES", Recent(1024))
    monkeypatch.setattr(attributes, "_PLAIN", Recent(4096))
    monkeypatch.setattr(attributes, "_LABELS", Recent(4096))


@pytest.mark.parametrize("capture", sorted(CLAUDE.glob("*/*_metrics.pb")), ids=lambda p: p.parent.name + "/" + p.name)
@pytest.mark.usefixtures("empty_caches")
def test_metric_input_keys_are_the_persisted_formula_on_a_miss_and_on_a_hit(capture: Path) -> None:
    request = ExportMetricsServiceRequest.FromString(capture.read_bytes())
    (resource_metrics,) = request.resource_metrics
    resource = (*sorted(string_map(resource_metrics.resource.attributes).items()), *STAMPED)
    points = [p for scope in resource_metrics.scope_metrics for m in scope.metrics for p in m.sum.data_points]
    miss, hit = (translate_metrics(request, POLICY, STAMPED) for _ in range(2))
    assert len(miss.observations) == len(points) > 0
    for obs, point in zip(miss.observations, points, strict=True):
        start = point.start_time_unix_nano if obs.temporality is Temporality.CUMULATIVE else None
        attrs = tuple(sorted(string_map(point.attributes).items()))
        assert obs.input_key == input_key(obs.family.name, resource, attrs, start)
    assert [t.input_key for t in miss.targets] == [input_key(families.TARGET_INFO.name, resource)]
    assert (hit.observations, hit.targets) == (miss.observations, miss.targets)


@pytest.mark.parametrize("capture", sorted(CLAUDE.glob("*/*_logs.pb")), ids=lambda p: p.parent.name + "/" + p.name)
@pytest.mark.usefixtures("empty_caches")
def test_event_input_keys_and_attributes_on_a_miss_and_on_a_hit(capture: Path) -> None:
    request = ExportLogsServiceRequest.FromString(capture.read_bytes())
    (resource_logs,) = request.resource_logs
    records = {record.SerializeToString(deterministic=True): record
               for scope in resource_logs.scope_logs for record in scope.log_records}
    stamp = repr(STAMPED).encode() + resource_logs.resource.SerializeToString(deterministic=True)
    miss, hit = (translate_events(request, POLICY, STAMPED) for _ in range(2))
    assert miss
    for obs in miss:
        (serialized,) = [b for b in records if hashlib.blake2b(stamp + b, digest_size=16).digest() == obs.input_key]
        assert obs.origin.attributes == {kv.key: plain(kv.value) for kv in records[serialized].attributes}  # type: ignore[attr-defined]
    assert [(o.input_key, o.labels, o.time, o.origin) for o in hit] == [(o.input_key, o.labels, o.time, o.origin)
                                                                       for o in miss]


def test_recent_is_bounded_and_keeps_the_newest() -> None:
    recent: Recent[int, str] = Recent(8)
    for i in range(100):
        recent.add(i, str(i))
        assert len(recent) <= 8
    assert recent.get(99) == "99"
    assert recent.get(0) is None


VALUES = [AnyValue(string_value="s"), AnyValue(bool_value=True), AnyValue(int_value=-3), AnyValue(double_value=2.5),
          AnyValue(double_value=1e21), AnyValue(double_value=4.0), AnyValue(bytes_value=b"\x00\xff"), AnyValue(),
          AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=1), AnyValue(bytes_value=b"b")])),
          AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key="k", value=AnyValue(string_value="v"))]))]


@pytest.mark.usefixtures("empty_caches")
@pytest.mark.parametrize("value", VALUES, ids=lambda v: v.WhichOneof("value") or "empty")
def test_a_pair_from_its_bytes_is_what_the_message_gives_on_a_miss_and_on_a_hit(value: AnyValue) -> None:
    pair = KeyValue(key="k", value=value)
    for _ in range(2):
        assert key_value(pair.SerializeToString()) == ("k", plain(value))
        assert label_pair(pair.SerializeToString()) == ("k", string_map([pair])["k"])


@pytest.mark.usefixtures("empty_caches")
def test_a_set_of_pairs_from_bytes_partly_remembered_is_the_messages_last_key_winning() -> None:
    pairs = [KeyValue(key=f"k{i}", value=value) for i, value in enumerate(VALUES)]
    pairs.append(KeyValue(key="k0", value=VALUES[3]))  # a repeated key: the last one wins
    serialized = [pair.SerializeToString() for pair in pairs]
    key_value(serialized[3])
    label_pair(serialized[4])  # one remembered, the others not; then all of them
    for _ in range(2):
        assert plain_map(serialized) == {pair.key: plain(pair.value) for pair in pairs}
        assert label_map(serialized) == string_map(pairs)


@pytest.mark.parametrize(("decode", "memo"), [(key_value, "_PLAIN"), (label_pair, "_LABELS")])
def test_attribute_pairs_are_bounded_and_a_long_one_is_not_held(
    monkeypatch: pytest.MonkeyPatch, decode: Callable[[bytes], tuple[str, Any]], memo: str,
) -> None:
    monkeypatch.setattr(attributes, memo, Recent(16))
    for i in range(100):
        serialized = KeyValue(key="prompt.id", value=AnyValue(string_value=f"p-{i}")).SerializeToString()
        assert decode(serialized) == ("prompt.id", f"p-{i}")
        assert decode(serialized) == ("prompt.id", f"p-{i}")  # a hit
    assert len(getattr(attributes, memo)) <= 16
    long = KeyValue(key="prompt", value=AnyValue(string_value="x" * CACHED_BYTES)).SerializeToString()
    assert decode(long) == ("prompt", "x" * CACHED_BYTES)
    assert getattr(attributes, memo).get(long) is None


def test_a_list_attribute_is_never_shared_by_two_records() -> None:
    listed = KeyValue(key="sources", value=VALUES[-2]).SerializeToString()
    first = key_value(listed)
    assert first == ("sources", [1, b"b"])
    assert key_value(listed)[1] is not first[1]


def test_ledger_plans_are_bounded_and_a_hit_derives_what_a_miss_does() -> None:
    def applied(name: str, kind: Kind, **labels: str) -> Applied:
        return Applied(FamilyMeta(name, kind, ""), tuple(sorted(labels.items())), 7.0, 1, 10**18)

    batch = [applied(families.TOKENS, Kind.COUNTER, model="claude-sonnet-4-5", type=t, user="u")
             for t in ("input", "cacheRead", "cacheCreation", "output")]
    batch += [applied(families.COST, Kind.COUNTER, model="claude-sonnet-4-5", user="u"),
              applied("gemini_cli_token_usage_total", Kind.COUNTER, model="gemini-2.5-pro", type="cache"),
              applied("gemini_cli_token_usage_total", Kind.COUNTER, model="gemini-2.5-pro", type="input"),
              applied("gemini_cli_api_request_count_total", Kind.COUNTER, status_code="500"),
              applied("codex_turn_token_usage", Kind.HISTOGRAM, model="gpt-5.1-codex", token_type="output")]
    remembering, forgetting = Ledger(PriceTable()), Ledger(PriceTable(), plans=2)
    first = remembering.derive(batch, 0.0)
    assert len(first) == 9  # gemini's input nets to zero; its failed request counts nothing
    for _ in range(3):
        assert remembering.derive(batch, 0.0) == first
        assert forgetting.derive(batch, 0.0) == first
        assert len(forgetting._plans) <= 2


@pytest.mark.usefixtures("empty_caches")
def test_a_long_resource_or_attribute_set_is_translated_every_time_alike_and_not_held() -> None:
    resource = {**RESOURCE, "host.name": "h" * CACHED_BYTES}
    first, again = (_translate(_sum([_point(model="m" * CACHED_BYTES)]), resource) for _ in range(2))
    assert (again.observations, again.targets) == (first.observations, first.targets)
    assert ("host_name", "h" * 12) in first.targets[0].labels
    assert len(metrics._RESOURCES) == len(metrics._identities(POLICY)) == 0
