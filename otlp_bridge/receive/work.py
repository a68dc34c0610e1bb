"""The work bounds of a request body (items per request, JSON depth), checked before the
pipeline decodes it; a large body is checked in a worker thread so the event loop (other
exports, /healthz, scrapes) keeps turning while millions of items are counted."""

from __future__ import annotations

import asyncio

from otlp_bridge.decode import Signal, WorkLimits, check_body
from otlp_bridge.pipeline import OFF_LOOP_BYTES


async def check_work(signal: Signal, body: bytes, *, as_json: bool, limits: WorkLimits) -> None:
    """Raise the refusal `decode.check_body` gives, without holding the loop for a large body."""
    if len(body) > OFF_LOOP_BYTES:
        await asyncio.to_thread(check_body, signal, body, as_json=as_json, limits=limits)
    else:
        check_body(signal, body, as_json=as_json, limits=limits)
