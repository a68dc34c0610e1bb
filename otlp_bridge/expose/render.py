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
_LABEL_CACHE_LIMIT = 500_000
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


# A label set's rendered form: `{a="x",b="y"}` ('' for none; None when a name is not a valid,
# unreserved label name), and the `_created` value last written for it, as a number and as text.
_Entry = tuple[str | None, float, str]
SERIES_PER_CHUNK = 1024  # series rendered, encoded and reused together


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
    """Renders snapshots; one instance per process so each label set is formatted once and unchanged
    runs of series are not rendered again. Safe to use from two threads at once, one per format:
    label entries are replaced whole, never edited, and each format keeps its own chunks."""

    def __init__(self) -> None:
        self._labels: dict[Labels, _Entry] = {}
        self._valid_names: dict[tuple[str, ...], bool] = {}  # a family's series mostly share one
        self._chunks: dict[tuple[Format, str, Kind], list[_Chunk]] = {}

    def _entry(self, labels: Labels) -> _Entry:
        entry = self._labels.get(labels)
        if entry is None:
            names = tuple(k for k, _ in labels)
            valid = self._valid_names.get(names)
            if valid is None:
                valid = all(map(is_label_name, names)) and len(set(names)) == len(names)
                if len(self._valid_names) >= _LABEL_CACHE_LIMIT:
                    self._valid_names.clear()
                self._valid_names[names] = valid
            text = ("{" + ",".join([f'{k}="{escape_value(v)}"' for k, v in labels]) + "}" if labels else "") \
                if valid else None
            if len(self._labels) >= _LABEL_CACHE_LIMIT:
                self._labels.clear()  # crude but bounded; the next scrape refills what is live
            entry = self._labels[labels] = (text, 0.0, "")
        return entry

    def _created(self, labels: Labels, entry: _Entry, created: float) -> str:
        """`<created>` as text, formatted once per series (its creation time does not change)."""
        if entry[1] != created:
            entry = self._labels[labels] = (entry[0], created, value_text(created))
        return entry[2]

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
        entry_of, append = self._entry, out.append
        for labels, value, _created in samples:
            text = entry_of(labels)[0]
            if text is None:
                omitted["invalid_label_name"] += 1
                continue
            append(f"{name}{text} {repr(value) if value - value == 0 else value_text(value)}\n")

    def _counters(self, out: list[str], name: str, samples: Iterable[tuple[Labels, Any, float]], fmt: Format,
                  omitted: Counter[str]) -> None:
        entry_of, created_of, append = self._entry, self._created, out.append
        total = name + "_total" if fmt.openmetrics else name
        created_name = name + "_created"
        for labels, value, created in samples:
            entry = entry_of(labels)
            text = entry[0]
            if text is None or not 0 <= value < math.inf:  # also false for NaN
                omitted["invalid_label_name" if text is None else "invalid_counter"] += 1
                continue
            if fmt.openmetrics and created > 0:
                since = entry[2] if entry[1] == created else created_of(labels, entry, created)
                append(f"{total}{text} {value!r}\n{created_name}{text} {since}\n")
            else:
                append(f"{total}{text} {value!r}\n")

    def _histograms(self, out: list[str], name: str, samples: Iterable[tuple[Labels, Any, float]],
                    fmt: Format, omitted: Counter[str]) -> None:
        for labels, value, created in samples:
            entry = self._entry(labels)
            text = entry[0]
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
                out.append(f"{name}_created{text} {self._created(labels, entry, created)}\n")

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
