"""Wires receivers, pipeline, store, durable state and exposition into one asyncio process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import grpc
from aiohttp import web
from google.protobuf.internal import api_implementation

from otlp_bridge.config import Settings, TlsSettings
from otlp_bridge.derive import ledger
from otlp_bridge.derive.activity import Activity, ActivitySettings
from otlp_bridge.derive.economics import Budget, Economics
from otlp_bridge.derive.ledger import Ledger
from otlp_bridge.derive.pricing import Price, PriceTable
from otlp_bridge.expose import api
from otlp_bridge.expose.derived import derived_families
from otlp_bridge.families import API_REQUESTS, CLAUDE_CODE_COUNTERS, COST, DERIVED_GAUGES, OWN_FAMILIES, TOKENS
from otlp_bridge.logs import digest_every
from otlp_bridge.pipeline import Pipeline
from otlp_bridge.push.remote import RemoteWriter, remote_families
from otlp_bridge.readiness import Readiness
from otlp_bridge.receive import grpc as grpc_receiver
from otlp_bridge.receive import http as http_receiver
from otlp_bridge.receive.admission import Admission
from otlp_bridge.receive.auth import TokenAuth
from otlp_bridge.self_metrics import SelfMetrics
from otlp_bridge.series import Kind
from otlp_bridge.startup import listen_failure, tls_failure
from otlp_bridge.store.accumulator import Limits, Store, Uptime
from otlp_bridge.store.history import History
from otlp_bridge.store.persist import SqliteState
from otlp_bridge.transcripts import endpoint as transcripts_endpoint
from otlp_bridge.translate.metrics import LabelPolicy
from otlp_bridge.translate.naming import FamilyNames

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ports:
    grpc: int
    http: int
    metrics: int


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _server_ssl_context(tls: TlsSettings) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    if tls.client_ca_file is not None:
        context.load_verify_locations(str(tls.client_ca_file))
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _grpc_credentials(tls: TlsSettings) -> grpc.ServerCredentials | None:
    if not tls.enabled:
        return None
    assert tls.cert_file is not None
    assert tls.key_file is not None
    ca = tls.client_ca_file.read_bytes() if tls.client_ca_file else None
    return grpc.ssl_server_credentials([(tls.key_file.read_bytes(), tls.cert_file.read_bytes())],
                                       root_certificates=ca, require_client_auth=ca is not None)


async def _start_site(app: web.Application, host: str, port: int,
                      ssl_context: ssl.SSLContext | None, grace: float, *, setting: str) -> tuple[web.AppRunner, int]:
    # aiohttp would inflate gzip bodies itself, without a size limit; decode.gunzip does it bounded.
    runner = web.AppRunner(app, access_log=None, handle_signals=False, auto_decompress=False,
                           shutdown_timeout=grace)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise listen_failure(setting, host, port, exc) from None
    return runner, runner.addresses[0][1]


class Bridge:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        """`clock` is the wall clock for periods and "now", `monotonic` the running time input state
        ages by (tests move them, together or apart)."""
        self.settings = settings
        state_settings = settings.state
        self.state = SqliteState(state_settings.dir, synchronous=state_settings.synchronous.upper()) \
            if state_settings.persist else None
        limits = Limits(
            max_series=settings.limits.max_series,
            max_families=settings.limits.max_families,
            series_ttl=state_settings.series_ttl.total_seconds(),
            input_ttl=state_settings.input_ttl.total_seconds(),
            max_inputs_in_memory=state_settings.max_inputs_in_memory,
        )
        # API requests too: plan windows count them (derive/blocks.py)
        history = History({COST, TOKENS, API_REQUESTS.name, ledger.COST.name, ledger.TOKENS.name},
                          ZoneInfo(settings.timezone),
                          retention_hours=int(state_settings.history_retention.total_seconds() // 3600),
                          max_buckets=state_settings.max_history_buckets)
        # Every family the bridge exposes itself holds its names first: no client family can clash.
        # Claude Code's own counters too: a histogram under one's base name would lock it out.
        names = FamilyNames([(m.name, m.kind) for m in OWN_FAMILIES]
                            + [(name, Kind.GAUGE) for name in DERIVED_GAUGES]
                            + [(name, Kind.COUNTER) for name in CLAUDE_CODE_COUNTERS])
        self.store = Store(limits, backing=self.state, clock=clock, history=history,
                           uptime=Uptime(monotonic), names=names)
        self.stats = SelfMetrics()
        self.readiness = Readiness()
        events = settings.events
        self.activity = Activity(self.store, ActivitySettings(
            events.session_idle.total_seconds(), events.active_window.total_seconds(), events.max_sessions,
            events.classify_prompts))
        prices = PriceTable({model: Price(**p.model_dump()) for model, p in settings.pricing.items()})
        self.economics = Economics(
            self.store,
            prices,
            [Budget(b.name, b.period, b.limit_usd, tuple(sorted(b.match.items()))) for b in settings.budgets],
            timezone=settings.timezone, subscription_usd_per_month=settings.economics.subscription_usd_per_month,
            burn_window_seconds=settings.economics.burn_window.total_seconds(), clock=clock,
            budget_family=ledger.COST.name)
        policy = LabelPolicy(frozenset(settings.labels.drop), settings.limits.max_label_value_length)
        self.pipeline = Pipeline(self.store, policy, self.stats, self.state,
                                 steps=[self.activity.derive, Ledger(prices).derive])
        self.admission = Admission(settings.limits.max_inflight_requests, settings.limits.max_inflight_bytes)
        self.auth = TokenAuth(settings.auth.tokens)
        self.readiness.checks += [self._state_problem, self._overloaded]
        self.remote_writers = [RemoteWriter(remote, self.store, lambda: derived_families(self.economics, self.activity),
                                            clock) for remote in settings.remote_write]
        self._runners: list[web.AppRunner] = []
        self._grpc: grpc.aio.Server | None = None
        self._maintenance: asyncio.Task[None] | None = None
        self.ports: Ports | None = None

    async def start(self) -> Ports:
        """Open state, bind every listener, or none: a failure undoes what had started and re-raises."""
        if api_implementation.Type() != "upb":
            log.warning("protobuf is using its %r backend, not upb: decoding will be many times slower",
                        api_implementation.Type())
        try:
            return await self._start()
        except BaseException:
            await self.stop(0)
            raise

    async def _start(self) -> Ports:
        settings, server = self.settings, self.settings.server
        if self.state is not None:
            self.state.open()  # raises StateError on a corrupt file: never start from zero silently
            loaded = self.state.load_into(self.store, series_ttl=self.store.limits.series_ttl,
                                          now=self.store.clock())
            log.info("state %s: %d series restored", self.state.path, loaded)
        else:
            log.warning("state.persist is off: totals live in memory only and are lost on restart")
        tls = settings.tls
        try:
            ssl_context = _server_ssl_context(tls) if tls.enabled else None
        except OSError as exc:  # ssl.SSLError is one
            raise tls_failure(tls, exc) from None
        try:
            self._grpc, grpc_port = grpc_receiver.build_server(
            self.pipeline, limits=grpc_receiver.GrpcLimits.from_settings(settings.limits), auth=self.auth,
            admission=self.admission, credentials=_grpc_credentials(tls),
            address=_address(server.host, server.grpc_port))
        except RuntimeError as exc:  # grpcio: "Failed to bind to address"
            raise listen_failure("server.grpc_port", server.host, server.grpc_port, exc) from None
        await self._grpc.start()
        handler = http_receiver.OtlpHttpHandler(
            self.pipeline, limits=http_receiver.BodyLimits.from_settings(settings.limits), auth=self.auth,
            admission=self.admission)
        grace = server.shutdown_grace_seconds
        try:
            http_runner, http_port = await http_receiver.start(
                handler, host=server.host, port=server.http_port, ssl_context=ssl_context, grace=grace,
                limits=settings.limits, stats=self.stats, grpc_hint=_address(server.host, grpc_port))
        except OSError as exc:
            raise listen_failure("server.http_port", server.host, server.http_port, exc) from None
        self._runners.append(http_runner)
        views = api.Views(self.store, self.stats, self.readiness, self.economics, self.activity, settings.insights,
                          lambda: remote_families(self.remote_writers))
        metrics_app = api.build_app(views, settings.auth.metrics)
        # `otlp-bridge import --to`: transcripts into this bridge's period history (transcripts/endpoint.py)
        metrics_app.router.add_post(transcripts_endpoint.PATH, transcripts_endpoint.import_route(
            self.pipeline, self.economics.prices, self.state, auth=settings.auth.metrics,
            clock=self.store.clock))
        metrics_runner, metrics_port = await _start_site(
            metrics_app, server.host, server.metrics_port, ssl_context if tls.metrics_port else None, grace,
            setting="server.metrics_port")
        self._runners.append(metrics_runner)
        self.ports = Ports(grpc_port, http_port, metrics_port)
        scheme = "https" if tls.enabled else "http"
        log.info("OTLP/gRPC listening on %s%s", _address(server.host, grpc_port), " (TLS)" if tls.enabled else "")
        log.info("OTLP/HTTP listening on %s://%s/v1/{metrics,logs,traces}", scheme, _address(server.host, http_port))
        log.info("Prometheus metrics on %s://%s/metrics", "https" if tls.metrics_port and tls.enabled else "http",
                 _address(server.host, metrics_port))
        self._maintenance = asyncio.create_task(self._maintain())
        for writer in self.remote_writers:
            writer.start()
        self.readiness.ready = True
        return self.ports

    def _state_problem(self) -> str | None:
        guard = self.state.guard if self.state is not None else None
        return guard.problem if guard is not None else None

    def _overloaded(self) -> str | None:
        admission = self.admission
        if not admission.saturated:
            return None
        return f"overloaded: {admission.requests} requests and {admission.bytes} bytes in flight"

    async def _maintain(self) -> None:
        interval = self.settings.state.maintenance_interval.total_seconds()
        retention = self.settings.state.input_retention.total_seconds()
        while True:
            await asyncio.sleep(interval)
            try:
                self.pipeline.apply(self.activity.expire(self.store.clock()))
                if self.state is not None:
                    await self.state.maintain(self.store, input_retention=retention,
                                              max_inputs=self.settings.state.max_inputs_on_disk)
                else:
                    self.store.expire()
            except Exception:
                log.exception("state maintenance failed; retrying next interval")

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting, let in-flight exports finish (each is durable before it is answered), close."""
        grace = self.settings.server.shutdown_grace_seconds if grace is None else grace
        self.readiness.ready = False
        self.readiness.reason = "shutting down"
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
        if self._grpc is not None:
            await self._grpc.stop(grace)
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        for writer in self.remote_writers:  # a last push of the final totals, while the store is open
            await writer.stop()
        if self.state is not None:
            await self.state.flush(self.store)  # acknowledged exports are durable already; this is the rest
            self.state.close()


async def serve(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM, then drain and stop."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # before start: a SIGTERM right after it must stop cleanly
        loop.add_signal_handler(sig, stopping.set)
    bridge = Bridge(settings)
    await bridge.start()
    async with digest_every(settings.log_digest_interval.total_seconds(), bridge.stats, bridge.store):
        await stopping.wait()
    log.info("shutting down")
    await bridge.stop()
    log.info("stopped")
