"""One remote-write receiver: collect every `interval`, queue, send with retries.

Why an in-memory queue is enough: every value pushed is a cumulative total, so the next push that
succeeds carries everything counted while the receiver was away; the exports themselves are
already durable in the bridge's state. The queue only keeps the in-between samples (resolution)
of the last `max_queued_snapshots` pushes, and when it overflows the oldest snapshot's values are
dropped but its counter starts are carried forward, so `increase()` stays exact in the receiver.
A restart of the bridge loses at most the queued resolution, never a total.

Retries: connection errors, 5xx and 429 are retried with capped exponential backoff (Retry-After
honoured); after `max_retries` the request stays queued for the next interval. Any other 4xx
means the receiver will never take that request (bad data, too old a sample): it is dropped and
counted, so one bad request cannot stall every later one.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import ssl
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum

import aiohttp
from prometheus_client.metrics_core import Metric

from otlp_bridge import __version__
from otlp_bridge.config import RemoteWriteSettings
from otlp_bridge.push.collect import Collected, collect
from otlp_bridge.push.wire import HEADERS, Encoder
from otlp_bridge.store.accumulator import Store

log = logging.getLogger(__name__)
_ERROR_BODY_BYTES = 512  # of a refusal, logged to say why


class _Outcome(Enum):
    SENT = "sent"
    DROPPED = "dropped"  # refused for good (4xx)
    LATER = "later"  # still failing after the retries: keep it queued


@dataclass
class _Request:
    body: bytes
    samples: int


@dataclass
class _Pending:
    """One collected push, encoded: its starts go first, so each series' zero precedes its values."""

    starts: deque[_Request]
    points: deque[_Request]

    def next(self) -> deque[_Request] | None:
        return self.starts or self.points or None


@dataclass
class RemoteStats:
    samples_sent: int = 0
    failures: Counter[str] = field(default_factory=Counter)  # failed attempts by reason
    dropped_samples: Counter[str] = field(default_factory=Counter)  # samples given up, by reason
    last_success: float | None = None
    queued: int = 0


def _ssl_context(settings: RemoteWriteSettings) -> ssl.SSLContext | None:
    if not settings.url.startswith("https://"):
        return None
    context = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
    if settings.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if settings.cert_file is not None and settings.key_file is not None:
        context.load_cert_chain(str(settings.cert_file), str(settings.key_file))
    return context


def _headers(settings: RemoteWriteSettings) -> dict[str, str]:
    headers = {**settings.headers, **HEADERS, "User-Agent": f"otlp-bridge/{__version__}"}
    if settings.bearer_token is not None:
        headers["Authorization"] = "Bearer " + settings.bearer_token.get_secret_value()
    elif settings.basic_username is not None and settings.basic_password is not None:
        pair = f"{settings.basic_username}:{settings.basic_password.get_secret_value()}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    return headers


def _retry_after(response: aiohttp.ClientResponse) -> float | None:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None


class RemoteWriter:
    def __init__(self, settings: RemoteWriteSettings, store: Store, derived: Callable[[], Iterable[Metric]],
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.stats = RemoteStats()
        self._store = store
        self._derived = derived
        self._clock = clock
        self._encoder = Encoder(settings.labels)
        self._encoding = threading.Lock()  # a push cancelled at stop may still be encoding in its thread
        self._queue: deque[_Pending] = deque()
        self._since = clock()  # series created before the first push may already be in the receiver
        self._headers = _headers(settings)
        self._ssl = _ssl_context(settings)
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout.total_seconds())
        self._session = aiohttp.ClientSession(timeout=timeout)
        self._task = asyncio.create_task(self._run(), name=f"remote_write {self.settings.remote}")

    async def stop(self) -> None:
        """One last push (bounded by `timeout`), so the receiver ends with the final totals."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._session is None:
            return
        try:
            await asyncio.wait_for(self.push(retries=0), self.settings.timeout.total_seconds())
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            log.warning("remote_write %s: final push failed (%s); the totals go with the next start's push",
                        self.settings.remote, exc)
        await self._session.close()
        self._session = None

    async def _run(self) -> None:
        interval = self.settings.interval.total_seconds()
        while True:
            await asyncio.sleep(interval)
            try:
                await self.push()
            except Exception:
                log.exception("remote_write %s: push failed; retrying next interval", self.settings.remote)

    async def push(self, retries: int | None = None) -> None:
        """Collect now, queue it, and send everything queued, oldest first."""
        now = self._clock()
        collected = await collect(self._store, self._since, now, self._derived())
        self._since = now
        self._enqueue(await asyncio.to_thread(self._encode, collected))
        await self._flush(self.settings.max_retries if retries is None else retries)

    def _encode(self, collected: Collected) -> _Pending:
        with self._encoding:
            return self._encode_unlocked(collected)

    def _encode_unlocked(self, collected: Collected) -> _Pending:
        size = self.settings.max_samples_per_request
        starts = [(name, labels, [(created, 0.0)]) for name, labels, created in collected.starts]
        points = [(name, labels, [(collected.time_ms, value)]) for name, labels, value in collected.points]
        return _Pending(*(deque(_Request(self._encoder.request(chunk), len(chunk))
                                for chunk in (series[i:i + size] for i in range(0, len(series), size)))
                          for series in (starts, points)))

    def _enqueue(self, pending: _Pending) -> None:
        self._queue.append(pending)
        while len(self._queue) > self.settings.max_queued_snapshots:
            oldest = self._queue.popleft()
            self.stats.dropped_samples["queue_full"] += sum(r.samples for r in oldest.points)
            self._queue[0].starts.extendleft(reversed(oldest.starts))
        self.stats.queued = len(self._queue)

    async def _flush(self, retries: int) -> None:
        while self._queue:
            requests = self._queue[0].next()
            if requests is None:
                self._queue.popleft()
                continue
            if await self._send(requests[0], retries) is _Outcome.LATER:
                break
            requests.popleft()
        self.stats.queued = len(self._queue)

    async def _send(self, request: _Request, retries: int) -> _Outcome:
        assert self._session is not None
        backoff = self.settings.min_backoff.total_seconds()
        remote = self.settings.remote
        for attempt in range(retries + 1):
            wait = backoff
            try:
                async with self._session.post(self.settings.url, data=request.body, headers=self._headers,
                                              ssl=self._ssl if self._ssl is not None else True) as response:
                    if response.status < 300:
                        self.stats.samples_sent += request.samples
                        self.stats.last_success = self._clock()
                        return _Outcome.SENT
                    reason = (await response.content.read(_ERROR_BODY_BYTES)).decode(errors="replace").strip()
                    if response.status != 429 and response.status < 500:
                        self.stats.failures["rejected"] += 1
                        self.stats.dropped_samples["rejected"] += request.samples
                        log.error("remote_write %s refused %d samples (HTTP %d): %s; dropped", remote,
                                  request.samples, response.status, reason)
                        return _Outcome.DROPPED
                    self.stats.failures["throttled" if response.status == 429 else "server_error"] += 1
                    wait = max(backoff, _retry_after(response) or 0.0)
                    log.warning("remote_write %s: HTTP %d: %s", remote, response.status, reason)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                self.stats.failures["unreachable"] += 1
                log.warning("remote_write %s unreachable: %s", remote, exc or type(exc).__name__)
            if attempt < retries:
                await asyncio.sleep(min(wait, self.settings.max_backoff.total_seconds()))
                backoff = min(backoff * 2, self.settings.max_backoff.total_seconds())
        return _Outcome.LATER


def remote_families(writers: Iterable[RemoteWriter]) -> Iterator[Metric]:
    """The self-metrics of every remote, for /metrics."""
    writers = list(writers)
    if not writers:
        return
    sent = Metric("otlp_bridge_remote_write_samples", "Samples a remote-write receiver acknowledged.", "counter")
    failed = Metric("otlp_bridge_remote_write_failed_requests",
                    "Remote-write requests that failed, by reason (each retry counts).", "counter")
    dropped = Metric("otlp_bridge_remote_write_dropped_samples",
                     "Samples given up: refused with a 4xx, or the oldest queued push on overflow.", "counter")
    last = Metric("otlp_bridge_remote_write_last_success_timestamp_seconds",
                  "When a remote-write receiver last acknowledged a request.", "gauge")
    queued = Metric("otlp_bridge_remote_write_queued_pushes", "Collected pushes not yet fully sent.", "gauge")
    for writer in writers:
        remote, stats = {"remote": writer.settings.remote}, writer.stats
        sent.add_sample("otlp_bridge_remote_write_samples_total", remote, stats.samples_sent)
        for reason in ("rejected", "server_error", "throttled", "unreachable"):
            failed.add_sample("otlp_bridge_remote_write_failed_requests_total", {**remote, "reason": reason},
                              stats.failures[reason])
        for reason in ("queue_full", "rejected"):
            dropped.add_sample("otlp_bridge_remote_write_dropped_samples_total", {**remote, "reason": reason},
                               stats.dropped_samples[reason])
        if stats.last_success is not None:
            last.add_sample(last.name, remote, stats.last_success)
        queued.add_sample(queued.name, remote, stats.queued)
    yield from (sent, failed, dropped, last, queued)
