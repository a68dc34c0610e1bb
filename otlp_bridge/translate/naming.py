"""Prometheus names for OTLP metrics and attributes.

The rules are the OpenTelemetry Collector's (prometheus exporter with unit and
type suffixes on), so dashboards built against the Collector keep working:

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
| label: invalid characters          | `_`                            | `session.id` → `session_id`              |
| label: starts with a digit         | `key_` prefixed                | `0x` → `key_0x`                          |
| label: starts with a single `_`    | `key` prefixed                 | `_tmp` → `key_tmp`                       |
"""

from __future__ import annotations

import re
from functools import lru_cache

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


def _unit_word(unit: str, table: dict[str, str]) -> str:
    unit = unit.strip()
    if not unit or "{" in unit or "}" in unit:
        return ""
    return "_".join(w for w in _WORD_SPLIT.split(table.get(unit, unit)) if w)


@lru_cache(maxsize=4096)
def metric_name(name: str, unit: str, *, monotonic_sum: bool = False, gauge: bool = False) -> str:
    """The Prometheus family name (with `_total` for counters) of an OTLP metric."""
    words = [w for w in _WORD_SPLIT.split(name) if w]
    main, _, per = unit.partition("/")
    main_word = _unit_word(main, _UNIT_WORDS)
    if main_word and main_word not in words:
        words.append(main_word)
    per_word = _unit_word(per, _PER_UNIT_WORDS)
    if per_word and per_word not in words:
        words += ["per", per_word]
    if monotonic_sum:
        words = [w for w in words if w != "total"] + ["total"]
    if gauge and unit == "1":
        words = [w for w in words if w != "ratio"] + ["ratio"]
    result = "_".join(words)
    if result[:1].isdigit():
        result = "_" + result
    return result


@lru_cache(maxsize=4096)
def label_name(key: str) -> str:
    """The Prometheus label name of an OTLP attribute key."""
    if not key:
        return key
    label = _INVALID_LABEL_CHARS.sub("_", key)
    if label[0].isdigit():
        return "key_" + label
    if label.startswith("_") and not label.startswith("__"):
        return "key" + label
    return label
