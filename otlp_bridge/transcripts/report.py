"""What `otlp-bridge import` tells its user: what was read, what counted, and where it went."""

from __future__ import annotations

from datetime import UTC
from typing import TextIO

from otlp_bridge.derive.blocks import hour_start
from otlp_bridge.transcripts.history import History, Totals
from otlp_bridge.transcripts.into_history import HistoryImport
from otlp_bridge.transcripts.ledger import Ledger
from otlp_bridge.transcripts.reader import ReadStats


def _row(name: str, totals: Totals) -> str:
    t = totals.tokens
    cost = "unpriced" if not totals.priced else f"{totals.cost_usd:,.4f}"
    return (f"{name[:28]:<28} {totals.messages:>9,} {t['input']:>12,} {t['output']:>12,} {t['cacheRead']:>14,} "
            f"{t['cacheCreation']:>14,} {cost:>12}")


def print_summary(stats: ReadStats, ledger: Ledger, history: History, out: TextIO) -> None:
    malformed = sum(stats.malformed.values())
    reasons = ", ".join(f"{n} {reason}" for reason, n in stats.malformed.most_common()) or "none"
    unknown = ", ".join(f"{model} ({n} responses)" for model, n in sorted(history.unpriced.items())) or "none"
    out.write(
        f"files: {stats.files} read, {stats.unreadable_files} unreadable; lines: {stats.lines:,} "
        f"({stats.bytes / 1e6:,.1f} MB)\n"
        f"messages: {stats.usage_lines:,} assistant lines with usage -> {len(ledger.records):,} responses "
        f"({ledger.duplicates:,} duplicates skipped, {ledger.unidentified:,} without ids, "
        f"{stats.synthetic:,} synthetic)\n"
        f"malformed lines skipped: {malformed:,} ({reasons})\n"
        f"unknown models (tokens counted, no cost): {unknown}\n"
        f"{'model':<28} {'responses':>9} {'input':>12} {'output':>12} {'cache read':>14} "
        f"{'cache write':>14} {'cost USD':>12}\n")
    for model, totals in sorted(history.by_model.items(), key=lambda kv: -kv[1].cost_usd):
        out.write(_row(model, totals) + "\n")
    total = history.total()
    out.write(_row("total", total) + (" (priced models only)" if history.unpriced else "") + "\n")


def print_import(result: HistoryImport, out: TextIO) -> None:
    first = result.first_telemetry_hour
    since = "none for this user" if first is None else f"from {hour_start(first, UTC):%Y-%m-%d %H}:00 local time"
    out.write(f"history: {result.responses:,} responses in {result.imported_hours:,} new or grown hourly buckets; "
              f"{result.covered:,} responses in hours telemetry covers ({since}); "
              f"{result.unchanged:,} buckets already imported\n")
    if result.rejected:
        out.write(f"history: refused by the store: {dict(result.rejected)}\n")
