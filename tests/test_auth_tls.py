"""Bearer tokens, identity labels, metrics-port auth and TLS, over real sockets with the SDK exporters
configured the way a user configures Claude Code (environment variables)."""

from __future__ import annotations

import base64
import hashlib
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from tests.support import CLAUDE, RunningBridge, Scrape, capture_requests, settings_for_test
from tests.tls_certs import Certs, make_certs

T10 = CLAUDE / "t10_fail_reject_details"
T7_METRICS = (CLAUDE / "t7_write_edit_acceptEdits" / "0014_http_metrics.pb").read_bytes()
TOKENS = [
    {"token": "tok123", "labels": {"device": "laptop-7", "team": "platform"}},
    {"sha256": hashlib.sha256(b"ci-secret").hexdigest(), "labels": {"device": "ci"}},
]


@pytest.fixture
def secured(tmp_path: Path):
    running = RunningBridge(settings_for_test(tmp_path, auth={
        "tokens": TOKENS, "metrics": {"bearer_token": "scrape", "basic_username": "prom", "basic_password": "pw"},
    }))
    yield running
    running.stop()


def _scrape_with(bridge: RunningBridge, authorization: str | None) -> int:
    headers = {"Authorization": authorization} if authorization else {}
    request = urllib.request.Request(bridge.metrics_url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _authorized_scrape(bridge: RunningBridge) -> Scrape:
    request = urllib.request.Request(bridge.metrics_url, headers={"Authorization": "Bearer scrape"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return Scrape(response.read().decode(), response.headers["Content-Type"])


def test_claude_code_percent_encoded_header_is_accepted_and_stamps_identity(secured: RunningBridge) -> None:
    for req in capture_requests(T10):  # recorded with Authorization: Bearer%20tok123, as sent
        headers = {k: v for k, v in req.meta["headers"].items() if k in ("Content-Type", "Authorization")}
        assert secured.post(req.http_path, req.body, headers)[0] == 200
    (labels,) = _authorized_scrape(secured).series("claude_code_session_count_total")
    assert labels["device"] == "laptop-7"
    assert labels["team"] == "platform"
    assert labels["team_id"] == "platform"  # the client's own attribute, kept beside it


def test_client_cannot_override_stamped_labels(secured: RunningBridge) -> None:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (  # noqa: PLC0415
        ExportMetricsServiceRequest,
    )

    request = ExportMetricsServiceRequest.FromString(T7_METRICS)
    for metric in request.resource_metrics[0].scope_metrics[0].metrics:
        for point in metric.sum.data_points:
            point.attributes.add(key="device", value={"string_value": "spoofed"})
    request.resource_metrics[0].resource.attributes.add(key="device", value={"string_value": "spoofed"})
    status, _, _ = secured.post("/v1/metrics", request.SerializeToString(),
                                {"Content-Type": "application/x-protobuf", "Authorization": "Bearer ci-secret"})
    assert status == 200
    scrape = _authorized_scrape(secured)
    assert {s["device"] for s in scrape.series("claude_code_token_usage_tokens_total")} == {"ci"}


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic dG9rMTIz", "Bearer"])
def test_missing_or_wrong_token_is_401_and_unauthenticated(secured: RunningBridge, authorization: str | None) -> None:
    headers = {"Content-Type": "application/x-protobuf"}
    if authorization:
        headers["Authorization"] = authorization
    status, _, response_headers = secured.post("/v1/metrics", T7_METRICS, headers)
    assert status == 401
    assert response_headers["WWW-Authenticate"].startswith("Bearer")
    metadata = (("authorization", authorization),) if authorization else ()
    with pytest.raises(grpc.RpcError) as info:
        secured.grpc_export("metrics", T7_METRICS, metadata=metadata)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    scrape = _authorized_scrape(secured)
    assert scrape.total("otlp_bridge_requests_total", outcome="unauthenticated") == 2
    assert scrape.total("claude_code_token_usage_tokens_total") == 0


def _export_once(exporter: MetricExporter) -> None:
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(resource=Resource.create({"service.name": "sdk"}), metric_readers=[reader])
    provider.get_meter("t").create_counter("auth.test", unit="1").add(5)
    assert provider.force_flush(10_000)
    provider.shutdown()


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_sdk_exporter_with_headers_env_var(secured: RunningBridge, transport: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20tok123")
    if transport == "grpc":
        exporter: MetricExporter = GrpcMetricExporter(endpoint=f"127.0.0.1:{secured.ports.grpc}", insecure=True)
    else:
        exporter = HttpMetricExporter(endpoint=f"{secured.http_base}/v1/metrics")
    _export_once(exporter)
    scrape = _authorized_scrape(secured)
    assert scrape.total("auth_test_total", device="laptop-7", team="platform") == 5


def test_metrics_port_auth_bearer_and_basic_but_probes_open(secured: RunningBridge) -> None:
    assert _scrape_with(secured, None) == 401
    assert _scrape_with(secured, "Bearer nope") == 401
    assert _scrape_with(secured, "Bearer scrape") == 200
    assert _scrape_with(secured, "Basic " + base64.b64encode(b"prom:pw").decode()) == 200
    assert _scrape_with(secured, "Basic " + base64.b64encode(b"prom:no").decode()) == 401
    for probe in ("/healthz", "/readyz"):
        with urllib.request.urlopen(f"http://127.0.0.1:{secured.ports.metrics}{probe}", timeout=5) as response:
            assert response.status == 200


def test_secrets_never_in_logs_or_settings_repr(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = settings_for_test(tmp_path, auth={"tokens": TOKENS, "metrics": {"bearer_token": "scrape"}})
    assert "tok123" not in repr(settings)
    assert "scrape" not in repr(settings.auth.metrics)
    running = RunningBridge(settings)
    running.post("/v1/metrics", T7_METRICS, {"Content-Type": "application/x-protobuf",
                                             "Authorization": "Bearer tok123-wrong"})
    running.stop()
    assert "tok123" not in caplog.text


# --- TLS -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


def _trust_only(ca: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the SDK exporters at our CA the way a user does. requests lets REQUESTS_CA_BUNDLE /
    CURL_CA_BUNDLE (set on some machines) override the exporter's session-level CA, so clear them."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(ca))


def _tls_bridge(tmp_path: Path, certs: Certs, mtls: bool) -> RunningBridge:
    tls = {"cert_file": str(certs.server_cert), "key_file": str(certs.server_key), "metrics_port": True}
    if mtls:
        tls["client_ca_file"] = str(certs.ca)
    return RunningBridge(settings_for_test(tmp_path, tls=tls))


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_tls_with_sdk_exporters_using_certificate_env(tmp_path: Path, certs: Certs, transport: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    bridge = _tls_bridge(tmp_path, certs, mtls=False)
    try:
        _trust_only(certs.ca, monkeypatch)
        if transport == "grpc":
            exporter: MetricExporter = GrpcMetricExporter(endpoint=f"https://localhost:{bridge.ports.grpc}")
        else:
            exporter = HttpMetricExporter(endpoint=f"https://localhost:{bridge.ports.http}/v1/metrics")
        _export_once(exporter)
        context = ssl.create_default_context(cafile=str(certs.ca))
        with urllib.request.urlopen(f"https://localhost:{bridge.ports.metrics}/metrics", context=context,
                                    timeout=5) as response:
            assert b"auth_test_total" in response.read()
        with pytest.raises((urllib.error.URLError, ConnectionError)):  # plain HTTP to the TLS port gets nowhere
            urllib.request.urlopen(f"http://127.0.0.1:{bridge.ports.http}/v1/metrics", data=b"x", timeout=5)
    finally:
        bridge.stop()


def test_mtls_requires_a_client_certificate(tmp_path: Path, certs: Certs, monkeypatch: pytest.MonkeyPatch) -> None:
    bridge = _tls_bridge(tmp_path, certs, mtls=True)
    try:
        _trust_only(certs.ca, monkeypatch)
        context = ssl.create_default_context(cafile=str(certs.ca))
        request = urllib.request.Request(f"https://localhost:{bridge.ports.http}/v1/metrics", data=T7_METRICS,
                                         headers={"Content-Type": "application/x-protobuf"})
        with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
            urllib.request.urlopen(request, context=context, timeout=5)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", str(certs.client_cert))
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_CLIENT_KEY", str(certs.client_key))
        _export_once(GrpcMetricExporter(endpoint=f"https://localhost:{bridge.ports.grpc}"))
        _export_once(HttpMetricExporter(endpoint=f"https://localhost:{bridge.ports.http}/v1/metrics"))
        context.load_cert_chain(str(certs.client_cert), str(certs.client_key))
        with urllib.request.urlopen(f"https://localhost:{bridge.ports.metrics}/metrics", context=context,
                                    timeout=5) as response:
            scrape = Scrape(response.read().decode(), "")
        assert scrape.total("auth_test_total", job="sdk") == 10  # one export per transport
    finally:
        bridge.stop()


def test_target_info_carries_the_stamped_identity_once(secured: RunningBridge) -> None:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (  # noqa: PLC0415
        ExportMetricsServiceRequest,
    )

    request = ExportMetricsServiceRequest.FromString(T7_METRICS)
    request.resource_metrics[0].resource.attributes.add(key="device", value={"string_value": "spoofed"})
    status, _, _ = secured.post("/v1/metrics", request.SerializeToString(),
                                {"Content-Type": "application/x-protobuf", "Authorization": "Bearer ci-secret"})
    assert status == 200
    (info,) = _authorized_scrape(secured).series("target_info")  # parsing fails on a repeated label
    assert info["device"] == "ci"
