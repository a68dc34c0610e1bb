"""Purpose-built exposition of a snapshot: the Prometheus text format (0.0.4) and OpenMetrics 1.0.

prometheus_client's generic exposition builds a Sample object per series and formats labels afresh
each scrape; at 100k series that is most of a scrape (2.2 s for OpenMetrics). This renders the same
families from plain lists, remembers each label set's rendered form, and reuses each run of series
whose values have not changed since the last rendering. Both formats parse exactly like
prometheus_client's own exposition (tests/test_render.py) and pass `promtool check metrics`.

Rendering is total: whatever the snapshot holds, the output is valid. What a format cannot carry is
left out and counted (by reason), never rendered broken:
- a family whose names clash with one already rendered (`name_collision`; the store refuses these
  first, naming.FamilyNames), a label set with an invalid or reserved name (`invalid_label_name`;
  translate applies naming.label_name first), a counter total that is negative, infinite or NaN
  (`invalid_counter`);
- OpenMetrics only: a histogram's `_sum` and `_count` when the sum is negative or NaN or a bound is
  negative (the spec forbids `_sum` there; the +Inf bucket still carries the count).
OpenMetrics adds `_created` (the series' creation, Unix seconds) to counters and histograms, so
Prometheus can place the start of a series that appears with its whole value.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from prometheus_client import exposition as text_exposition
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as om_exposition
from prometheus_client.registry import CollectorRegistry

from otlp_bridge.expose.snapshot import FamilySnapshot, histogram_buckets
from otlp_bridge.series import Kind, Labels
from otlp_bridge.translate.naming import FamilyNames, help_text, is_label_name, openmetrics_name


@dataclass(frozen=True)
class Format:
    content_type: str
    openmetrics: bool


TEXT = Format("text/plain; version=0.0.4; charset=utf-8", openmetrics=False)
OPENMETRICS = Format("application/openmetrics-text; version=1.0.0; charset=utf-8", openmetrics=True)
_KINDS = {"counter": Kind.COUNTER, "histogram": Kind.HISTOGRAM}


def choose(accept: str) -> Format:
    """OpenMetrics when the scraper asks for it (Prometheus does, first), else the text format."""
    return OPENMETRICS if "application/openmetrics-text" in accept else TEXT


def value_text(value: float) -> str:
    """A sample value as both formats spell it (`+Inf`, `-Inf`, `NaN`; repr for the rest)."""
    if value - value == 0:  # finite: inf - inf and nan - nan are nan
        return repr(value)
    return "NaN" if math.isnan(value) else "+Inf" if value > 0 else "-Inf"


def escape_value(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:  # rarely: skip three copies when none is there
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


def escape_help(text: str, fmt: Format) -> str:
    """HELP escaping: OpenMetrics escapes `"` too; the text format must not (`\\"` is an error there).
    Families' HELP passes naming.help_text first, which leaves no `"` to escape."""
    text = text.replace("\\", r"\\").replace("\n", r"\n")
    return text.replace('"', r"\"") if fmt.openmetrics else text


def tail_names(metrics: Iterable[Metric]) -> list[tuple[str, Kind]]:
    """The (name, kind) of prometheus_client families, named as the store names its own."""
    return [(m.name + "_total" if m.type == "counter" else m.name, _KINDS.get(m.type, Kind.GAUGE))
            for m in metrics]


SERIES_PER_CHUNK = 1024  # series rendered, encoded and reused together
_PAIRS_LIMIT = 65_536  # rendered `name="value"` pairs kept; bounded whatever the cardinality
_name = itemgetter(0)


@dataclass(slots=True)
class _Chunk:
    """A run of one family's series as last rendered: reused whole while the same series hold the
    same values (three list comparisons, in C), so a scrape after a few changes renders a few chunks."""

    labels: list[Labels]
    values: list[Any]
    created: list[float]
    data: bytes
    omitted: Counter[str]


class Renderer:
    """Renders snapshots; one instance per process, so unchanged runs of series are not rendered again
    and label pairs that repeat (job, model, type, user…) are formatted once. What it keeps is the
    body itself (as chunks), and a bounded memo of pairs. Safe to use from two threads at once, one per
    format: each format keeps its own chunks; the shared memos are only added to or cleared."""

    def __init__(self) -> None:
        self._pairs: dict[tuple[str, str], str] = {}
        self._names: set[str] = set()  # label names known valid and unreserved
        self._chunks: dict[tuple[Format, str, Kind], list[_Chunk]] = {}

    def forget(self, fmt: Format) -> None:
        """Let go of what one format keeps (its chunks): nobody scrapes it any more."""
        for key in [key for key in self._chunks if key[0] is fmt]:
            del self._chunks[key]

    def _label_text(self, labels: Labels) -> str | None:
        """`{a="x",b="y"}` ('' for none); None when a name is not a valid, unreserved label name or
        comes twice."""
        if not labels:
            return ""
        if not (self._names.issuperset(map(_name, labels)) or self._learn(labels)) \
                or len(dict(labels)) != len(labels):
            return None
        pairs = self._pairs
        return "{" + ",".join([pairs.get(pair) or self._pair(pair) for pair in labels]) + "}"

    def _pair(self, pair: tuple[str, str]) -> str:
        text = f'{pair[0]}="{escape_value(pair[1])}"'
        if len(self._pairs) >= _PAIRS_LIMIT:
            self._pairs.clear()  # crude but bounded; what repeats comes back at once
        self._pairs[pair] = text
        return text

    def _learn(self, labels: Labels) -> bool:
        """Whether every name is a valid, unreserved label name; the valid ones are remembered."""
        fresh = {name for name, _ in labels} - self._names
        if not all(map(is_label_name, fresh)):
            return False
        if len(self._names) + len(fresh) > _PAIRS_LIMIT:
            self._names.clear()
        self._names.update(fresh)
        return True

    def families(self, snap: list[FamilySnapshot], fmt: Format, taken: FamilyNames,
                 omitted: Counter[str]) -> list[bytes]:
        """The store's families, in chunks; `taken` holds the names already exposed (and gains these)."""
        body: list[bytes] = []
        kept: set[tuple[Format, str, Kind]] = set()
        for family in snap:
            meta = family.meta
            if taken.refusal(meta.name, meta.kind):
                omitted["name_collision"] += len(family.labels) or 1
                continue
            taken.add(meta.name, meta.kind)
            name = openmetrics_name(meta.name, meta.kind) if fmt.openmetrics else meta.name
            help_ = escape_help(help_text(meta.help, meta.name), fmt)
            body.append(f"# HELP {name} {help_}\n# TYPE {name} {meta.kind.value}\n".encode("utf-8", "replace"))
            key = (fmt, meta.name, meta.kind)
            kept.add(key)
            before = self._chunks.get(key, [])
            chunks = self._chunks[key] = [
                self._chunk(before[i] if i < len(before) else None, family, start, name, fmt)
                for i, start in enumerate(range(0, len(family.labels), SERIES_PER_CHUNK))]
            for chunk in chunks:
                body.append(chunk.data)
                omitted.update(chunk.omitted)
        for key in [key for key in self._chunks if key[0] is fmt and key not in kept]:
            del self._chunks[key]  # a family gone (or refused): its chunks go with it
        return body

    def _chunk(self, before: _Chunk | None, family: FamilySnapshot, start: int, name: str, fmt: Format) -> _Chunk:
        end = start + SERIES_PER_CHUNK
        labels, values, created = family.labels[start:end], family.values[start:end], family.created[start:end]
        if before is not None and before.values == values and before.labels == labels and before.created == created:
            return before
        kind = family.meta.kind
        render = (self._histograms if kind is Kind.HISTOGRAM else
                  self._counters if kind is Kind.COUNTER else self._gauges)
        out: list[str] = []
        omitted: Counter[str] = Counter()
        render(out, name, zip(labels, values, created, strict=True), fmt, omitted)
        return _Chunk(labels, values, created, "".join(out).encode("utf-8", "replace"), omitted)

    def _gauges(self, out: list[str], name: str, samples: Iterable[tuple[Labels, Any, float]], _: Format,
                omitted: Counter[str]) -> None:
        label_text, append = self._label_text, out.append
        for labels, value, _created in samples:
            text = label_text(labels)
            if text is None:
                omitted["invalid_label_name"] += 1
                continue
            append(f"{name}{text} {repr(value) if value - value == 0 else value_text(value)}\n")

    def _counters(self, out: list[str], name: str, samples: Iterable[tuple[Labels, Any, float]], fmt: Format,
                  omitted: Counter[str]) -> None:
        label_text, append = self._label_text, out.append
        total = name + "_total" if fmt.openmetrics else name
        created_name = name + "_created"
        for labels, value, created in samples:
            text = label_text(labels)
            if text is None or not 0 <= value < math.inf:  # also false for NaN
                omitted["invalid_label_name" if text is None else "invalid_counter"] += 1
                continue
            if fmt.openmetrics and created > 0:
                append(f"{total}{text} {value!r}\n{created_name}{text} {value_text(created)}\n")
            else:
                append(f"{total}{text} {value!r}\n")

    def _histograms(self, out: list[str], name: str, samples: Iterable[tuple[Labels, Any, float]],
                    fmt: Format, omitted: Counter[str]) -> None:
        for labels, value, created in samples:
            text = self._label_text(labels)
            if text is None:
                omitted["invalid_label_name"] += 1
                continue
            prefix = text[:-1] + "," if text else "{"
            out.extend(f'{name}_bucket{prefix}le="{le}"}} {cumulative}\n'
                       for le, cumulative in histogram_buckets(value))
            bounds, _, count, total = value
            if not fmt.openmetrics:
                out.append(f"{name}_count{text} {count}\n{name}_sum{text} {value_text(total)}\n")
                continue
            if total >= 0 and not any(bound < 0 for bound in bounds):
                out.append(f"{name}_count{text} {count}\n{name}_sum{text} {value_text(total)}\n")
            else:
                omitted["openmetrics_histogram_sum"] += 1
            if created > 0:
                out.append(f"{name}_created{text} {value_text(created)}\n")

    @staticmethod
    def tail(metrics: list[Metric], fmt: Format) -> bytes:
        """The few families made as prometheus_client Metrics (derived, self), rendered by it; for
        OpenMetrics this ends the exposition with `# EOF`."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Fixed(metrics))
        if fmt.openmetrics:
            return om_exposition.generate_latest(registry)
        return text_exposition.generate_latest(registry)


class _Fixed:
    def __init__(self, metrics: list[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> list[Metric]:
        return self._metrics
