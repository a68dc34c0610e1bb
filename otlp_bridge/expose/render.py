"""Purpose-built exposition of a snapshot: the Prometheus text format (0.0.4) and OpenMetrics 1.0.

prometheus_client's generic exposition builds a Sample object per series and formats labels afresh
each scrape; at 100k series that is most of a scrape (2.2 s for OpenMetrics). This renders the same
families from plain tuples and remembers each label set's rendered form. Both formats parse exactly
like prometheus_client's own exposition (tests/test_render.py) and pass `promtool check metrics`.

Rendering is total: whatever the snapshot holds, the output is valid. What a format cannot carry is
left out and counted (by reason), never rendered broken:
- a family whose names clash with one already rendered (`name_collision`; the store refuses these
  first, naming.FamilyNames), a label set with an invalid or reserved name (`invalid_label_name`;
  translate applies naming.label_name first), a counter total that is negative or NaN
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

from prometheus_client import exposition as text_exposition
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as om_exposition
from prometheus_client.registry import CollectorRegistry

from otlp_bridge.expose.snapshot import FamilySnapshot, HistogramSnapshot, histogram_buckets
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
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def escape_help(text: str, fmt: Format) -> str:
    """HELP escaping: OpenMetrics escapes `"` too; the text format must not (`\\"` is an error there).
    Families' HELP passes naming.help_text first, which leaves no `"` to escape."""
    text = text.replace("\\", r"\\").replace("\n", r"\n")
    return text.replace('"', r"\"") if fmt.openmetrics else text


def tail_names(metrics: Iterable[Metric]) -> list[tuple[str, Kind]]:
    """The (name, kind) of prometheus_client families, named as the store names its own."""
    return [(m.name + "_total" if m.type == "counter" else m.name, _KINDS.get(m.type, Kind.GAUGE))
            for m in metrics]


class Renderer:
    """Renders snapshots; one instance per process so label sets are formatted once."""

    def __init__(self) -> None:
        self._labels: dict[Labels, str | None] = {}

    def _label_text(self, labels: Labels) -> str | None:
        """`{a="x",b="y"}` (or '' for none); None when a name is not a valid, unreserved label name."""
        text = self._labels.get(labels, "")
        if text == "" and labels:
            names = [k for k, _ in labels]
            valid = all(map(is_label_name, names)) and len(set(names)) == len(names)
            text = "{" + ",".join(f'{k}="{escape_value(v)}"' for k, v in labels) + "}" if valid else None
            if len(self._labels) >= _LABEL_CACHE_LIMIT:
                self._labels.clear()  # crude but bounded; the next scrape refills what is live
            self._labels[labels] = text
        return text

    def families(self, snap: list[FamilySnapshot], fmt: Format, taken: FamilyNames,
                 omitted: Counter[str]) -> bytes:
        """The store's families; `taken` holds the names already exposed (and gains these)."""
        out: list[str] = []
        for meta, samples in snap:
            if taken.refusal(meta.name, meta.kind):
                omitted["name_collision"] += len(samples) or 1
                continue
            taken.add(meta.name, meta.kind)
            name = openmetrics_name(meta.name, meta.kind) if fmt.openmetrics else meta.name
            help_ = escape_help(help_text(meta.help, meta.name), fmt)
            out.append(f"# HELP {name} {help_}\n# TYPE {name} {meta.kind.value}\n")
            if meta.kind is Kind.HISTOGRAM:
                self._histograms(out, name, samples, fmt, omitted)  # type: ignore[arg-type]
            elif meta.kind is Kind.COUNTER:
                self._counters(out, name, samples, fmt, omitted)  # type: ignore[arg-type]
            else:
                self._gauges(out, name, samples, omitted)  # type: ignore[arg-type]
        return "".join(out).encode("utf-8", "replace")

    def _gauges(self, out: list[str], name: str, samples: list[tuple[Labels, float, float]],
                omitted: Counter[str]) -> None:
        label_text = self._label_text
        for labels, value, _ in samples:
            text = label_text(labels)
            if text is None:
                omitted["invalid_label_name"] += 1
                continue
            out.append(f"{name}{text} {value_text(value)}\n")

    def _counters(self, out: list[str], name: str, samples: list[tuple[Labels, float, float]], fmt: Format,
                  omitted: Counter[str]) -> None:
        label_text = self._label_text
        total = name + "_total" if fmt.openmetrics else name
        created_name = name + "_created"
        for labels, value, created in samples:
            text = label_text(labels)
            if text is None or not value >= 0:  # `not >=` is also true for NaN
                omitted["invalid_label_name" if text is None else "invalid_counter"] += 1
                continue
            if fmt.openmetrics and created > 0:
                out.append(f"{total}{text} {value_text(value)}\n{created_name}{text} {value_text(created)}\n")
            else:
                out.append(f"{total}{text} {value_text(value)}\n")

    def _histograms(self, out: list[str], name: str, samples: list[tuple[Labels, HistogramSnapshot, float]],
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
        registry.register(_Fixed(metrics))  # type: ignore[arg-type]
        if fmt.openmetrics:
            return om_exposition.generate_latest(registry)  # type: ignore[no-any-return]
        return text_exposition.generate_latest(registry)


class _Fixed:
    def __init__(self, metrics: list[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> list[Metric]:
        return self._metrics
