"""Claude Code transcripts, line by line: one `Usage` per assistant line that carries usage.

Claude Code appends a JSON object per line to `~/.claude/projects/<project dir>/<session>.jsonl`.
An assistant line holds the API response's `message.id`, `message.model` and `message.usage`, the
line's `requestId`, `timestamp`, `sessionId` and `cwd`. One response with several content blocks is
written as several lines repeating the same ids and usage; `ledger` counts it once.

Everything read here came from a file anyone could have edited, so every value is bounded where it
enters: a line longer than `max_line_bytes` is skipped without being held in memory, token counts
must be whole numbers in [0, MAX_TOKENS], text is cut to MAX_TEXT characters. A line that cannot be
used is counted by reason and skipped; a file that cannot be read is counted and skipped.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 16 * 1024 * 1024  # a Write of a large file fits; a runaway line does not
MAX_TOKENS = 10**9  # per message and type: far above any real answer, below float rounding
MAX_TEXT = 512  # model, project, session, ids
_LOGGED_PROBLEMS = 20  # then only counted, so a broken tree cannot flood the log
SYNTHETIC_MODEL = "<synthetic>"  # Claude Code's own placeholder answers (errors, interrupts): no API call


@dataclass(slots=True)
class Usage:
    """One API response's usage as a transcript line reports it (or, sent to a running bridge, the sum
    of `responses` responses of one model and project in one quarter hour)."""

    message_id: str | None
    request_id: str | None
    model: str
    time: float  # Unix seconds
    session: str
    project: str
    input: int
    output: int
    cache_read: int
    cache_write_5m: int
    cache_write_1h: int
    responses: int = 1

    @property
    def cache_creation(self) -> int:
        return self.cache_write_5m + self.cache_write_1h

    def merge(self, other: Usage) -> None:
        """Keep the largest count per type: a streamed message's later lines never report less."""
        self.input = max(self.input, other.input)
        self.output = max(self.output, other.output)
        self.cache_read = max(self.cache_read, other.cache_read)
        self.cache_write_5m = max(self.cache_write_5m, other.cache_write_5m)
        self.cache_write_1h = max(self.cache_write_1h, other.cache_write_1h)
        self.message_id = self.message_id or other.message_id
        self.request_id = self.request_id or other.request_id


@dataclass
class ReadStats:
    files: int = 0
    unreadable_files: int = 0
    bytes: int = 0
    lines: int = 0
    usage_lines: int = 0  # assistant lines with usage, before de-duplication
    synthetic: int = 0
    truncated_values: int = 0
    malformed: Counter[str] = field(default_factory=Counter)  # reason → lines

    def problem(self, reason: str, where: str) -> None:
        self.malformed[reason] += 1
        if sum(self.malformed.values()) <= _LOGGED_PROBLEMS:
            log.warning("%s: skipped line (%s)", where, reason)


class Malformed(ValueError):
    """A line that is JSON-shaped but not a usable assistant record; the message is the reason."""


def transcript_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Each path itself when it is a file, else every `*.jsonl` below it, in a stable order.

    Symbolic links to directories are not followed (no cycles); unreadable directories are skipped."""
    for path in paths:
        if not path.is_dir():
            yield path
            continue
        for root, dirs, files in os.walk(path, onerror=lambda exc: log.warning("cannot list %s", exc.filename)):
            dirs.sort()
            for name in sorted(files):
                if name.endswith(".jsonl"):
                    yield Path(root) / name


def _lines(handle: IO[bytes], limit: int) -> Iterator[tuple[bytes | None, int]]:
    """(line, bytes consumed); the line is None when longer than `limit`, skipped in chunks."""
    while True:
        line = handle.readline(limit + 1)
        if not line:
            return
        if len(line) <= limit or line.endswith(b"\n"):
            yield line, len(line)
            continue
        consumed = len(line)
        while not line.endswith(b"\n"):
            line = handle.readline(limit)
            if not line:
                break
            consumed += len(line)
        yield None, consumed


def read_usage(paths: Iterable[Path], stats: ReadStats, *, max_line_bytes: int = MAX_LINE_BYTES,
               on_bytes: Callable[[int], None] | None = None) -> Iterator[Usage]:
    """Every assistant line's usage, in file order; problems go to `stats`, never raise."""
    for path in transcript_files(paths):
        try:
            handle = path.open("rb")
        except OSError as exc:
            stats.unreadable_files += 1
            log.warning("cannot read %s: %s", path, exc.strerror or exc)
            continue
        stats.files += 1
        with handle:
            number = 0
            try:
                for line, consumed in _lines(handle, max_line_bytes):
                    number += 1
                    stats.lines += 1
                    stats.bytes += consumed
                    if on_bytes is not None:
                        on_bytes(consumed)
                    usage = _usage_of(line, path, number, stats)
                    if usage is not None:
                        yield usage
            except OSError as exc:  # e.g. EIO, or a file removed from under a network mount
                stats.unreadable_files += 1
                log.warning("stopped reading %s at line %d: %s", path, number, exc.strerror or exc)


def _usage_of(line: bytes | None, path: Path, number: int, stats: ReadStats) -> Usage | None:
    where = f"{path}:{number}"
    if line is None:
        stats.problem("line too long", where)
        return None
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        stats.problem("not JSON", where)
        return None
    try:
        usage = parse_record(record, path, stats)
    except Malformed as exc:
        stats.problem(str(exc), where)
        return None
    if usage is not None:
        stats.usage_lines += 1
    return usage


def parse_record(record: Any, path: Path, stats: ReadStats) -> Usage | None:
    """The usage on one decoded line; None for lines that carry none (most of them)."""
    if not isinstance(record, dict):
        raise Malformed("not an object")
    if record.get("type") != "assistant":
        return None
    message = record.get("message")
    if not isinstance(message, dict) or "usage" not in message:
        return None
    usage = message["usage"]
    if not isinstance(usage, dict):
        raise Malformed("usage is not an object")
    model = _text(message.get("model"), "unknown", stats)
    if model == SYNTHETIC_MODEL:
        stats.synthetic += 1
        return None
    creation = _count(usage, "cache_creation_input_tokens")
    breakdown = usage.get("cache_creation")
    one_hour = _count(breakdown, "ephemeral_1h_input_tokens") if isinstance(breakdown, dict) else 0
    if "cache_creation_input_tokens" not in usage and isinstance(breakdown, dict):
        creation = one_hour + _count(breakdown, "ephemeral_5m_input_tokens")
    # Older API answers carry no breakdown, and Claude Code then writes zeros for it: whatever the
    # breakdown does not name as 1-hour writes is a 5-minute write, as the CLI itself prices it.
    one_hour = min(one_hour, creation)
    return Usage(
        message_id=_optional_text(message.get("id"), stats),
        request_id=_optional_text(record.get("requestId"), stats),
        model=model,
        time=_timestamp(record.get("timestamp")),
        session=_text(record.get("sessionId"), path.stem, stats),
        project=_text(record.get("cwd"), path.parent.name, stats),
        input=_count(usage, "input_tokens"),
        output=_count(usage, "output_tokens"),
        cache_read=_count(usage, "cache_read_input_tokens"),
        cache_write_5m=creation - one_hour,
        cache_write_1h=one_hour,
    )


def _count(container: dict[str, Any], key: str) -> int:
    value = container.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Malformed(f"{key} is not a number")
    if not 0 <= value <= MAX_TOKENS or value != int(value):  # NaN and infinities fail the range
        raise Malformed(f"{key} out of range")
    return int(value)


def _optional_text(value: Any, stats: ReadStats) -> str | None:
    if value is None or value == "":
        return None
    return _text(value, "", stats)


def _text(value: Any, default: str, stats: ReadStats) -> str:
    if not isinstance(value, str) or not value:
        return default[:MAX_TEXT]
    if len(value) > MAX_TEXT:
        stats.truncated_values += 1
        return value[:MAX_TEXT]
    return value


def _timestamp(value: Any) -> float:
    if not isinstance(value, str) or len(value) > 64:
        raise Malformed("no timestamp")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Malformed("bad timestamp") from None
    if moment.tzinfo is None:
        raise Malformed("timestamp without timezone")
    return moment.timestamp()
