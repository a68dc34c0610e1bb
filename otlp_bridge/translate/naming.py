"""Prometheus names for OTLP metrics and attributes, and the rule that keeps family names apart.

Metric names follow the OpenTelemetry Collector (prometheus exporter with unit and type suffixes
on), so dashboards built against the Collector keep working:

| case                               | result                         | example                                  |
|------------------------------------|--------------------------------|------------------------------------------|
| invalid characters (`.`, `-`, `/`) | words joined by `_`            | `cost.usage` → `cost_usage`              |
| unit in the unit table             | its word appended              | `s` → `_seconds`, `By` → `_bytes`        |
| unit not in the table              | appended verbatim (cleaned)    | `USD` → `claude_code_cost_usage_USD_total` |
| unit `1`, empty or `{annotation}`  | nothing appended               | `{tokens}` → no suffix                   |
| unit already a word of the name    | not appended twice             | `duration_seconds` + `s` → unchanged     |
| `A/B` unit                         | `A_per_B`                      | `By/s` → `_bytes_per_second`             |
| monotonic sum                      | `_total` last (inner one moves)| `time.total`+`s` → `time_seconds_total`  |
| gauge with unit `1`                | `_ratio` last                  | `cpu.utilization` → `cpu_utilization_ratio` |
| name starts with a digit           | `_` prefixed                   | `2xx.count` → `_2xx_count`               |
| no letter or digit at all          | `''`: refused (`invalid_name`) | `...` → `''`                             |
| longer than MAX_METRIC_NAME        | the name's words cut, suffixes kept | 10 KB name → 255 chars ending `_total` |

Label names — one rule for every key a sender controls; the result is a valid Prometheus label name
that is not reserved, or `''`, which means "drop this key":

| case                                   | result                    | example                          |
|----------------------------------------|---------------------------|----------------------------------|
| invalid characters (`.`, `-`, unicode, control) | `_` each         | `session.id` → `session_id`      |
| no letter or digit at all (`""`, `...`, `名前`) | `''`: dropped    | `""` → `''`                      |
| starts with a digit                    | `key_` prefixed           | `0x` → `key_0x`                  |
| starts with `_` (`_x`, `__name__`, `__x`) | `key` prefixed: never reserved | `__name__` → `key__name__` |
| `le`, `quantile` (histogram/summary labels) | `key_` prefixed      | `le` → `key_le`                  |
| longer than MAX_LABEL_NAME             | cut to MAX_LABEL_NAME     | a 10 KB key → 128 chars          |
| two keys with one result               | values joined with `;` in key order | `a.b`, `a_b` → `a_b="x;y"` |

Family names — no two families of one exposition may share a sample name in either format (a
histogram `foo` writes `foo_bucket`, `foo_count`, `foo_sum`, `foo_created`; a counter `foo_total` is
the OpenMetrics family `foo` with `foo_total` and `foo_created`; a gauge writes its own name):

| new family                              | existing                 | result             |
|-----------------------------------------|--------------------------|--------------------|
| gauge `foo_count`                       | histogram `foo`          | `name_collision`   |
| gauge `foo`                             | counter `foo_total`      | `name_collision`   |
| gauge `foo_created`                     | counter `foo_total`      | `name_collision`   |
| histogram `foo`                         | gauge `foo_sum`          | `name_collision`   |
| gauge `foo_total`                       | gauge `foo`              | accepted           |
| the same name and kind again            |                          | accepted (it is that family) |

HELP text is cut to MAX_HELP characters (ending with `…`), control characters become spaces and `"`
becomes `'`: documentation is not data, a line reader must never see a line end inside it, and no
spelling of `"` is valid in both formats (OpenMetrics requires `\"`, the text format refuses it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from otlp_bridge.series import Kind

MAX_METRIC_NAME = 255
MAX_LABEL_NAME = 128
MAX_HELP = 1024
_MAX_NAME_INPUT = 1024  # characters of an OTLP name (and unit) looked at; bounds the memo too
_MAX_UNIT_WORD = 64
HELP_CUT = "…"

_UNIT_WORDS = {
    "d": "days", "h": "hours", "min": "minutes", "s": "seconds", "ms": "milliseconds",
    "us": "microseconds", "ns": "nanoseconds", "By": "bytes", "KiBy": "kibibytes",
    "MiBy": "mebibytes", "GiBy": "gibibytes", "TiBy": "tibibytes", "KBy": "kilobytes",
    "MBy": "megabytes", "GBy": "gigabytes", "TBy": "terabytes", "m": "meters", "V": "volts",
    "A": "amperes", "J": "joules", "W": "watts", "g": "grams", "Cel": "celsius", "Hz": "hertz",
    "1": "", "%": "percent",
}
_PER_UNIT_WORDS = {
    "s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week", "mo": "month", "y": "year",
}
_WORD_SPLIT = re.compile(r"[^a-zA-Z0-9]+")
_INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")
_HAS_WORD = re.compile(r"[a-zA-Z0-9]")
_VALID_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_RESERVED_LABELS = frozenset({"le", "quantile"})
# C0/C1 controls, DEL and the Unicode line/paragraph separators some line readers split on.
_HELP_CONTROLS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


def _unit_word(unit: str, table: dict[str, str]) -> str:
    unit = unit.strip()
    if not unit or "{" in unit or "}" in unit:
        return ""
    return "_".join(w for w in _WORD_SPLIT.split(table.get(unit, unit)) if w)[:_MAX_UNIT_WORD]


def metric_name(name: str, unit: str, *, monotonic_sum: bool = False, gauge: bool = False) -> str:
    """The Prometheus family name (with `_total` for counters) of an OTLP metric; '' when none."""
    return _metric_name(name[:_MAX_NAME_INPUT], unit[:_MAX_NAME_INPUT], monotonic_sum, gauge)


@lru_cache(maxsize=4096)
def _metric_name(name: str, unit: str, monotonic_sum: bool, gauge: bool) -> str:
    words = [w for w in _WORD_SPLIT.split(name) if w]
    if not words:
        return ""
    suffix: list[str] = []
    main, _, per = unit.partition("/")
    main_word = _unit_word(main, _UNIT_WORDS)
    if main_word and main_word not in words:
        suffix.append(main_word)
    per_word = _unit_word(per, _PER_UNIT_WORDS)
    if per_word and per_word not in words:
        suffix += ["per", per_word]
    last = "total" if monotonic_sum else "ratio" if gauge and unit == "1" else ""
    if last:
        words = [w for w in words if w != last]
        suffix = [w for w in suffix if w != last] + [last]
    # Cut the name's own words, never the suffixes: `_total` must stay last.
    tail = "_".join(suffix)
    room = MAX_METRIC_NAME - 1 - (len(tail) + 1 if tail and words else len(tail))
    result = "_".join(filter(None, ("_".join(words)[:max(room, 0)].rstrip("_"), tail)))
    return "_" + result if result[:1].isdigit() else result


def label_name(key: str) -> str:
    """The Prometheus label name of an OTLP attribute key; '' means "drop this key"."""
    return _label_name(key[:MAX_LABEL_NAME])


@lru_cache(maxsize=4096)
def _label_name(key: str) -> str:
    if not _HAS_WORD.search(key):
        return ""
    label = _INVALID_LABEL_CHARS.sub("_", key)
    if label[0].isdigit() or label in _RESERVED_LABELS:
        label = "key_" + label
    elif label[0] == "_":
        label = "key" + label
    return label[:MAX_LABEL_NAME]


def is_label_name(name: str) -> bool:
    """Whether `name` is what `label_name` makes: valid, not reserved, not too long."""
    return (len(name) <= MAX_LABEL_NAME and _VALID_LABEL.fullmatch(name) is not None
            and name[0] != "_" and name not in _RESERVED_LABELS)


def help_text(description: str, fallback: str) -> str:
    """HELP for a family: the description (or `fallback` when empty), capped, without controls or `"`."""
    text = description or fallback
    if len(text) > MAX_HELP:
        text = text[:MAX_HELP - len(HELP_CUT)] + HELP_CUT
    return _HELP_CONTROLS.sub(" ", text).replace('"', "'")


# --- family names ---------------------------------------------------------------------------------
_SUFFIXES = {
    Kind.COUNTER: ("_total", "_created"),
    Kind.HISTOGRAM: ("_bucket", "_count", "_sum", "_created"),
    Kind.GAUGE: (),
}


def openmetrics_name(name: str, kind: Kind) -> str:
    """The OpenMetrics family name: a counter's name without its `_total`."""
    return name.removesuffix("_total") if kind is Kind.COUNTER else name


def occupied_names(name: str, kind: Kind) -> frozenset[str]:
    """Every name a family takes in text and OpenMetrics: its family names and its sample names."""
    base = openmetrics_name(name, kind)
    return frozenset({name, base, *(base + suffix for suffix in _SUFFIXES[kind])})


class FamilyNames:
    """The names taken by the families of one exposition, to refuse a new family that would clash.

    Pure bookkeeping: the store keeps one, seeded with every family the bridge exposes itself, and
    asks `refusal` before it creates a family."""

    def __init__(self, families: Iterable[tuple[str, Kind]] = ()) -> None:
        self._owner: dict[str, tuple[str, Kind]] = {}
        for name, kind in families:
            self.add(name, kind)

    def refusal(self, name: str, kind: Kind) -> str | None:
        """`name_collision` when the family would share a name with another one; None when it may be."""
        for taken in occupied_names(name, kind):
            owner = self._owner.get(taken)
            if owner is not None and owner != (name, kind):
                return "name_collision"
        return None

    def add(self, name: str, kind: Kind) -> None:
        for taken in occupied_names(name, kind):
            self._owner.setdefault(taken, (name, kind))
