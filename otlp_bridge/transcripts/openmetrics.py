"""Transcript history as OpenMetrics counters with timestamps, for `promtool tsdb create-blocks-from
openmetrics`.

The families and the `type` values are the live ones (`claude_code_token_usage_tokens_total{type=
"input"|"output"|"cacheRead"|"cacheCreation"}`, `claude_code_cost_usage_USD_total`), labelled by
`model` and `project` plus the identity labels the caller gives (`source="transcripts"` by default,
so a backfilled series is never mistaken for a live one). Each series gets one sample per period it
was used in: the running total at the moment of the period's last response; and a 0 just before its
first response, so that the first period's increase is visible to PromQL as well.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TextIO

from otlp_bridge.transcripts.history import TOKEN_TYPES, History, Totals

TOKENS_FAMILY = "claude_code_token_usage_tokens"
COST_FAMILY = "claude_code_cost_usage_USD"

Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _sample(name: str, labels: Labels, value: float, time_ms: int) -> str:
    rendered = ",".join(f'{key}="{_escape(val)}"' for key, val in sorted(labels))
    number = str(int(value)) if float(value).is_integer() else repr(float(value))
    return f"{name}_total{{{rendered}}} {number} {time_ms // 1000}.{time_ms % 1000:03d}\n"


def _running(name: str, labels: Labels, periods: list[Totals], value_of: str | None) -> Iterator[str]:
    """A 0 before the first response, then the running total at each period's last response."""
    yield _sample(name, labels, 0, int(periods[0].first * 1000) - 1)
    running = 0.0
    for period in periods:
        running += period.cost_usd if value_of is None else period.tokens[value_of]
        yield _sample(name, labels, running, int(period.last * 1000))


def render(history: History, identity: Labels = (("source", "transcripts"),)) -> Iterator[str]:
    """The exposition, line by line, ending with `# EOF`."""
    series = sorted(history.periods.items())
    yield f"# HELP {TOKENS_FAMILY} Tokens used, from Claude Code transcripts.\n"
    yield f"# TYPE {TOKENS_FAMILY} counter\n"
    for (model, project), by_start in series:
        periods = [by_start[start] for start in sorted(by_start)]
        for kind in TOKEN_TYPES:
            labels = (("model", model), ("project", project), ("type", kind), *identity)
            yield from _running(TOKENS_FAMILY, labels, periods, kind)
    yield f"# HELP {COST_FAMILY} Cost at list price (USD), from Claude Code transcripts.\n"
    yield f"# TYPE {COST_FAMILY} counter\n"
    for (model, project), by_start in series:
        periods = [by_start[start] for start in sorted(by_start)]
        if periods[0].priced:  # a model has a price for all its responses or for none
            yield from _running(COST_FAMILY, (("model", model), ("project", project), *identity), periods, None)
    yield "# EOF\n"


def write(history: History, out: TextIO, identity: Labels = (("source", "transcripts"),)) -> int:
    """Write the exposition; the number of samples written."""
    samples = 0
    for line in render(history, identity):
        out.write(line)
        samples += not line.startswith("#")
    return samples
