"""`otlp-bridge check`: one synthetic export to a running bridge, confirmed on /metrics, then removed.

The export is a gauge `check_otlp_bridge{run="<random>"}` on a resource without
attributes (so no `target_info` is made for it); once seen, the same point is sent again as a
staleness marker (OTLP's "no recorded value" flag), which removes the series from the bridge, its
state file and /metrics. Each failure is explained in plain words: nothing listening, a token missing
or unknown, the wrong protocol for the port, credentials wanted on /metrics, or data accepted but
not visible where we looked.
"""

from __future__ import annotations

import http.client
import json
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

import grpc
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK
from prometheus_client.parser import text_string_to_metric_families

from otlp_bridge.client_env import Protocol

# Not under otlp_bridge_: the bridge refuses client data in its own namespace.
CHECK_METRIC = "check.otlp_bridge"
CHECK_SERIES = "check_otlp_bridge"
RUN_LABEL = "run"
GRPC_PATH = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
SEND_ERRORS = (OSError, grpc.RpcError, urllib.error.URLError, http.client.HTTPException)


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    message: str


def synthetic_request(run: str, now_ns: int, *, stale: bool = False) -> ExportMetricsServiceRequest:
    """The check's one gauge point for `run`; `stale`: its staleness marker, which removes the series."""
    request = ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add(
        name=CHECK_METRIC, description="A live `otlp-bridge check` run (removed when the check ends).")
    point = metric.gauge.data_points.add(time_unix_nano=now_ns)
    point.attributes.add(key=RUN_LABEL, value={"string_value": run})
    if stale:
        point.flags = DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK
    else:
        point.as_double = 1.0
    return request


def _send_http(endpoint: str, protocol: Protocol, body: ExportMetricsServiceRequest, token: str | None,
               timeout: float) -> None:
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


def _send(endpoint: str, protocol: Protocol, body: ExportMetricsServiceRequest, token: str | None,
          timeout: float) -> None:
    if protocol == "grpc":
        _send_grpc(endpoint, body, token, timeout)
    else:
        _send_http(endpoint, protocol, body, token, timeout)


def _status_message(exc: urllib.error.HTTPError) -> str:
    """The `google.rpc.Status` message of an OTLP/HTTP refusal, or the start of whatever body came."""
    body = exc.read()
    try:
        if "json" in (exc.headers.get("Content-Type") or ""):
            return str(json.loads(body).get("message", ""))
        return Status.FromString(body).message or body[:200].decode(errors="replace")
    except (ValueError, AttributeError, DecodeError):
        return body[:200].decode(errors="replace")


def _token_advice(endpoint: str, reason: str, token: str | None) -> str:
    if token is None or "missing" in reason:
        return f"{endpoint} wants a token: pass --token (one of the bridge's [[auth.tokens]])."
    if "unknown" in reason:
        return (f"{endpoint} does not know this token: it matches none of the bridge's [[auth.tokens]] "
                f"(for a sha256 entry, compare with: printf %s \"$TOKEN\" | sha256sum).")
    return f"{endpoint} refused the token: {reason}."


def _explain_send_failure(exc: Exception, endpoint: str, protocol: Protocol,  # noqa: PLR0911 - one answer a cause
                          token: str | None) -> str:
    other = "http/protobuf on port 4318" if protocol == "grpc" else "grpc on port 4317"
    wrong_protocol = f"Wrong protocol for this port? Try --protocol {other}."
    not_running = f"nothing is listening at {endpoint}: is the bridge running (otlp-bridge serve)?"
    if isinstance(exc, urllib.error.HTTPError):
        reason = _status_message(exc)
        if exc.code == 401:
            return _token_advice(endpoint, reason, token)
        hint = " Is this the bridge's OTLP/HTTP port?" if exc.code == 404 else ""
        return f"{endpoint} refused the export: HTTP {exc.code} {reason!r}.{hint}"
    if isinstance(exc, grpc.RpcError):
        code, details = exc.code(), exc.details() or ""
        if code == grpc.StatusCode.UNAUTHENTICATED:
            return _token_advice(endpoint, details, token)
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:  # e.g. an HTTP/1.1 port that sends GOAWAY: the client retries
            return f"{endpoint} did not answer over gRPC in time. {wrong_protocol}"
        if code != grpc.StatusCode.UNAVAILABLE:
            return f"{endpoint} refused the export: {code.name} {details}"
        return not_running if "connection refused" in details.lower() else \
            f"{endpoint} did not speak gRPC ({details}). {wrong_protocol}"
    cause: object = getattr(exc, "reason", exc)  # urllib wraps the socket's error
    if isinstance(cause, ConnectionRefusedError):
        return not_running
    if isinstance(cause, ConnectionResetError | TimeoutError | http.client.HTTPException):
        return f"{endpoint} did not answer as OTLP/HTTP ({type(cause).__name__}). {wrong_protocol}"
    return f"cannot export to {endpoint}: {cause}"


class MetricsUnreadable(Exception):
    """/metrics cannot be read; the message says why and what to pass."""


def _visible(run: str, metrics_url: str, auth: str | None, timeout: float) -> bool:
    """Whether /metrics shows this run's series."""
    headers = {"Authorization": auth} if auth else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(metrics_url, headers=headers), timeout=timeout) as reply:
            text = reply.read().decode()
    except urllib.error.HTTPError as exc:
        if exc.code != 401:
            raise MetricsUnreadable(f"{metrics_url} answered {exc.code}") from None
        what = "refused the credentials given" if auth else "wants credentials"
        raise MetricsUnreadable(f"{metrics_url} {what}: pass --metrics-token TOKEN or --metrics-user USER:PASSWORD "
                                "(the bridge's [auth.metrics])") from None
    except OSError as exc:
        raise MetricsUnreadable(f"{metrics_url} cannot be read: {exc}") from None
    return any(sample.name == CHECK_SERIES and sample.labels.get(RUN_LABEL) == run
               for family in text_string_to_metric_families(text) for sample in family.samples)


def _until(condition: bool, run: str, metrics_url: str, auth: str | None, wait: float) -> bool:
    """Poll /metrics until the run's series is (or is no longer) there; False if `wait` runs out first."""
    deadline = time.monotonic() + wait
    while True:
        if _visible(run, metrics_url, auth, wait) == condition:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


def run_check(endpoint: str, metrics_url: str, protocol: Protocol, *, token: str | None = None,
              metrics_auth: str | None = None, wait: float = 5.0) -> CheckResult:
    """Export, find it on /metrics, remove it again. `metrics_auth` is the metrics port's Authorization value."""
    run = secrets.token_hex(8)
    try:
        _send(endpoint, protocol, synthetic_request(run, time.time_ns()), token, wait)
    except SEND_ERRORS as exc:
        return CheckResult(False, _explain_send_failure(exc, endpoint, protocol, token))
    try:
        seen = _until(True, run, metrics_url, metrics_auth, wait)
    except MetricsUnreadable as exc:
        return CheckResult(False, f"the export was accepted, but {exc}." + _remove(run, endpoint, protocol, token,
                                                                                    wait))
    leftover = _remove(run, endpoint, protocol, token, wait)
    if not seen:
        return CheckResult(False, f"the export was accepted by {endpoint}, but {metrics_url} does not show it. "
                                  f"Is that the same bridge's metrics port?{leftover}")
    if not leftover and not _gone(run, metrics_url, metrics_auth, wait):
        leftover = f" (its series {CHECK_SERIES}{{{RUN_LABEL}=\"{run}\"}} is still on {metrics_url})"
    return CheckResult(True, f"ok: an export over {protocol} to {endpoint} shows on {metrics_url}{leftover}")


def _gone(run: str, metrics_url: str, auth: str | None, wait: float) -> bool:
    """Whether the run's series left /metrics after its staleness marker (unreadable now: not known, say so)."""
    try:
        return _until(False, run, metrics_url, auth, wait)
    except MetricsUnreadable:
        return False


def _remove(run: str, endpoint: str, protocol: Protocol, token: str | None, wait: float) -> str:
    """Send the run's staleness marker; '' when sent, else a note for the user."""
    try:
        _send(endpoint, protocol, synthetic_request(run, time.time_ns(), stale=True), token, wait)
    except SEND_ERRORS as exc:
        return f" (its series {CHECK_SERIES}{{{RUN_LABEL}=\"{run}\"}} could not be removed: {exc})"
    return ""
