"""OTLP metric data points to observations of Prometheus series.

Each observation carries two identities: the *input* series (metric, resource
and every point attribute — what temporality and dedupe are tracked by) and the
*output* series (family name and the labels that survive the drop list — what
increases are added into). Knows nothing of sockets or storage.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import islice, pairwise

from google.protobuf.message import Message
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AGGREGATION_TEMPORALITY_CUMULATIVE,
    AGGREGATION_TEMPORALITY_DELTA,
    DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK,
    Metric,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from otlp_bridge import families
from otlp_bridge.series import (
    FamilyMeta,
    HistogramValue,
    Kind,
    Labels,
    Observation,
    Temporality,
    input_digest,
    input_key,
    intern_labels,
)
from otlp_bridge.translate.attributes import string_map
from otlp_bridge.translate.naming import help_text, label_name, metric_name

_IDENTITY_ATTRIBUTES = frozenset({"service.name", "service.namespace", "service.instance.id"})


@dataclass(slots=True)
class Translation:
    observations: list[Observation] = field(default_factory=list)
    targets: list[Observation] = field(default_factory=list)  # target_info: derived, not received points
    rejected: dict[str, int] = field(default_factory=dict)
    truncated: int = 0  # points with a label value cut to the length limit

    def reject(self, reason: str, count: int = 1) -> None:
        if count:
            self.rejected[reason] = self.rejected.get(reason, 0) + count


@dataclass(frozen=True, slots=True)
class LabelPolicy:
    """Which attribute keys never become labels (matched before and after sanitising), and how long
    a label value may be: the one rule for every label made from what a client sent."""

    drop: frozenset[str] = frozenset()
    max_value_length: int = 1024

    def output_labels(self, attributes: Labels, identity: Labels) -> Labels:
        """Labels of the output series for sorted attribute pairs (memoised: few distinct sets recur)."""
        return _output_labels(self, attributes, identity)


@lru_cache(maxsize=4096)  # bounded: under a cardinality attack every set is new
def _output_labels(policy: LabelPolicy, attributes: Labels, identity: Labels) -> Labels:
    merged: dict[str, list[str]] = {}
    for key, value in attributes:
        if key in policy.drop:
            continue
        name = label_name(key)
        if not name or name in policy.drop:  # '' is the naming rule's "no valid label for this key"
            continue
        merged.setdefault(name, []).append(value)
    # Identity labels (job, instance) come from the resource and win over point attributes.
    for name, value in identity:
        merged[name] = [value]
    # Two keys that sanitise alike (`a.b`, `a_b`) are joined, as the Collector does.
    cap = policy.max_value_length
    return intern_labels(tuple(sorted((name, ";".join(values)[:cap]) for name, values in merged.items()
                                      if values != [""])))


def resource_identity(resource: Resource) -> tuple[dict[str, str], Labels]:
    """The resource's attributes and its `job`/`instance` labels."""
    attributes = string_map(resource.attributes)
    identity: list[tuple[str, str]] = []
    service = attributes.get("service.name", "")
    namespace = attributes.get("service.namespace", "")
    job = f"{namespace}/{service}" if namespace and service else service
    if job:
        identity.append(("job", job))
    if instance := attributes.get("service.instance.id", ""):
        identity.append(("instance", instance))
    return attributes, tuple(identity)


def translate_metrics(
    request: ExportMetricsServiceRequest, policy: LabelPolicy, stamped: Labels = (),
) -> Translation:
    """Every data point of an export request as observations; unusable points as rejections.

    `stamped` labels (a token's identity) override anything the client sends and are part of
    every input series' identity, so two devices never share one."""
    out = Translation()
    for resource_metrics in request.resource_metrics:
        attributes, identity = resource_identity(resource_metrics.resource)
        identity = tuple(sorted({**dict(identity), **dict(stamped)}.items()))
        resource_key = (*sorted(attributes.items()), *stamped)
        # The identity (job, instance, a token's stamped labels) wins over a resource attribute of the
        # same name: a label must appear once, and a client may not override what its token says.
        # As the Collector does: target_info only for a resource that says more than who it is.
        described = tuple(sorted((k, v) for k, v in attributes.items() if k not in _IDENTITY_ATTRIBUTES))
        info_labels = policy.output_labels(described, identity)
        if described and info_labels:
            out.targets.append(Observation(
                families.TARGET_INFO, input_key(families.TARGET_INFO.name, resource_key), info_labels,
                Temporality.LAST_VALUE, 0, 0, 1.0,
            ))
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                _translate_metric(metric, resource_key, identity, policy, out)
    return out


def _translate_metric(
    metric: Metric, resource_key: tuple[object, ...], identity: Labels, policy: LabelPolicy, out: Translation,
) -> None:
    kind = metric.WhichOneof("data")
    handler = _HANDLERS.get(kind or "")
    if handler is None or kind is None:
        out.reject(f"unsupported_{kind or 'empty'}", _point_count(metric, kind))
        return
    family, temporality, value_of = handler(metric)
    data = getattr(metric, kind)
    if temporality is None:
        temporality = _temporality(data)
    refusal = "invalid_name" if not family.name else families.refusal(family)
    if refusal or temporality is None:
        out.reject(refusal or "unspecified_temporality", len(data.data_points))
        return
    # A monotonic cumulative stream is (series, start time), as the Collector keys it: processes that
    # share every attribute (session id off) but started apart must not look like each other's resets.
    by_start = temporality is Temporality.CUMULATIVE and family.monotonic
    identities = _identities(policy)
    resource_repr = repr(resource_key)
    for point in data.data_points:
        value: object = None
        if not point.flags & DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK:
            value = value_of(point)
            if value is None:
                out.reject("invalid_value")
                continue
        elif temporality is not Temporality.LAST_VALUE:
            continue  # a staleness marker on a sum or histogram: nothing to add, nothing wrong
        cache_key = (family.name, by_start, resource_repr, _attribute_bytes(point))
        ident = identities.get(cache_key)
        if ident is None:
            ident = identities.add(cache_key, _PointIdentity.of(point, family.name, resource_key, identity, policy,
                                                                by_start=by_start))
        if ident.truncated:
            out.truncated += 1
        start = point.start_time_unix_nano
        out.observations.append(Observation(
            family, ident.key_with_start(start) if by_start else ident.key, ident.labels, temporality, start,
            point.time_unix_nano, value,  # type: ignore[arg-type]
        ))


# --- what repeats: a point's attributes ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _PointIdentity:
    """What a point's attribute set (in one family, from one resource) translates to, worked out once."""

    labels: Labels  # of the output series
    key: bytes  # the input series' key, without a start time
    key_prefix: str | None  # what `input_key` hashes, up to the start time (kept only where it is part of the key)
    truncated: bool  # a label value was cut to the length limit

    @classmethod
    def of(cls, point: object, name: str, resource_key: tuple[object, ...], identity: Labels,
           policy: LabelPolicy, *, by_start: bool) -> _PointIdentity:
        attributes = tuple(sorted(string_map(point.attributes).items()))  # type: ignore[attr-defined]
        parts = repr((name, resource_key, attributes, None))
        return cls(policy.output_labels(attributes, identity), input_digest(parts),
                   parts[:-len("None)")] if by_start else None,
                   any(len(v) > policy.max_value_length for _, v in attributes))

    def key_with_start(self, start: int) -> bytes:
        """`input_key(name, resource_key, attributes, start)`, from the prefix of its repr."""
        return input_digest(f"{self.key_prefix}{start!r})")


class _Identities:
    """Attribute sets seen lately → their `_PointIdentity`; bounded (oldest first out), since under a
    cardinality attack every set is new."""

    def __init__(self, capacity: int = 8192) -> None:  # ~ 700 sessions' worth of Claude Code points
        self.capacity = capacity
        self._entries: dict[tuple[str, bool, str, bytes], _PointIdentity] = {}
        self.get = self._entries.get

    def add(self, key: tuple[str, bool, str, bytes], ident: _PointIdentity) -> _PointIdentity:
        entries = self._entries
        if len(entries) >= self.capacity:
            for old in list(islice(entries, self.capacity // 4)):
                del entries[old]
        entries[key] = ident
        return ident


_BY_POLICY: dict[LabelPolicy, _Identities] = {}


def _identities(policy: LabelPolicy) -> _Identities:
    found = _BY_POLICY.get(policy)
    if found is None:
        if len(_BY_POLICY) > 16:  # one policy per bridge; tests make more
            _BY_POLICY.clear()
        found = _BY_POLICY[policy] = _Identities()
    return found


def _attribute_bytes(point: Message) -> bytes:
    """The point's serialized form without its leading 64-bit fields (times, count, sum, value): the
    attributes, plus whatever else the point carries. Two points with the same bytes here have the same
    attributes; if the encoder ever put attributes first, every point would just be its own entry."""
    body = point.SerializeToString()
    i, end = 0, len(body)
    while i < end and body[i] < 0x80 and body[i] & 7 == 1:  # a one-byte tag of wire type 64-bit
        i += 9
    return body[i:]


def _point_count(metric: Metric, kind: str | None) -> int:
    return len(getattr(metric, kind).data_points) if kind else 0


def _temporality(data: object) -> Temporality | None:
    temporality = data.aggregation_temporality  # type: ignore[attr-defined]
    if temporality == AGGREGATION_TEMPORALITY_DELTA:
        return Temporality.DELTA
    if temporality == AGGREGATION_TEMPORALITY_CUMULATIVE:
        return Temporality.CUMULATIVE
    return None


def _number(point: object) -> float | None:
    which = point.WhichOneof("value")  # type: ignore[attr-defined]
    if which == "as_double":
        return point.as_double  # type: ignore[attr-defined]
    if which == "as_int":
        return float(point.as_int)  # type: ignore[attr-defined]
    return None


def _histogram(point: object) -> HistogramValue | None:
    bounds = tuple(point.explicit_bounds)  # type: ignore[attr-defined]
    counts = tuple(point.bucket_counts)  # type: ignore[attr-defined]
    count = point.count  # type: ignore[attr-defined]
    total = point.sum if point.HasField("sum") else 0.0  # type: ignore[attr-defined]
    if counts and len(counts) != len(bounds) + 1:
        return None
    if not counts:  # count and sum only: everything is in the +Inf bucket
        bounds, counts = (), (count,)
    ascending = all(a < b for a, b in pairwise(bounds))
    if sum(counts) != count or not math.isfinite(total) or not ascending:
        return None
    return HistogramValue(bounds, counts, count, total)


def _help(metric: Metric) -> str:
    # Prometheus lints a family without HELP; the OTLP name is the next best description.
    return help_text(metric.description, f"OTLP metric {metric.name[:200]}")


Handler = Callable[[Metric], tuple[FamilyMeta, Temporality | None, Callable[[object], object]]]


def _sum(metric: Metric) -> tuple[FamilyMeta, Temporality | None, Callable[[object], object]]:
    monotonic = metric.sum.is_monotonic
    name = metric_name(metric.name, metric.unit, monotonic_sum=monotonic)
    kind = Kind.COUNTER if monotonic else Kind.GAUGE
    return FamilyMeta(name, kind, _help(metric), monotonic), None, _number


def _gauge(metric: Metric) -> tuple[FamilyMeta, Temporality | None, Callable[[object], object]]:
    name = metric_name(metric.name, metric.unit, gauge=True)
    return FamilyMeta(name, Kind.GAUGE, _help(metric), False), Temporality.LAST_VALUE, _number


def _hist(metric: Metric) -> tuple[FamilyMeta, Temporality | None, Callable[[object], object]]:
    name = metric_name(metric.name, metric.unit)
    return FamilyMeta(name, Kind.HISTOGRAM, _help(metric)), None, _histogram


_HANDLERS: dict[str, Handler] = {"sum": _sum, "gauge": _gauge, "histogram": _hist}
