"""The metrics port: /metrics, /healthz, /readyz and a small index page."""

from __future__ import annotations

import asyncio
import html

from aiohttp import web

from otlp_bridge import __version__
from otlp_bridge.expose.prometheus import render, snapshot
from otlp_bridge.self_metrics import SelfMetrics
from otlp_bridge.store.accumulator import Store


class Readiness:
    """Ready once every listener is bound; not ready again once shutdown begins."""

    def __init__(self) -> None:
        self.ready = False
        self.reason = "starting"


def build_app(store: Store, stats: SelfMetrics, readiness: Readiness) -> web.Application:
    async def metrics(request: web.Request) -> web.Response:
        snap = snapshot(store, stats)
        body, content_type = await asyncio.to_thread(render, snap, request.headers.get("Accept"))
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        if readiness.ready:
            return web.Response(text="ready\n")
        return web.Response(text=f"not ready: {readiness.reason}\n", status=503)

    async def index(_: web.Request) -> web.Response:
        links = "".join(f'<li><a href="{p}">{p}</a></li>' for p in ("/metrics", "/healthz", "/readyz"))
        page = (f"<!doctype html><title>otlp_bridge</title><h1>otlp_bridge {html.escape(__version__)}</h1>"
                f"<p>{store.series_count} live series.</p><ul>{links}</ul>")
        return web.Response(text=page, content_type="text/html")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/", index)
    return app
