"""The purpose-built text renderer parses exactly like prometheus_client's own exposition."""

from __future__ import annotations

import asyncio

from prometheus_client.parser import text_string_to_metric_families

from otlp_bridge.expose.derived import derived_families
from otlp_bridge.expose.prometheus import render
from otlp_bridge.expose.snapshot import snapshot
from otlp_bridge.expose.text import TextRenderer
from tests.support import CLAUDE, FIXTURES, RunningBridge, replay


def _families(text: str) -> dict[str, tuple[str, str, frozenset[tuple[str, frozenset[tuple[str, str]], float]]]]:
    return {f.name: (f.type, f.documentation,
                     frozenset((s.name, frozenset(s.labels.items()), s.value) for s in f.samples))
            for f in text_string_to_metric_families(text)}


def test_text_renderer_matches_prometheus_client(bridge: RunningBridge) -> None:
    for run in sorted(CLAUDE.iterdir()):
        if run.is_dir():
            replay(bridge, run)
    for run in ("js-sdk-0.223_proto_cumulative", "python-sdk-1.45.2_http_delta_gzip"):
        replay(bridge, FIXTURES / "otel-sdks" / run)
    b = bridge.bridge
    snap = asyncio.run_coroutine_threadsafe(
        snapshot(b.store, b.stats, list(derived_families(b.economics, b.activity))), bridge.loop).result(30)
    ours = TextRenderer().render(snap).decode()
    reference, content_type = render(snap, None)
    assert content_type.startswith("text/plain")
    assert _families(ours) == _families(reference.decode())
    assert len(_families(ours)) > 40


def test_awkward_label_values_and_help_are_escaped_alike(bridge: RunningBridge) -> None:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (  # noqa: PLC0415
        ExportMetricsServiceRequest,
    )

    request = ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add(
        name="odd.values", description='a "quoted" help\\with\nnewline')
    metric.gauge.data_points.add(time_unix_nano=1, as_double=float("nan")).attributes.add(
        key="path", value={"string_value": 'C:\\dir\n"x"'})
    metric.gauge.data_points.add(time_unix_nano=1, as_double=float("inf")).attributes.add(
        key="path", value={"string_value": ""})
    assert bridge.post("/v1/metrics", request.SerializeToString())[0] == 200
    b = bridge.bridge
    snap = asyncio.run_coroutine_threadsafe(snapshot(b.store, b.stats), bridge.loop).result(30)
    ours, reference = TextRenderer().render(snap).decode(), render(snap, None)[0].decode()
    normalise = lambda fams: {k: (t, d, frozenset((n, lab, str(v)) for n, lab, v in s))  # noqa: E731 - NaN != NaN
                              for k, (t, d, s) in fams.items()}
    assert normalise(_families(ours)) == normalise(_families(reference))


def test_snapshot_of_many_series_yields_and_misses_none() -> None:
    from otlp_bridge.expose.snapshot import CHUNK  # noqa: PLC0415
    from otlp_bridge.self_metrics import SelfMetrics  # noqa: PLC0415
    from otlp_bridge.store.accumulator import Store  # noqa: PLC0415
    from otlp_bridge.translate.metrics import FamilyMeta, Kind  # noqa: PLC0415

    store = Store()
    meta = FamilyMeta("many_total", Kind.COUNTER, "many")
    count = 2 * CHUNK + 123
    for i in range(count):
        store.add(meta, (("i", str(i)),), float(i))

    async def copy_while_writing() -> tuple[int, float]:
        async def writer() -> None:  # ingestion goes on between the snapshot's chunks
            for _ in range(3):
                store.add(meta, (("late", "x"),), 1.0)
                await asyncio.sleep(0)

        snap, _ = await asyncio.gather(snapshot(store, SelfMetrics()), writer())
        (family,) = [f for f in snap.families if f[0].name == "many_total"]
        return len(family[1]), sum(v for labels, v in family[1] if labels[0][0] == "i")  # type: ignore[misc]

    seen, total = asyncio.run(copy_while_writing())
    assert seen in (count, count + 1)
    assert total == sum(range(count))
