"""`POST /import/transcripts` on the metrics port: what `otlp-bridge import --to URL` sends a running
bridge, filed in its history by `into_history`'s rule, made durable, then answered.

Body: JSON `{"labels": {"user_id": …}, "usage": [[time, model, project, responses, input, output,
cache_read, cache_write_5m, cache_write_1h], …]}`. A row sums one model's and project's responses in
one quarter hour (`time` is the last one's, Unix seconds): every timezone's hours are whole quarter
hours, so the bridge files each row in the right local hour, and a month fits in one small request.

Who may: with the metrics port's credentials when it has any (the port's own check runs first);
without credentials configured, only a client on loopback. Every value is bounded where it enters:
the body (MAX_BODY_BYTES), the rows (MAX_ROWS), texts, counts and times; a bad body is a 400 that
says what is wrong, and nothing of it is filed.
"""

from __future__ import annotations

import ipaddress
import json
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from typing import Any

from aiohttp import web

from otlp_bridge.config import MetricsAuthSettings
from otlp_bridge.derive.pricing import PriceTable
from otlp_bridge.pipeline import Pipeline
from otlp_bridge.store.persist import SqliteState
from otlp_bridge.transcripts.into_history import identity, import_usage
from otlp_bridge.transcripts.reader import MAX_TEXT, MAX_TOKENS, Usage

PATH = "/import/transcripts"
MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_ROWS = 1_000_000
MAX_RESPONSES = 10**9  # per row
FUTURE_TOLERANCE = 300.0  # seconds a row may lie ahead of the bridge's clock (clock skew)
SLOT_SECONDS = 900

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BadImport(ValueError):
    pass


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise BadImport(f"{what}: want text of at most {MAX_TEXT} characters")
    return value


def _whole(value: Any, what: str, top: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
        raise BadImport(f"{what}: want a whole number in [0, {top}]")
    return value


def usage_rows(document: Any, now: float) -> tuple[dict[str, str], list[Usage]]:
    """The labels and rows of a request body, checked; BadImport says what is wrong."""
    if not isinstance(document, dict) or not isinstance(document.get("usage"), list):
        raise BadImport('want an object with "usage": [...] (and optionally "labels": {...})')
    labels = document.get("labels") or {}
    if not isinstance(labels, dict):
        raise BadImport('"labels" must be an object')
    rows = document["usage"]
    if len(rows) > MAX_ROWS:
        raise BadImport(f"at most {MAX_ROWS} rows per request")
    out = []
    for number, row in enumerate(rows):
        where = f"usage[{number}]"
        if not isinstance(row, list) or len(row) != 9:
            raise BadImport(f"{where}: want [time, model, project, responses, input, output, cache_read, "
                            f"cache_write_5m, cache_write_1h]")
        moment = row[0]
        if isinstance(moment, bool) or not isinstance(moment, int | float) or not math.isfinite(moment) \
                or not 0 < moment <= now + FUTURE_TOLERANCE:
            raise BadImport(f"{where}: time must be Unix seconds, not in the future")
        responses = _whole(row[3], f"{where} responses", MAX_RESPONSES)
        top = MAX_TOKENS * max(responses, 1)
        inputs, outputs, reads, written_5m, written_1h = (_whole(v, f"{where} tokens", top) for v in row[4:])
        out.append(Usage(None, None, _text(row[1], f"{where} model"), float(moment), "",
                         _text(row[2], f"{where} project"), inputs, outputs, reads, written_5m, written_1h,
                         responses))
    return labels, out


def is_loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


async def _body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY_BYTES, actual_size=request.content_length)
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY_BYTES, actual_size=size)
        chunks.append(chunk)
    return b"".join(chunks)


def import_route(pipeline: Pipeline, prices: PriceTable, state: SqliteState | None, *,
                 auth: MetricsAuthSettings | None, clock: Callable[[], float] = time.time) -> Handler:
    protected = auth is not None and (auth.bearer_token is not None or auth.basic_username is not None)

    async def handle(request: web.Request) -> web.StreamResponse:
        if not protected and not is_loopback(request.remote):
            return web.json_response({"error": "importing needs the metrics port's credentials "
                                               "([auth.metrics]) or a client on loopback"}, status=403)
        try:
            labels, usages = usage_rows(json.loads(await _body(request)), clock())
            result = import_usage(pipeline, usages, prices, identity(labels))
        except (ValueError, RecursionError) as exc:  # JSON errors and BadImport are ValueErrors
            return web.json_response({"error": f"bad import: {exc}"}, status=400)
        store = pipeline.store
        if state is not None:
            await state.commit(store, state.changed() if store.has_log else state.latest)
        return web.json_response(asdict(result))

    return handle


def rows_of(usages: Sequence[Usage]) -> list[list[Any]]:
    """The `usage` rows of a request: responses summed per quarter hour, model and project."""
    rows: dict[tuple[int, str, str], list[Any]] = {}
    for u in usages:
        key = (int(u.time // SLOT_SECONDS), u.model, u.project)
        row = rows.get(key)
        if row is None:
            rows[key] = [u.time, u.model, u.project, u.responses, u.input, u.output, u.cache_read,
                         u.cache_write_5m, u.cache_write_1h]
            continue
        row[0] = max(row[0], u.time)
        for index, value in enumerate((u.responses, u.input, u.output, u.cache_read, u.cache_write_5m,
                                       u.cache_write_1h), start=3):
            row[index] += value
    return list(rows.values())
