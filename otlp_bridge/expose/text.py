"""A purpose-built Prometheus text-format (0.0.4) renderer over the store's snapshot.

prometheus_client's generic exposition builds a Sample object per series and formats labels
afresh each scrape; at 100k series that is most of a scrape. This renders the same text from
plain tuples and remembers each label set's rendered form. Its output parses identically with
prometheus_client's parser (tests/test_render.py) and passes `promtool check metrics`.
"""

from __future__ import annotations

from prometheus_client.exposition import generate_latest
from prometheus_client.registry import CollectorRegistry
from prometheus_client.utils import floatToGoString

from otlp_bridge.expose.snapshot import HistogramSnapshot, Snapshot, histogram_buckets
from otlp_bridge.translate.metrics import Kind, Labels

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LABEL_CACHE_LIMIT = 500_000


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _escape_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


class TextRenderer:
    def __init__(self) -> None:
        self._labels: dict[Labels, str] = {}

    def _label_text(self, labels: Labels) -> str:
        text = self._labels.get(labels)
        if text is None:
            text = "{" + ",".join(f'{k}="{_escape_value(v)}"' for k, v in labels) + "}" if labels else ""
            if len(self._labels) >= _LABEL_CACHE_LIMIT:
                self._labels.clear()  # crude but bounded; the next scrape refills what is live
            self._labels[labels] = text
        return text

    def render(self, snap: Snapshot) -> bytes:
        out: list[str] = []
        for meta, samples in snap.families:
            name = meta.name
            out.append(f"# HELP {name} {_escape_help(meta.help)}\n# TYPE {name} {meta.kind.value}\n")
            if meta.kind is Kind.HISTOGRAM:
                for labels, value in samples:
                    self._histogram(out, name, labels, value)  # type: ignore[arg-type]
            else:
                label_text = self._label_text
                out.extend(f"{name}{label_text(labels)} {floatToGoString(value)}\n" for labels, value in samples)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Families(snap))  # type: ignore[arg-type]
        return "".join(out).encode() + generate_latest(registry)

    def _histogram(self, out: list[str], name: str, labels: Labels, value: HistogramSnapshot) -> None:
        _, _, count, total = value
        inner = self._label_text(labels)[1:-1]
        prefix = inner + "," if inner else ""
        out.extend(f'{name}_bucket{{{prefix}le="{le}"}} {floatToGoString(cumulative)}\n'
                   for le, cumulative in histogram_buckets(value))
        out.append(f"{name}_count{self._label_text(labels)} {floatToGoString(count)}\n")
        out.append(f"{name}_sum{self._label_text(labels)} {floatToGoString(total)}\n")


class _Families:
    """The few derived and self families, rendered by prometheus_client itself."""

    def __init__(self, snap: Snapshot) -> None:
        self._snap = snap

    def collect(self) -> list[object]:
        return list(self._snap.self_families)
