"""`otlp-bridge import PATH... [--openmetrics FILE]`: transcripts to history, with a summary."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from otlp_bridge.app import Bridge
from otlp_bridge.config import ConfigError, Settings, load_settings
from otlp_bridge.derive.pricing import Price, PriceTable
from otlp_bridge.series import Labels
from otlp_bridge.store.persist import StateError
from otlp_bridge.transcripts import openmetrics
from otlp_bridge.transcripts.endpoint import PATH, rows_of
from otlp_bridge.transcripts.history import History
from otlp_bridge.transcripts.into_history import HistoryImport, identity, import_usage
from otlp_bridge.transcripts.ledger import Ledger
from otlp_bridge.transcripts.progress import Progress
from otlp_bridge.transcripts.reader import MAX_LINE_BYTES, ReadStats, Usage, read_usage, transcript_files
from otlp_bridge.transcripts.report import print_import, print_summary

STEPS = {"hour": 3600, "day": 86400}


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
                     help="identity label on every series, e.g. user_id=… (all carry source=transcripts)")
    cmd.add_argument("--state-dir", type=Path, metavar="DIR",
                     help="add the history to a stopped bridge's state (its state.dir): hours before its "
                          "first telemetry for this user only")
    cmd.add_argument("--to", metavar="URL",
                     help="add the history to a running bridge: its metrics port, e.g. http://127.0.0.1:9464")
    cmd.add_argument("--token", help="with --to: the metrics port's bearer token ([auth.metrics])")
    cmd.add_argument("--max-line-bytes", type=int, default=MAX_LINE_BYTES, help="longer lines are skipped")
    cmd.add_argument("--config", help="TOML config file, for `pricing` overrides")
    cmd.set_defaults(run=run_import)


def _moment(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date or time: {text!r}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def identity_labels(pairs: Sequence[str]) -> Labels:
    given: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UsageError(f"--label {pair!r}: want KEY=VALUE")
        given[key] = value
    try:
        return identity(given)
    except ValueError as exc:
        raise UsageError(f"--label: {exc}") from None


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
    kept = [u for u in ledger.records if args.before is None or u.time < args.before]
    history = History(prices, STEPS[args.step])
    history.extend(kept)
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
    if args.state_dir is not None:
        try:
            result = into_state(settings, args.state_dir, kept, prices, identity)
        except (OSError, StateError, ValueError) as exc:
            print(f"otlp-bridge import: cannot import into {args.state_dir}: {exc}", file=sys.stderr)
            return 1
        print_import(result, sys.stdout)
    if args.to is not None:
        try:
            answer = send(args.to, dict(identity), kept, args.token)
        except ImportRefused as exc:
            print(f"otlp-bridge import: {args.to}: {exc}", file=sys.stderr)
            return 1
        print_import(HistoryImport(**{**answer, "rejected": Counter(answer["rejected"])}), sys.stdout)
    return 0


class ImportRefused(Exception):
    pass


def send(url: str, labels: dict[str, str], usages: Sequence[Usage], token: str | None) -> dict[str, Any]:
    """POST the usage to a running bridge's import endpoint; its answer, or ImportRefused saying why."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ImportRefused("want the bridge's metrics URL, e.g. http://127.0.0.1:9464")
    target = url if parts.path not in ("", "/") else urllib.parse.urlunsplit(parts._replace(path=PATH))
    body = json.dumps({"labels": {k: v for k, v in labels.items() if k != "source"},
                       "usage": rows_of(usages)}).encode()
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    request = urllib.request.Request(target, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace").strip()
        raise ImportRefused(f"HTTP {exc.code}: {detail[:500]}") from None
    except (OSError, ValueError) as exc:
        raise ImportRefused(str(getattr(exc, "reason", exc))) from None


def into_state(settings: Settings, directory: Path, usages: Sequence[Usage], prices: PriceTable,
               identity: Labels) -> HistoryImport:
    """Open a stopped bridge's state as the bridge would, import into its history, commit."""
    settings.state = settings.state.model_copy(update={"dir": directory, "persist": True})
    bridge = Bridge(settings)
    state = bridge.state
    assert state is not None  # persist is on
    if not state.path.is_file():
        raise ValueError(f"no bridge state there ({state.path.name} missing)")
    state.open()
    try:
        state.load_into(bridge.store, series_ttl=0, now=bridge.store.clock())
        result = import_usage(bridge.pipeline, usages, prices, identity)
        state.write(bridge.store.take_dirty())
    finally:
        state.close()
    return result


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
