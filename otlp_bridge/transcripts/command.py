"""`otlp-bridge import PATH... [--openmetrics FILE]`: transcripts to history, with a summary."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from otlp_bridge.config import ConfigError, load_settings
from otlp_bridge.derive.pricing import Price, PriceTable
from otlp_bridge.transcripts import openmetrics
from otlp_bridge.transcripts.history import History, Totals
from otlp_bridge.transcripts.ledger import Ledger
from otlp_bridge.transcripts.progress import Progress
from otlp_bridge.transcripts.reader import MAX_LINE_BYTES, ReadStats, read_usage, transcript_files

STEPS = {"hour": 3600, "day": 86400}
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_OWN_LABELS = frozenset({"model", "project", "type"})
MAX_LABEL_VALUE = 1024


class UsageError(ValueError):
    pass


def add_import_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = commands.add_parser("import", help="read Claude Code transcripts (~/.claude/projects) into history")
    cmd.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="transcript files or directories")
    cmd.add_argument("--openmetrics", metavar="FILE",
                     help="write OpenMetrics with timestamps for `promtool tsdb create-blocks-from openmetrics`")
    cmd.add_argument("--step", choices=sorted(STEPS), default="hour", help="one sample per series per step")
    cmd.add_argument("--before", type=_moment, metavar="TIME",
                     help="only responses before this ISO 8601 date or time (UTC unless it says), e.g. when "
                          "telemetry began, so a backfill never overlaps it")
    cmd.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                     help="identity label on every series, e.g. user_id=… (default: source=transcripts)")
    cmd.add_argument("--max-line-bytes", type=int, default=MAX_LINE_BYTES, help="longer lines are skipped")
    cmd.add_argument("--config", help="TOML config file, for `pricing` overrides")
    cmd.set_defaults(run=run_import)


def _moment(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date or time: {text!r}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def identity_labels(pairs: Sequence[str]) -> tuple[tuple[str, str], ...]:
    labels = {"source": "transcripts"}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not _LABEL_NAME.match(key) or key.startswith("__") or key in _OWN_LABELS:
            raise UsageError(f"--label {pair!r}: want KEY=VALUE with KEY a label name other than "
                             f"{', '.join(sorted(_OWN_LABELS))}")
        if len(value) > MAX_LABEL_VALUE:
            raise UsageError(f"--label {key}: value longer than {MAX_LABEL_VALUE} characters")
        labels[key] = value
    return tuple(sorted(labels.items()))


def run_import(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
        identity = identity_labels(args.label)
        missing = [str(p) for p in args.paths if not p.exists()]
        if missing:
            raise UsageError(f"no such file or directory: {', '.join(missing)}")
        if args.max_line_bytes <= 0:
            raise UsageError("--max-line-bytes must be positive")
    except (ConfigError, UsageError) as exc:
        print(f"otlp-bridge import: {exc}", file=sys.stderr)
        return 2
    prices = PriceTable({model: Price(**p.model_dump()) for model, p in settings.pricing.items()})
    stats, ledger = ReadStats(), Ledger()
    progress = Progress(_size(args.paths), sys.stderr)
    for usage in read_usage(args.paths, stats, max_line_bytes=args.max_line_bytes, on_bytes=progress.advance):
        ledger.add(usage)
    progress.close()
    history = History(prices, STEPS[args.step])
    history.extend(u for u in ledger.records if args.before is None or u.time < args.before)
    print_summary(stats, ledger, history, sys.stdout)
    if args.before is not None:
        print(f"left out (at or after --before): {len(ledger.records) - history.total().messages:,} responses")
    if args.openmetrics:
        try:
            samples = _write_openmetrics(history, args.openmetrics, identity)
        except OSError as exc:
            print(f"otlp-bridge import: cannot write {args.openmetrics}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        print(f"wrote {samples} samples to {args.openmetrics}")
    return 0


def _size(paths: Sequence[Path]) -> int:
    total = 0
    for path in transcript_files(paths):
        with contextlib.suppress(OSError):  # reported when it is read
            total += path.stat().st_size
    return total


def _write_openmetrics(history: History, target: str, identity: tuple[tuple[str, str], ...]) -> int:
    if target == "-":
        return openmetrics.write(history, sys.stdout, identity)
    partial = f"{target}.partial"
    with open(partial, "w", encoding="utf-8") as out:
        samples = openmetrics.write(history, out, identity)
    os.replace(partial, target)  # never a half-written file where promtool will look
    return samples


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
