"""/metrics bodies: one rendering per format shared by every scrape that arrives while it runs, and
reused while the store's `version` has not moved, so N concurrent scrapes cost one snapshot and one
rendering, not N. The store's families (the bulk: every series) are snapshotted on the loop in chunks
and rendered in a worker thread; the few derived and self families are rendered fresh each scrape.

Pacing: a rendering holds the GIL, so scrapes back-to-back at a large store would take the CPU the
event loop needs for exports. A rendering that cost D CPU seconds (snapshot and render) is followed
by at least PACE·D seconds before the next rendering of its format starts: a scrape that needs a new
body within that time waits for it (with every scrape that arrives meanwhile, sharing the one
rendering). Renderings of a format then take at most 1/(1 + PACE) of the process whatever the
scrapers do, and no answer is ever older than its request: pacing delays, it never serves a stale
body. The delay is bounded by PACE·D: at 100k series ≈ 0.12 s after a rendering that reused most
chunks (D ≈ 0.04 s), ≈ 0.6 s after a full one (D ≈ 0.2 s); Prometheus scrapes every 15-60 s and
never waits. An unchanged store answers at once from the kept body."""

from __future__ import annotations

import asyncio
import ctypes
import functools
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client.metrics_core import Metric

from otlp_bridge import families
from otlp_bridge.expose.compressed import Part, crc_joined, gzip_stream
from otlp_bridge.expose.render import Format, Renderer, tail_names
from otlp_bridge.expose.snapshot import snapshot
from otlp_bridge.series import Kind
from otlp_bridge.store.accumulator import Store
from otlp_bridge.translate.naming import FamilyNames

log = logging.getLogger(__name__)

PACE = 3.0  # after a rendering that cost D CPU seconds, the next of its format waits until PACE·D have passed
WRITE_CHUNK = 1024 * 1024  # bytes per write: each waits for the socket, so a slow scraper holds one at most
IDLE_FORMAT_SECONDS = 600.0  # a format nobody scraped for this long gives back its memory (its body)
_DERIVED = tuple((name, Kind.GAUGE) for name in sorted(families.DERIVED_GAUGES))
Key = tuple[int, tuple[tuple[str, Kind], ...]]  # the store's version, the names the tail takes


@dataclass(frozen=True, slots=True)
class _Body:
    key: Key
    chunks: list[Part]
    crc: tuple[int, int]  # the CRC-32 and length of their text, for a gzip stream's trailer
    made: float  # time.monotonic() when done
    cost: float  # CPU seconds it took: the snapshot's on the loop, the rendering's in its thread


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None (another C library). A forgotten format's body lies in free heap
    pages that glibc keeps: measured at 100k series, dropping both bodies gave back a quarter of their
    RSS without it, all of it with. Not after every rendering: the next one faults the pages back
    in, and export latency during back-to-back scrapes doubled (p50 8 -> 16 ms)."""
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None
    return trim


_TRIM = _malloc_trim()


def _give_back_memory() -> None:
    if _TRIM is not None:
        _TRIM(0)  # ~1 ms at 100k series


def _timed(render: Callable[[], list[Part]]) -> tuple[list[Part], tuple[int, int], float]:
    """`render()`, the CRC-32 and length of its text, and the CPU seconds they took (its thread's own:
    other threads and processes do not count)."""
    began = time.thread_time()
    parts = render()
    return parts, crc_joined((0, 0), parts), time.thread_time() - began


class Scrapes:
    def __init__(self, store: Store, tail: Callable[[], list[Metric]], omitted: Counter[tuple[str, str]]) -> None:
        self._store = store
        self._tail = tail  # derived and self families, computed on the loop per scrape
        self._omitted = omitted  # (endpoint, reason) -> count, shown by the self families
        self._renderer = Renderer()
        self._bodies: dict[Format, _Body] = {}
        self._pending: dict[Format, asyncio.Future[_Body]] = {}
        self.renderings = 0  # bulk renderings done (tests read it: shared scrapes do not add one each)
        self._logged: frozenset[str] = frozenset()  # reasons last logged: a line when they change, not per scrape
        self._last_scrape: dict[Format, float] = {}

    async def body(self, fmt: Format) -> tuple[list[Part], Part]:
        """The store's families (in chunks) and the rest (ending in `# EOF` for OpenMetrics)."""
        bulk, tail = await self._current(fmt)
        return bulk.chunks, tail

    async def _current(self, fmt: Format) -> tuple[_Body, Part]:
        self._forget_idle(fmt)
        tail_metrics = self._tail()
        seed = (*_DERIVED, *tail_names(tail_metrics))
        bulk = await self._bulk(fmt, (self._store.version, seed))
        return bulk, await asyncio.to_thread(Renderer.tail, tail_metrics, fmt)

    def _forget_idle(self, fmt: Format) -> None:
        """Prometheus asks for OpenMetrics; a person with curl for text, now and then: the body of a
        format kept for reuse costs ~0.3-0.6 KB per series, so one not asked for in a while goes."""
        now = time.monotonic()
        self._last_scrape[fmt] = now
        for other, last in list(self._last_scrape.items()):
            if now - last > IDLE_FORMAT_SECONDS and other not in self._pending:
                del self._last_scrape[other]
                self._bodies.pop(other, None)
                self._renderer.forget(other)
                _give_back_memory()

    async def _bulk(self, fmt: Format, key: Key) -> _Body:
        cached = self._bodies.get(fmt)
        if cached is not None and cached.key == key:
            return cached
        pending = self._pending.get(fmt)
        if pending is None:  # else join the rendering under way: it began after this scrape's data
            pending = self._pending[fmt] = asyncio.ensure_future(self._render(fmt, key[1]))
            pending.add_done_callback(lambda _: self._pending.pop(fmt, None))
        return await asyncio.shield(pending)  # one scraper hanging up must not cancel the others' body

    async def _render(self, fmt: Format, seed: tuple[tuple[str, Kind], ...]) -> _Body:
        last = self._bodies.get(fmt)
        if last is not None and (wait := last.made + PACE * last.cost - time.monotonic()) > 0:
            await asyncio.sleep(wait)  # pacing (module docstring)
        self._bodies.pop(fmt, None)  # stale now: never hold two bodies of one format
        key = (self._store.version, seed)  # after the wait: what the snapshot below starts from
        began = time.thread_time()  # the loop's CPU while it copies (others' work between chunks too)
        snap = await snapshot(self._store)
        copied = time.thread_time() - began
        omitted: Counter[str] = Counter()
        parts, crc, rendered = await asyncio.to_thread(
            _timed, functools.partial(self._renderer.families, snap, fmt, FamilyNames(seed), omitted))
        del snap  # the copy goes before the body is kept
        self.renderings += 1
        for reason, count in omitted.items():
            self._omitted["/metrics", reason] += count
        if frozenset(omitted) != self._logged:
            self._logged = frozenset(omitted)
            if omitted:
                log.warning("/metrics left out what it cannot expose validly "
                            "(otlp_bridge_exposition_omitted_total): %s", dict(omitted))
        body = self._bodies[fmt] = _Body(key, parts, crc, time.monotonic(), copied + rendered)
        return body

    async def respond(self, request: web.Request, fmt: Format) -> web.StreamResponse:
        """One gzip stream made of the kept segments to a scraper that accepts gzip, else the text,
        inflated part by part as it is written."""
        bulk, tail = await self._current(fmt)
        parts = (*bulk.chunks, tail)
        response = web.StreamResponse(headers={"Content-Type": fmt.content_type, "Vary": "Accept-Encoding"})
        if _accepts_gzip(request.headers.get("Accept-Encoding", "")):
            response.headers["Content-Encoding"] = "gzip"
            pieces: Iterable[bytes] = list(gzip_stream(parts, crc_joined(bulk.crc, [tail])))
            response.content_length = sum(map(len, pieces))
        else:
            pieces = (part.text() for part in parts)
            response.content_length = sum(part.size for part in parts)
        await response.prepare(request)
        for piece in pieces:
            view = memoryview(piece)  # the kept body's slices: no copy per scraper
            for start in range(0, len(view), WRITE_CHUNK):
                await response.write(view[start:start + WRITE_CHUNK])
        await response.write_eof()
        return response


def _accepts_gzip(accept_encoding: str) -> bool:
    """Whether `gzip` is acceptable (RFC 9110: named, or `*`, and not with q=0)."""
    for item in accept_encoding.lower().split(","):
        coding, *params = (piece.strip() for piece in item.split(";"))
        if coding in ("gzip", "x-gzip", "*"):
            q = next((param[2:] for param in params if param.startswith("q=")), "1")
            try:
                return float(q) > 0
            except ValueError:
                return False
    return False
