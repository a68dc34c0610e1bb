"""Whatever OTLP metrics arrive, every answer of the metrics port stays valid.

Hypothesis writes metric requests no sane client would send — empty, reserved, colliding, unicode,
control-character and 10 KB names and attribute keys, every kind and temporality, numbers at the edges
(1e308, -0.0, NaN, ±Inf, subnormals), broken histograms — and pushes each through a real bridge over
loopback. After each one: /metrics parses in both formats with prometheus_client's parsers, every
family has one HELP and one TYPE, counter-like samples are finite and not negative, /summary and
/insights are JSON without NaN/Infinity, the bridge's internal families stay unexposed, and a good
export sent alongside every case stays exact. `promtool check metrics` reads both formats for a
sample of cases and for the state everything left behind.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from tests.prometheus_server import binary
from tests.support import RunningBridge, good_export, settings_for_test

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
PROMTOOL_EVERY = 25  # cases between two promtool runs (a process each: keep the suite fast)

# --- strategies ------------------------------------------------------------------------------------
EDGE_FLOATS = [0.0, -0.0, 1e308, -1e308, 1.7976931348623157e308, 5e-324, -5e-324, 2.2250738585072014e-308,
               math.nan, math.inf, -math.inf, 1.0, -1.0, 0.1, 123.456, 2.0**53 + 1]
floats = st.sampled_from(EDGE_FLOATS) | st.floats(allow_nan=True, allow_infinity=True)
ints = st.sampled_from([0, 1, -1, 2**63 - 1, -(2**63)]) | st.integers(-(2**63), 2**63 - 1)
TRICKY = ["", "__name__", "__x", "_", "__", "le", "quantile", "job", "instance", "a.b", "a_b", "a-b", "0x", "9",
          "名前", "ü.key", "tab\there", "nul\x00", "cr\r", "lf\n", 'quote"', "back\\slash", "x" * 10_000,
          "service.name", "session.id", "otlp_bridge.x", "target_info", "claude_code.cost.usage"]
keys = st.sampled_from(TRICKY) | st.text(max_size=12)
strings = st.sampled_from(["", "NaN", "+Inf", 'a"b', "a\\b", "line\nbreak", "\x00\r\t", "é名前", "y" * 5000]) \
    | st.text(max_size=20)
NAMES = ["", "...", "foo", "foo.count", "foo.sum", "foo.bucket", "foo.total", "foo.created", "foo_total", "x.total",
         "名前", "2xx", "otlp_bridge.internal.spend.usd", "otlp_bridge.requests", "claude_code.cost.usage",
         "claude_code.token.usage", "claude_code.spend.usd", "claude_code.cache.hit.ratio",
         "claude_code.last_seen_timestamp", "target_info", "n" * 10_000, "a\x00b\nc"]
names = st.sampled_from(NAMES) | st.text("abcfo._-9", min_size=1, max_size=12) | st.text(max_size=15)
units = st.sampled_from(["", "1", "s", "ms", "By/s", "USD", "{tokens}", "%", "/", "é", "u" * 3000]) \
    | st.text(max_size=6)
descriptions = st.sampled_from(["", 'a "quoted" \\ help\nwith\r\x00 controls \u2028', "d" * 40_000]) \
    | st.text(max_size=30)


def any_values(depth: int = 2) -> st.SearchStrategy[AnyValue]:
    scalars = st.one_of(
        strings.map(lambda v: AnyValue(string_value=v)), st.booleans().map(lambda v: AnyValue(bool_value=v)),
        ints.map(lambda v: AnyValue(int_value=v)), floats.map(lambda v: AnyValue(double_value=v)),
        st.binary(max_size=8).map(lambda v: AnyValue(bytes_value=v)), st.just(AnyValue()))
    if depth == 0:
        return scalars
    inner = any_values(depth - 1)
    return scalars | st.lists(inner, max_size=3).map(_array) | st.lists(st.tuples(keys, inner), max_size=3).map(_kvlist)


def _array(values: list[AnyValue]) -> AnyValue:
    value = AnyValue()
    value.array_value.values.extend(values)
    return value


def _kvlist(pairs: list[tuple[str, AnyValue]]) -> AnyValue:
    value = AnyValue()
    value.kvlist_value.values.extend(KeyValue(key=k, value=v) for k, v in pairs)
    return value


attributes = st.lists(st.tuples(keys, any_values()), max_size=5)
times = st.sampled_from([0, 1, 1_763_900_000_000_000_000, 2**64 - 1]) | st.integers(0, 2**64 - 1)


@st.composite
def points(draw: st.DrawFn, histogram: bool) -> dict[str, Any]:
    point: dict[str, Any] = {"attributes": draw(attributes), "start": draw(times), "time": draw(times),
                             "flags": draw(st.sampled_from([0, 0, 0, 1]))}
    if histogram:
        bounds = draw(st.lists(floats, max_size=4))
        if draw(st.booleans()):
            bounds = sorted({b for b in bounds if not math.isnan(b)})
        counts = draw(st.lists(st.integers(0, 2**64 - 1) | st.integers(0, 5), min_size=len(bounds) + 1,
                               max_size=len(bounds) + 1) | st.lists(st.integers(0, 5), max_size=3))
        point.update(bounds=bounds, counts=counts, sum=draw(floats | st.none()),
                     count=min(sum(counts), 2**64 - 1) if draw(st.booleans()) else draw(st.integers(0, 2**64 - 1)))
    else:
        point["value"] = draw(floats.map(lambda v: ("as_double", v)) | ints.map(lambda v: ("as_int", v))
                              | st.just((None, None)))
    return point


@st.composite
def metrics(draw: st.DrawFn) -> Metric:
    kind = draw(st.sampled_from(["sum", "sum", "gauge", "histogram", "histogram", "summary", "exponential_histogram",
                                 None]))
    metric = Metric(name=draw(names), unit=draw(units), description=draw(descriptions))
    if kind is None:
        return metric
    data = getattr(metric, kind)
    if kind in ("sum", "histogram", "exponential_histogram"):
        data.aggregation_temporality = draw(st.sampled_from([1, 2, 1, 2, 0, 7]))
    if kind == "sum":
        data.is_monotonic = draw(st.booleans())
    if kind in ("summary", "exponential_histogram"):
        data.data_points.add(time_unix_nano=1, count=1)
        return metric
    for spec in draw(st.lists(points(kind == "histogram"), min_size=1, max_size=3)):
        point = data.data_points.add(start_time_unix_nano=spec["start"], time_unix_nano=spec["time"],
                                     flags=spec["flags"])
        point.attributes.extend(KeyValue(key=k, value=v) for k, v in spec["attributes"])
        if kind == "histogram":
            point.explicit_bounds.extend(spec["bounds"])
            point.bucket_counts.extend(spec["counts"])
            point.count = spec["count"]
            if spec["sum"] is not None:
                point.sum = spec["sum"]
        elif spec["value"][0] is not None:
            setattr(point, *spec["value"])
    return metric


@st.composite
def requests(draw: st.DrawFn) -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    for _ in range(draw(st.integers(1, 2))):
        resource_metrics = request.resource_metrics.add()
        resource_metrics.resource.attributes.extend(KeyValue(key=k, value=v) for k, v in draw(attributes))
        resource_metrics.scope_metrics.add().metrics.extend(draw(st.lists(metrics(), min_size=1, max_size=4)))
    return request


# --- the checks ------------------------------------------------------------------------------------
def _refuse(constant: str) -> None:
    raise ValueError(f"non-finite JSON number {constant}")


_COUNTER_LIKE = re.compile(r"_(total|count|bucket|created)$")


def check_exposition(text: str, openmetrics: bool) -> dict[str, float]:
    """Parse as the format says and check what a scraper relies on; the samples, by (name, labels)."""
    helps = Counter(re.findall(r"^# HELP (\S+)", text, re.MULTILINE))
    types = Counter(re.findall(r"^# TYPE (\S+)", text, re.MULTILINE))
    assert max(helps.values()) == 1, [n for n, c in helps.items() if c > 1]
    assert helps == types
    assert "otlp_bridge_internal_" not in text
    samples: dict[str, float] = {}
    for family in (parse_openmetrics if openmetrics else parse_text)(text):
        for sample in family.samples:
            key = f"{sample.name}{sorted(sample.labels.items())}"
            assert key not in samples, f"duplicate sample {key}"
            samples[key] = sample.value
            if family.type in ("counter", "histogram"):
                assert math.isfinite(sample.value), (family.name, sample)
                if _COUNTER_LIKE.search(sample.name):
                    assert sample.value >= 0, (family.name, sample)
    return samples


def promtool(text: str) -> None:
    result = subprocess.run([binary("promtool"), "check", "metrics"], input=text.encode(), capture_output=True,
                            timeout=60, check=False)
    assert result.returncode in (0, 3), result.stderr.decode()[-3000:]  # 3: lint only (a sender's names)


@pytest.fixture(scope="module")
def bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBridge]:
    running = RunningBridge(settings_for_test(tmp_path_factory.mktemp("exposition-fuzz")))
    yield running
    running.stop()


class Cases:
    sent = 0


def check_everything(bridge: RunningBridge, run_promtool: bool) -> None:
    text, om = bridge.scrape(), bridge.scrape(OPENMETRICS)
    assert text.content_type.startswith("text/plain")
    assert om.content_type.startswith("application/openmetrics-text")
    check_exposition(text.text, openmetrics=False)
    check_exposition(om.text, openmetrics=True)
    for path in ("/summary", "/insights"):
        json.loads(_get(bridge, path), parse_constant=_refuse)
    if run_promtool:
        promtool(text.text)
        promtool(om.text)


def _get(bridge: RunningBridge, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{bridge.ports.metrics}{path}", timeout=10) as response:
        assert response.status == 200
        return str(response.read().decode())


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow, HealthCheck.data_too_large])
@given(request=requests())
def test_any_metrics_leave_every_answer_valid(bridge: RunningBridge, request: ExportMetricsServiceRequest) -> None:
    status, body, _ = bridge.post("/v1/metrics", request.SerializeToString())
    assert status in (200, 400), (status, body)
    assert bridge.post("/v1/metrics", good_export(Cases.sent, "exposition-good"))[0] == 200
    Cases.sent += 1
    check_everything(bridge, run_promtool=Cases.sent % PROMTOOL_EVERY == 0)


def test_what_all_cases_left_behind_passes_promtool_and_good_traffic_is_exact(bridge: RunningBridge,
                                                                            tmp_path: Path) -> None:
    assert Cases.sent > 0, "runs after the property test"
    check_everything(bridge, run_promtool=True)
    scrape = bridge.scrape()
    assert scrape.total("claude_code_token_usage_tokens_total", job="exposition-good", type="input") \
        == 123 * Cases.sent
    assert scrape.total("claude_code_session_count_total", job="exposition-good") == Cases.sent
