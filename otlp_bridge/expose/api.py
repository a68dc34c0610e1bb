"""The metrics port: /metrics, /summary, /insights, the status page, /healthz and /readyz."""

from __future__ import annotations

import base64
import hmac
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client.metrics_core import Metric

from otlp_bridge.config import InsightSettings, MetricsAuthSettings
from otlp_bridge.derive.activity import Activity
from otlp_bridge.derive.economics import Economics
from otlp_bridge.derive.insights import insights
from otlp_bridge.derive.summary import summary
from otlp_bridge.expose.derived import derived_families
from otlp_bridge.expose.page import render_page
from otlp_bridge.expose.render import choose
from otlp_bridge.expose.safe_json import json_response
from otlp_bridge.expose.scrape import Scrapes
from otlp_bridge.expose.snapshot import self_families
from otlp_bridge.readiness import Readiness
from otlp_bridge.self_metrics import SelfMetrics
from otlp_bridge.store.accumulator import Store

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_PROBES = frozenset({"/healthz", "/readyz"})  # kubelets and load balancers carry no credentials


def _auth_middleware(settings: MetricsAuthSettings) -> Middleware:
    accepted: list[str] = []
    if settings.bearer_token is not None:
        accepted.append("Bearer " + settings.bearer_token.get_secret_value())
    if settings.basic_username is not None and settings.basic_password is not None:
        pair = f"{settings.basic_username}:{settings.basic_password.get_secret_value()}"
        accepted.append("Basic " + base64.b64encode(pair.encode()).decode())

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in _PROBES:
            return await handler(request)
        given = request.headers.get("Authorization", "").encode()
        if not any(hmac.compare_digest(given, option.encode()) for option in accepted):
            schemes = ", ".join(option.split(" ", 1)[0] + ' realm="otlp-bridge"' for option in accepted)
            return web.Response(status=401, text="unauthorized\n", headers={"WWW-Authenticate": schemes})
        return await handler(request)

    return check


@dataclass
class Views:
    """What the metrics port serves from."""

    store: Store
    stats: SelfMetrics
    readiness: Readiness
    economics: Economics
    activity: Activity
    insight_settings: InsightSettings
    more_families: Callable[[], Iterable[Metric]] = lambda: ()  # e.g. remote_write's self-metrics


class _Memo:
    """The derived families (queries over the whole history: ~0.1 s at a million buckets) once per store
    version and second, so scrapes arriving together share one computation."""

    def __init__(self, compute: Callable[[], list[Metric]]) -> None:
        self._compute = compute
        self._key: object = None
        self._value: list[Metric] = []

    def __call__(self, key: object) -> list[Metric]:
        if key != self._key:
            self._value, self._key = self._compute(), key
        return self._value


def build_app(views: Views, auth: MetricsAuthSettings | None = None) -> web.Application:
    omitted: Counter[tuple[str, str]] = Counter()  # what the answers below left out or replaced, by reason
    derived = _Memo(lambda: list(derived_families(views.economics, views.activity)))
    scrapes = Scrapes(views.store, lambda: [
        *derived((views.store.version, int(views.economics.clock()))), *views.more_families(),
        *self_families(views.store, views.stats, omitted)], omitted)

    async def metrics(request: web.Request) -> web.StreamResponse:
        return await scrapes.respond(request, choose(request.headers.get("Accept") or ""))

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        if views.readiness.ready:
            return web.Response(text="ready\n")
        return web.Response(text=f"not ready: {views.readiness.reason}\n", status=503)

    async def summary_json(_: web.Request) -> web.Response:
        return json_response(summary(views.store, views.economics, views.activity), omitted, "/summary")

    async def insights_json(_: web.Request) -> web.Response:
        return json_response({"insights": insights(views.store, views.economics, views.insight_settings)},
                             omitted, "/insights")

    async def page(_: web.Request) -> web.Response:
        document = render_page(summary(views.store, views.economics, views.activity),
                               insights(views.store, views.economics, views.insight_settings))
        return web.Response(text=document, content_type="text/html")

    protected = auth is not None and (auth.bearer_token is not None or auth.basic_username is not None)
    app = web.Application(middlewares=[_auth_middleware(auth)] if protected and auth else [])
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/summary", summary_json)
    app.router.add_get("/insights", insights_json)
    app.router.add_get("/", page)
    return app
