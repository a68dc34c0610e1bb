"""What the bridge logs and how: text or JSON lines, a periodic digest at INFO, one line per export at DEBUG.

A newcomer confirms a set-up from the log alone: the digest says what arrived (exports accepted and
refused since the last digest, live series, the last client seen), the DEBUG line says it per export.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import IO, Any, Literal

from google.protobuf.message import Message

from otlp_bridge import families
from otlp_bridge.derive.query import series_of
from otlp_bridge.self_metrics import SelfMetrics
from otlp_bridge.series import Labels
from otlp_bridge.store.accumulator import Store

log = logging.getLogger("otlp_bridge.digest")
export_log = logging.getLogger("otlp_bridge.export")

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
ACCEPTED = frozenset({"success", "partial"})  # outcomes of otlp_bridge_requests_total that took data
# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged as a field.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, then any extras."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update((k, v) for k, v in record.__dict__.items() if k not in _STANDARD and k not in out)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def configure(level: str, log_format: LogFormat, stream: IO[str] | None = None) -> None:
    """Send every logger's records to `stream` (stderr) at `level`, as text or JSON lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)


def _who(labels: Labels) -> str:
    values = dict(labels)
    name = values.get("user_email") or values.get("user_id", "")[:12] or values.get("job", "?")
    stamped = ", ".join(f"{k}={values[k]}" for k in ("device", "team") if k in values)
    return f"{name} ({stamped})" if stamped else name


class Digest:
    """Counts since the previous digest, read from the self-metrics and the store (nothing extra to keep)."""

    def __init__(self, stats: SelfMetrics, store: Store) -> None:
        self.stats = stats
        self.store = store
        self._before: Counter[str] = Counter()

    def line(self, now: float) -> tuple[str, dict[str, Any]]:
        """The digest's message and its fields (for JSON logs)."""
        by_outcome: Counter[str] = Counter()
        for (_, _, outcome), count in self.stats.requests.items():
            by_outcome[outcome] += count
        recent = by_outcome - self._before
        self._before = by_outcome
        accepted = sum(n for outcome, n in recent.items() if outcome in ACCEPTED)
        refused = {outcome: n for outcome, n in sorted(recent.items()) if outcome not in ACCEPTED}
        fields: dict[str, Any] = {"exports_accepted": accepted, "exports_refused": sum(refused.values()),
                                  "refused_by_outcome": refused, "series": self.store.series_count}
        why = " (" + ", ".join(f"{k} {n}" for k, n in refused.items()) + ")" if refused else ""
        message = f"since the last digest: {accepted} exports accepted, {fields['exports_refused']} refused{why}; " \
                  f"{fields['series']} series"
        seen = series_of(self.store, families.LAST_SEEN.name)
        if seen:
            labels, at = max(seen, key=lambda item: item[1])
            fields["last_client"], fields["last_client_seen"] = _who(labels), datetime.fromtimestamp(at, UTC)
            message += f"; last client seen {max(now - at, 0):.0f} s ago: {fields['last_client']}"
        else:
            message += "; no client events yet (OTEL_LOGS_EXPORTER=otlp sends them)"
        return message, fields

    async def run(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            message, fields = self.line(self.store.clock())
            log.info("%s", message, extra=fields)


@contextlib.asynccontextmanager
async def digest_every(interval: float, stats: SelfMetrics, store: Store) -> AsyncIterator[None]:
    """Log a digest every `interval` seconds while the body runs (0 or less: never)."""
    if interval <= 0:
        yield
        return
    task = asyncio.create_task(Digest(stats, store).run(interval))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def exported(transport: str, signal: str, size: int, response: Message, *, identity: Labels = ()) -> None:
    """One DEBUG line per export answered with success (the pipeline calls it once per request;
    refusals have their WARNING line already)."""
    if not export_log.isEnabledFor(logging.DEBUG):
        return
    partial = response.partial_success if response.HasField("partial_success") else None
    rejected = sum(value for spec, value in partial.ListFields() if spec.name.startswith("rejected_")) \
        if partial is not None else 0
    outcome = "partial" if partial is not None else "success"
    who = " from " + ", ".join(f"{k}={v}" for k, v in identity) if identity else ""
    refused = f", {rejected} items refused ({partial.error_message})" if partial is not None else ""
    export_log.debug("%s %s export of %d bytes%s: %s%s", transport, signal, size, who, outcome, refused,
                     extra={"transport": transport, "signal": signal, "bytes": size, "outcome": outcome,
                            "identity": dict(identity), "items_refused": rejected})
