"""`otlp-bridge check`: one synthetic export to a running bridge, confirmed on /metrics.

Each failure is explained in plain words: nothing listening, a token wanted, the
wrong protocol for the port, or data accepted but not visible where we looked.
"""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

import grpc
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from prometheus_client.parser import text_string_to_metric_families

from otlp_bridge.client_env import Protocol

CHECK_METRIC = "otlp_bridge.check"
CHECK_SERIES = "otlp_bridge_check"
GRPC_PATH = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    message: str


def synthetic_request(value: float, now_ns: int) -> ExportMetricsServiceRequest:
    """A one-gauge export whose value identifies this check run."""
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    resource_metrics.resource.attributes.add(key="service.name", value={"string_value": "otlp-bridge-check"})
    metric = resource_metrics.scope_metrics.add().metrics.add(
        name=CHECK_METRIC, description="Value of the last `otlp-bridge check` run.")
    metric.gauge.data_points.add(time_unix_nano=now_ns, as_double=value)
    return request


def _send_http(endpoint: str, protocol: Protocol, body: ExportMetricsServiceRequest, token: str | None,
               timeout: float) -> None:
    from google.protobuf import json_format  # noqa: PLC0415 - JSON only when asked for

    as_json = protocol == "http/json"
    data = json_format.MessageToJson(body).encode() if as_json else body.SerializeToString()
    headers = {"Content-Type": "application/json" if as_json else "application/x-protobuf"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(endpoint.rstrip("/") + "/v1/metrics", data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout):
        pass


def _send_grpc(endpoint: str, body: ExportMetricsServiceRequest, token: str | None, timeout: float) -> None:
    parsed = urllib.parse.urlparse(endpoint if "://" in endpoint else f"http://{endpoint}")
    target = f"{parsed.hostname}:{parsed.port or 4317}"
    channel = grpc.secure_channel(target, grpc.ssl_channel_credentials()) if parsed.scheme == "https" \
        else grpc.insecure_channel(target)
    with channel:
        metadata = (("authorization", f"Bearer {token}"),) if token else ()
        channel.unary_unary(GRPC_PATH)(body.SerializeToString(), timeout=timeout, metadata=metadata)


def _explain_send_failure(exc: Exception, endpoint: str, protocol: Protocol) -> str:  # noqa: PLR0911 - one answer a cause
    other = "http/protobuf on port 4318" if protocol == "grpc" else "grpc on port 4317"
    wrong_protocol = f"Wrong protocol for this port? Try --protocol {other}."
    needs_token = f"{endpoint} wants a token: pass --token (the one in the bridge's [[auth.tokens]])."
    not_running = f"nothing is listening at {endpoint}: is the bridge running (otlp-bridge serve)?"
    if isinstance(exc, urllib.error.HTTPError):
        return needs_token if exc.code == 401 else \
            f"{endpoint} refused the export: HTTP {exc.code} {exc.read()[:200]!r}. " + (
                "Is this the bridge's OTLP/HTTP port?" if exc.code == 404 else "")
    if isinstance(exc, grpc.RpcError):
        code, details = exc.code(), exc.details() or ""  # type: ignore[attr-defined]
        if code == grpc.StatusCode.UNAUTHENTICATED:
            return needs_token
        if code == grpc.StatusCode.UNAVAILABLE:
            if "connection refused" in details.lower():
                return not_running
            return f"{endpoint} did not speak gRPC ({details}). {wrong_protocol}"
        return f"{endpoint} refused the export: {code.name} {details}"
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, ConnectionRefusedError):
        return not_running
    if isinstance(reason, ConnectionResetError | TimeoutError | http.client.HTTPException):
        return f"{endpoint} did not answer as OTLP/HTTP ({type(reason).__name__}). {wrong_protocol}"
    return f"cannot export to {endpoint}: {reason}"


def _scraped_value(metrics_url: str, timeout: float, token: str | None) -> float | None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(metrics_url, headers=headers), timeout=timeout) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == CHECK_SERIES and sample.labels.get("job") == "otlp-bridge-check":
                return float(sample.value)
    return None


def run_check(endpoint: str, metrics_url: str, protocol: Protocol, *, token: str | None = None,
              metrics_token: str | None = None, wait: float = 5.0) -> CheckResult:
    value = float(time.time_ns() % 1_000_000_007)  # unique enough to tell this run from the last
    body = synthetic_request(value, time.time_ns())
    try:
        if protocol == "grpc":
            _send_grpc(endpoint, body, token, timeout=wait)
        else:
            _send_http(endpoint, protocol, body, token, timeout=wait)
    except (OSError, grpc.RpcError, urllib.error.URLError, http.client.HTTPException) as exc:
        return CheckResult(False, _explain_send_failure(exc, endpoint, protocol))
    deadline = time.monotonic() + wait
    seen: float | None = None
    while time.monotonic() < deadline:
        try:
            seen = _scraped_value(metrics_url, wait, metrics_token)
        except urllib.error.HTTPError as exc:
            hint = " (pass --metrics-token)" if exc.code == 401 else ""
            return CheckResult(False, f"the export was accepted, but {metrics_url} answered {exc.code}{hint}.")
        except OSError as exc:
            return CheckResult(False, f"the export was accepted, but {metrics_url} cannot be read: {exc}")
        if seen == value:
            return CheckResult(True, f"ok: an export over {protocol} to {endpoint} shows on {metrics_url}")
        time.sleep(0.2)
    return CheckResult(False, (f"the export was accepted by {endpoint}, but {metrics_url} does not show it "
                               f"(last seen: {seen}). Is that the same bridge's metrics port?"))
