"""The purpose-built renderers parse exactly like prometheus_client's own exposition, in both formats;
whatever a snapshot holds, the output stays valid; concurrent scrapes share one rendering."""

from __future__ import annotations

import asyncio
import gzip
import io
import math
import subprocess
import time
import zlib
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from otlp_bridge.expose.compressed import Part, crc_joined, gzip_stream, plain
from otlp_bridge.expose.derived import derived_families
from otlp_bridge.expose.render import OPENMETRICS, TEXT, Format, Renderer, choose, tail_names
from otlp_bridge.expose.safe_json import dumps
from otlp_bridge.expose.scrape import Scrapes
from otlp_bridge.expose.snapshot import CHUNK, FamilySnapshot, snapshot
from otlp_bridge.series import FamilyMeta, Kind, Observation, Temporality
from otlp_bridge.store.accumulator import Store
from otlp_bridge.translate.naming import FamilyNames, help_text
from tests.prometheus_server import binary
from tests.reference_exposition import reference
from tests.support import CLAUDE, FIXTURES, RunningBridge, replay

Parsed = dict[str, tuple[str, str, frozenset[tuple[str, frozenset[tuple[str, str]], str]]]]


def parsed(text: str, fmt: Format) -> Parsed:
    """Families as the format's prometheus_client parser reads them (values as text: NaN != NaN)."""
    parse = parse_openmetrics if fmt.openmetrics else parse_text
    return {f.name: (f.type, f.documentation,
                     frozenset((s.name, frozenset(s.labels.items()), repr(float(s.value))) for s in f.samples))
            for f in parse(text)}


def render(families: list[FamilySnapshot], tail: list[Metric], fmt: Format,
           omitted: Counter[str] | None = None) -> str:
    taken = FamilyNames(tail_names(tail))
    body = Renderer().families(families, fmt, taken, Counter() if omitted is None else omitted)
    return (plain(body) + Renderer.tail(tail, fmt).text()).decode()


def promtool_check(text: str) -> None:
    """`promtool check metrics`: exit 1 is a parse failure; 3 is lint (a sender's names, units)."""
    result = subprocess.run([binary("promtool"), "check", "metrics"], input=text.encode(), capture_output=True,
                            timeout=60, check=False)
    assert result.returncode in (0, 3), result.stderr.decode()[-2000:]
    assert "error while linting" not in result.stderr.decode()


def _bridge_snapshot(bridge: RunningBridge) -> tuple[list[FamilySnapshot], list[Metric]]:
    b = bridge.bridge
    families = asyncio.run_coroutine_threadsafe(snapshot(b.store), bridge.loop).result(30)
    tail = asyncio.run_coroutine_threadsafe(_derived(b), bridge.loop).result(30)
    return families, tail


async def _derived(b: Any) -> list[Metric]:
    return list(derived_families(b.economics, b.activity))


@pytest.mark.parametrize("fmt", [TEXT, OPENMETRICS], ids=["text", "openmetrics"])
def test_renderer_matches_prometheus_client_on_real_captures(bridge: RunningBridge, fmt: Format) -> None:
    for run in sorted(CLAUDE.iterdir()):
        if run.is_dir():
            replay(bridge, run)
    for run in ("js-sdk-0.223_proto_cumulative", "python-sdk-1.45.2_http_delta_gzip"):
        replay(bridge, FIXTURES / "otel-sdks" / run)
    families, tail = _bridge_snapshot(bridge)
    ours = render(families, tail, fmt)
    assert parsed(ours, fmt) == parsed(reference(families, tail, fmt.openmetrics), fmt)
    assert len(parsed(ours, fmt)) > 40
    if fmt.openmetrics:  # every counter and histogram series says when it began
        samples = [s for f in parse_openmetrics(ours) for s in f.samples]
        created = {(s.name.removesuffix("_created"), frozenset(s.labels.items()))
                   for s in samples if s.name.endswith("_created")}
        totals = [s for s in samples if s.name.endswith("_total") and not s.name.startswith("otlp_bridge_")]
        assert totals
        assert all((s.name.removesuffix("_total"), frozenset(s.labels.items())) in created for s in totals)
    promtool_check(ours)


AWKWARD = 'C:\\dir\n"x"\r\x00\t é 名前 \u2028 \\n'
HELP = 'a "quoted" help\\with\nnewline'


def _awkward() -> list[FamilySnapshot]:
    labels = (("path", AWKWARD), ("z", ""))
    histogram = ((0.5, 1.0, 2.5), (1, 0, 2, 3), 6, 17.25)
    return [
        FamilySnapshot.of(FamilyMeta("odd_values", Kind.GAUGE, HELP, False), [(labels, -0.0, 0.0), ((), 5e-324, 0.0)]),
        FamilySnapshot.of(FamilyMeta("odd_count_total", Kind.COUNTER, HELP),
                          [(labels, 1e308, 1763900000.25), ((), 3, 0.0)]),
        FamilySnapshot.of(FamilyMeta("odd_seconds", Kind.HISTOGRAM, HELP), [(labels, histogram, 1763900000.5)]),
    ]


@pytest.mark.parametrize("fmt", [TEXT, OPENMETRICS], ids=["text", "openmetrics"])
def test_awkward_label_values_help_and_numbers_are_escaped_alike(fmt: Format) -> None:
    families = _awkward()
    ours = render(families, [], fmt)
    shown = [replace(f, meta=replace(f.meta, help=help_text(f.meta.help, f.meta.name))) for f in families]
    assert parsed(ours, fmt) == parsed(reference(shown, [], fmt.openmetrics), fmt)
    read = parsed(ours, fmt)
    assert read["odd_count"][1] == "a 'quoted' help\\with newline"  # parsers drop `_total` from the family
    assert any(dict(labels).get("path") == AWKWARD for _, labels, _ in read["odd_count"][2])
    promtool_check(ours)


def test_what_a_format_cannot_carry_is_left_out_and_counted() -> None:
    bad_histogram = ((-1.0, 1.0, math.inf), (1, 1, 0, 0), 2, -3.0)
    families = [FamilySnapshot.of(meta, samples) for meta, samples in [
        (FamilyMeta("dup", Kind.HISTOGRAM, "h"), [((), ((1.0,), (1, 1), 2, 2.0), 0.0)]),
        (FamilyMeta("dup_count", Kind.GAUGE, "clashes with the histogram", False), [((), 1.0, 0.0)]),
        (FamilyMeta("claude_code_spend_usd_total", Kind.COUNTER, "clashes with a derived gauge"), [((), 1.0, 1.0)]),
        (FamilyMeta("bad_labels", Kind.GAUGE, "g", False),
         [((("__name__", "x"),), 1.0, 0.0), ((("le", "1"),), 1.0, 0.0), ((("a", "1"), ("a", "2")), 1.0, 0.0),
          ((("ok", "1"),), 2.0, 0.0)]),
        (FamilyMeta("broken_total", Kind.COUNTER, "c"), [((("k", "neg"),), -1.0, 0.0), ((("k", "nan"),), math.nan, 0.0),
                                                         ((("k", "ok"),), 1.0, 5.0)]),
        (FamilyMeta("negative_seconds", Kind.HISTOGRAM, "h"), [((), bad_histogram, 5.0)]),
    ]]
    spend = Metric("claude_code_spend_usd", "derived", "gauge")
    spend.add_sample("claude_code_spend_usd", {"period": "day"}, 1.0)
    for fmt in (TEXT, OPENMETRICS):
        omitted: Counter[str] = Counter()
        text = render(families, [spend], fmt, omitted)
        read = parsed(text, fmt)
        assert "dup_count" not in read
        assert len(read["bad_labels"][2]) == 1
        assert {dict(labels)["k"] for _, labels, _ in read["broken"][2]} \
            == {"ok"}
        assert omitted["name_collision"] == 2
        assert omitted["invalid_label_name"] == 3
        assert omitted["invalid_counter"] == 2
        assert omitted["openmetrics_histogram_sum"] == (1 if fmt.openmetrics else 0)
        promtool_check(text)
    om = parsed(render(families, [spend], OPENMETRICS), OPENMETRICS)
    assert {name for name, _, _ in om["negative_seconds"][2]} == {"negative_seconds_bucket", "negative_seconds_created"}


def test_content_negotiation_prefers_openmetrics_when_asked() -> None:
    prometheus = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                  "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
    assert choose(prometheus) is OPENMETRICS
    assert choose("") is TEXT
    assert choose("text/plain") is TEXT


COUNTER = FamilyMeta("many_total", Kind.COUNTER, "many")


def _add(store: Store, labels: tuple[tuple[str, str], ...], value: float) -> None:
    store.apply([Observation(COUNTER, None, labels, Temporality.DELTA, 0, 1, value)])


def test_snapshot_of_many_series_yields_and_misses_none() -> None:
    store = Store()
    count = 2 * CHUNK + 123
    store.apply([Observation(COUNTER, None, (("i", str(i)),), Temporality.DELTA, 0, 1, float(i)) for i in range(count)])

    async def copy_while_writing() -> tuple[int, float]:
        async def writer() -> None:  # ingestion goes on between the snapshot's chunks
            for _ in range(3):
                _add(store, (("late", "x"),), 1.0)
                await asyncio.sleep(0)

        families, _ = await asyncio.gather(snapshot(store), writer())
        (family,) = [f for f in families if f.meta.name == "many_total"]
        return len(family.labels), sum(v for labels, v, _ in family.samples() if labels[0][0] == "i")  # type: ignore[misc]

    seen, total = asyncio.run(copy_while_writing())
    assert seen in (count, count + 1)
    assert total == sum(range(count))


def test_concurrent_scrapes_share_one_rendering_and_an_unchanged_store_reuses_it() -> None:
    store = Store()
    store.apply([Observation(COUNTER, None, (("i", str(i)),), Temporality.DELTA, 0, 1, 1.0) for i in range(3000)])
    scrapes = Scrapes(store, list, Counter())

    async def scrape_many(n: int) -> list[tuple[list[Part], Part]]:
        return list(await asyncio.gather(*(scrapes.body(OPENMETRICS) for _ in range(n))))

    bodies = asyncio.run(scrape_many(20))
    assert scrapes.renderings == 1
    assert len({id(bulk) for bulk, _ in bodies}) == 1  # one body object, shared
    asyncio.run(scrape_many(5))
    assert scrapes.renderings == 1  # nothing changed: reused
    _add(store, (("i", "0"),), 1.0)
    (bulk, tail), = asyncio.run(scrape_many(1))
    assert scrapes.renderings == 2
    assert 'many_total{i="0"} 2.0' in plain(bulk).decode()
    assert tail.text() == b"# EOF\n"


def test_a_rendering_that_cost_d_seconds_is_not_followed_by_another_before_pace_times_d(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from otlp_bridge.expose import scrape  # noqa: PLC0415 - the module, to set its constant

    monkeypatch.setattr(scrape, "PACE", 1.0)
    store = Store()
    store.apply([Observation(COUNTER, None, (("i", str(i)),), Temporality.DELTA, 0, 1, 1.0) for i in range(10)])
    scrapes = Scrapes(store, list, Counter())
    render = scrapes._renderer.families  # what pacing is about: a rendering forced slow
    started: list[float] = []

    def costly(*args: Any) -> list[bytes]:  # 0.3 s of CPU, as a full rendering of 100k series costs
        started.append(time.monotonic())
        end = time.thread_time() + 0.3
        while time.thread_time() < end:
            pass
        return render(*args)

    monkeypatch.setattr(scrapes._renderer, "families", costly)

    async def scenario() -> None:
        first, _ = await scrapes.body(OPENMETRICS)
        made = scrapes._bodies[OPENMETRICS]
        assert made.cost >= 0.3
        again, _ = await scrapes.body(OPENMETRICS)
        assert again is first  # nothing changed: the kept body, at once
        _add(store, (("i", "0"),), 1.0)
        paced, _ = await asyncio.gather(scrapes.body(OPENMETRICS), scrapes.body(OPENMETRICS))
        assert started[1] >= made.made + made.cost  # it waited for the pace...
        assert scrapes.renderings == 2  # ...shared by both scrapes...
        assert 'many_total{i="0"} 2.0' in plain(paced[0]).decode()  # ...and shows the change

    asyncio.run(scenario())


def test_a_value_that_changes_only_its_sign_of_zero_is_rendered_again() -> None:
    gauge = FamilyMeta("level", Kind.GAUGE, "g", False)
    renderer = Renderer()
    shown = [plain(renderer.families([FamilySnapshot.of(gauge, [((), value, 0.0)])], TEXT, FamilyNames(),
                                     Counter())).decode().splitlines()[-1] for value in (0.0, -0.0, 0.0)]
    assert shown == ["level 0.0", "level -0.0", "level 0.0"]  # `==` cannot tell them apart; the chunk must


@pytest.mark.parametrize("fmt", [TEXT, OPENMETRICS], ids=["text", "openmetrics"])
def test_uniform_chunks_built_by_columns_equal_the_general_path(fmt: Format, monkeypatch: pytest.MonkeyPatch) -> None:
    samples = [((("a", "x"), ("i", str(i))), i * 0.5, 1763900000.25 + i % 3) for i in range(3000)]
    families = [FamilySnapshot.of(COUNTER, samples),
                FamilySnapshot.of(FamilyMeta("level", Kind.GAUGE, "g", False), [((), -0.0, 0.0), ((), 2e-9, 0.0)])]
    columns = Renderer._columns
    built: list[bool] = []

    def spy(self: Renderer, *args: Any, **kwargs: Any) -> str | None:
        text = columns(self, *args, **kwargs)
        built.append(text is not None)
        return text

    monkeypatch.setattr(Renderer, "_columns", spy)
    by_columns = render(families, [], fmt)
    assert built == [True] * 4  # three runs of the counter and the gauge: every chunk here is uniform
    monkeypatch.setattr(Renderer, "_columns", lambda *_, **__: None)
    assert render(families, [], fmt) == by_columns
    assert parsed(by_columns, fmt) == parsed(reference(families, [], fmt.openmetrics), fmt)


def test_json_answers_never_carry_nan_or_infinity() -> None:
    document = {"a": math.nan, "b": [1.0, math.inf, {"c": -math.inf}], "d": "NaN", "e": 1e308}
    text, replaced = dumps(document)
    assert replaced == 3

    def refuse(constant: str) -> None:
        raise ValueError(constant)

    import json  # noqa: PLC0415

    assert json.loads(text, parse_constant=refuse) == {"a": None, "b": [1.0, None, {"c": None}], "d": "NaN",
                                                       "e": 1e308}
    assert dumps({"ok": 1.5}) == ('{"ok": 1.5}', 0)


def test_a_new_rendering_reuses_unchanged_runs_and_equals_a_fresh_one() -> None:
    store = Store()
    gauge = FamilyMeta("level", Kind.GAUGE, "g", False)
    store.apply([Observation(COUNTER, None, (("i", str(i)),), Temporality.DELTA, 0, 1, 1.0) for i in range(3000)])
    store.apply([Observation(gauge, None, (("i", str(i)),), Temporality.LAST_VALUE, 0, 1, 1.0) for i in range(3000)])
    renderer = Renderer()

    def body() -> list[Part]:
        return renderer.families(asyncio.run(snapshot(store)), OPENMETRICS, FamilyNames(), Counter())

    first = body()
    _add(store, (("i", "2500"),), 1.0)  # one counter series changes
    store.apply([Observation(gauge, None, (("i", "5"),), Temporality.LAST_VALUE, 0, 2, None)])  # one gauge goes
    second = body()
    fresh = Renderer().families(asyncio.run(snapshot(store)), OPENMETRICS, FamilyNames(), Counter())
    assert plain(second) == plain(fresh)
    assert 'many_total{i="2500"} 2.0' in plain(second).decode()
    assert 'level{i="5"}' not in plain(second).decode()
    reused = {id(chunk) for chunk in first} & {id(chunk) for chunk in second}
    assert len(reused) == 2  # the counter's first two runs of 1024; the rest changed or shifted


def test_a_format_nobody_scrapes_any_more_gives_its_body_back(monkeypatch: pytest.MonkeyPatch) -> None:
    from otlp_bridge.expose import scrape  # noqa: PLC0415 - the module, to set its constant

    store = Store()
    store.apply([Observation(COUNTER, None, (("i", str(i)),), Temporality.DELTA, 0, 1, 1.0) for i in range(100)])
    scrapes = Scrapes(store, list, Counter())
    asyncio.run(scrapes.body(TEXT))
    kept = scrapes._renderer._chunks  # what the renderer holds is the point here
    assert {key[0] for key in kept} == {TEXT}
    monkeypatch.setattr(scrape, "IDLE_FORMAT_SECONDS", 0.0)
    asyncio.run(scrapes.body(OPENMETRICS))
    assert {key[0] for key in kept} == {OPENMETRICS}


def test_kept_parts_make_one_gzip_stream_whose_crc_comes_from_the_parts() -> None:
    texts = [b"", b"# HELP a x\n", "é ünïcode\n".encode(), bytes(range(256)) * 5000, b"tail\n"]
    parts = [Part.of(text) for text in texts]
    assert plain(parts) == b"".join(texts)
    crc = crc_joined(crc_joined((0, 0), parts[:3]), parts[3:])  # a kept body's, then the tail's
    assert crc == (zlib.crc32(b"".join(texts)), sum(map(len, texts)))
    stream = b"".join(gzip_stream(parts, crc))
    assert gzip.decompress(stream) == b"".join(texts)
    with gzip.GzipFile(fileobj=io.BytesIO(stream)) as one:  # a single member, as curl reads it
        one.read()
        assert one.read() == b""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    assert inflater.decompress(stream) == b"".join(texts)
    assert inflater.eof
    assert inflater.unused_data == b""  # nothing after the first member: it is the whole stream
