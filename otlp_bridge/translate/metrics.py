"""OTLP metric data points to observations of Prometheus series.

Each observation carries two identities: the *input* series (metric, resource
and every point attribute — what temporality and dedupe are tracked by) and the
*output* series (family name and the labels that survive the drop list — what
increases are added into). Knows nothing of sockets or storage.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import pairwise
from types import MappingProxyType

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
from otlp_bridge.translate.attributes import CACHED_BYTES, Recent, attributes_view, label_map, string_map
from otlp_bridge.translate.naming import MAX_HELP, help_text, label_name, metric_name

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
        """Labels of the output series for sorted attribute pairs (memoised: few distinct sets recur;
        the dropped keys are left out before, so sets that differ only there, a session id, are one)."""
        drop = self.drop
        return _output_labels(self, tuple([pair for pair in attributes if pair[0] not in drop]), identity)


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


@dataclass(frozen=True, slots=True)
class ResourceView:
    """What a resource, sent under a token's `stamped` labels, means to translation."""

    serialized: bytes  # the resource's deterministic bytes (what it is remembered by)
    attributes: Mapping[str, str]  # label-formatted values
    # job/instance, with the stamped labels winning: a label appears once, and a client may not
    # override what its token says
    identity: Labels
    key: tuple[object, ...]  # sorted attributes, then the stamped labels: part of every input series' identity
    key_repr: str  # repr(key): the middle of what every input key of this resource hashes
    described: Labels  # the attributes that say more than who the resource is (target_info's)
    target_key: bytes  # target_info's input key


_RESOURCES: Recent[tuple[bytes, Labels], ResourceView] = Recent(1024)


def resource_view(resource: Resource, stamped: Labels) -> ResourceView:
    """The resource's `ResourceView`, worked out once per distinct resource (every export of a process
    sends the same one)."""
    serialized = resource.SerializeToString(deterministic=True)
    view = _RESOURCES.get((serialized, stamped))
    if view is None:
        view = _resource_view(serialized, resource, stamped)
        if len(serialized) <= CACHED_BYTES:
            _RESOURCES.add((serialized, stamped), view)
    return view


def _resource_view(serialized: bytes, resource: Resource, stamped: Labels) -> ResourceView:
    attributes = string_map(resource.attributes)
    identity: dict[str, str] = {}
    service = attributes.get("service.name", "")
    namespace = attributes.get("service.namespace", "")
    if job := f"{namespace}/{service}" if namespace and service else service:
        identity["job"] = job
    if instance := attributes.get("service.instance.id", ""):
        identity["instance"] = instance
    identity.update(stamped)
    key = (*sorted(attributes.items()), *stamped)
    return ResourceView(
        serialized, MappingProxyType(attributes), tuple(sorted(identity.items())), key, repr(key),
        tuple(sorted((k, v) for k, v in attributes.items() if k not in _IDENTITY_ATTRIBUTES)),
        input_key(families.TARGET_INFO.name, key),
    )


def translate_metrics(
    request: ExportMetricsServiceRequest, policy: LabelPolicy, stamped: Labels = (),
) -> Translation:
    """Every data point of an export request as observations; unusable points as rejections.

    `stamped` labels (a token's identity) override anything the client sends and are part of
    every input series' identity, so two devices never share one."""
    out = Translation()
    identities = _identities(policy)
    for resource_metrics in request.resource_metrics:
        resource = resource_view(resource_metrics.resource, stamped)
        # As the Collector does: target_info only for a resource that says more than who it is.
        info_labels = policy.output_labels(resource.described, resource.identity)
        if resource.described and info_labels:
            out.targets.append(Observation(
                families.TARGET_INFO, resource.target_key, info_labels, Temporality.LAST_VALUE, 0, 0, 1.0,
            ))
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                _translate_metric(metric, resource, policy, identities, out)
    return out


def _translate_metric(
    metric: Metric, resource: ResourceView, policy: LabelPolicy, identities: Recent[_IdentityKey, _PointIdentity],
    out: Translation,
) -> None:
    kind = metric.WhichOneof("data")
    shape = _SHAPES.get(kind or "")
    if shape is None or kind is None:
        out.reject(f"unsupported_{kind or 'empty'}", _point_count(metric, kind))
        return
    temporality, value_of, view = shape
    data = getattr(metric, kind)
    if temporality is None:
        temporality = _temporality(data)
    family, refusal = _family(kind, metric.name, metric.unit, metric.description, kind == "sum" and data.is_monotonic)
    if refusal or temporality is None:
        out.reject(refusal or "unspecified_temporality", len(data.data_points))
        return
    # A monotonic cumulative stream is (series, start time), as the Collector keys it: processes that
    # share every attribute (session id off) but started apart must not look like each other's resets.
    by_start = temporality is Temporality.CUMULATIVE and family.monotonic
    name, resource_repr = family.name, resource.key_repr
    for point in data.data_points:
        value: object = None
        if not point.flags & DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK:
            value = value_of(point)
            if value is None:
                out.reject("invalid_value")
                continue
        elif temporality is not Temporality.LAST_VALUE:
            continue  # a staleness marker on a sum or histogram: nothing to add, nothing wrong
        attributes = _attribute_bytes(point)
        cache_key = (name, by_start, resource_repr, attributes)
        ident = identities.get(cache_key)
        if ident is None:
            ident = _PointIdentity.of(view.FromString(attributes).attributes, name, resource, policy,
                                      by_start=by_start)
            if len(attributes) <= CACHED_BYTES:
                identities.add(cache_key, ident)
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
    def of(cls, pairs: Iterable[bytes], name: str, resource: ResourceView, policy: LabelPolicy, *,
           by_start: bool) -> _PointIdentity:
        """From the point's attributes, each a serialized KeyValue (a session's recur on all its points)."""
        values = label_map(pairs)
        attributes = tuple(sorted(values.items()))
        parts = f"({name!r}, {resource.key_repr}, {attributes!r}, None)"  # repr((name, resource.key, attributes, None))
        return cls(policy.output_labels(attributes, resource.identity), input_digest(parts),
                   parts[:-len("None)")] if by_start else None,
                   max(map(len, values.values()), default=0) > policy.max_value_length)

    def key_with_start(self, start: int) -> bytes:
        """`input_key(name, resource_key, attributes, start)`, from the prefix of its repr."""
        return input_digest(f"{self.key_prefix}{start!r})")


# (family name, keyed by start time, the resource's key repr, the point's attribute bytes)
_IdentityKey = tuple[str, bool, str, bytes]
_BY_POLICY: dict[LabelPolicy, Recent[_IdentityKey, _PointIdentity]] = {}


def _identities(policy: LabelPolicy) -> Recent[_IdentityKey, _PointIdentity]:
    """Attribute sets seen lately → their `_PointIdentity`, per label policy."""
    found = _BY_POLICY.get(policy)
    if found is None:
        if len(_BY_POLICY) > 16:  # one policy per bridge; tests make more
            _BY_POLICY.clear()
        found = _BY_POLICY[policy] = Recent(8192)  # ~ 700 sessions' worth of Claude Code points
    return found


def _attribute_bytes(point: Message) -> bytes:
    """The point's serialized form without its leading 64-bit fields (times, count, sum, value): the
    attributes, plus whatever else the point carries. Two points with the same bytes here have the same
    attributes; if the encoder ever put attributes first, every point would just be its own entry."""
    body = point.SerializeToString()
    heads = body[::9]  # where the one-byte tag of each leading 9-byte field would be
    return body[9 * (len(heads) - len(heads.lstrip(_TAGS_64))):]


_TAGS_64 = bytes(tag for tag in range(0x80) if tag & 7 == 1)  # one-byte tags of wire type 64-bit


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


# Per kind of metric: its temporality when the kind fixes it, how a point's value is read, and a view of
# a point's bytes with only its attributes.
_NUMBER_POINT = attributes_view("NumberPointAttributes", 7)  # NumberDataPoint.attributes = 7
_SHAPES: dict[str, tuple[Temporality | None, Callable[[object], object], type[Message]]] = {
    "sum": (None, _number, _NUMBER_POINT), "gauge": (Temporality.LAST_VALUE, _number, _NUMBER_POINT),
    "histogram": (None, _histogram, attributes_view("HistogramPointAttributes", 9)),  # HistogramDataPoint's: 9
}
_FAMILIES: Recent[tuple[str, str, str, str, bool], tuple[FamilyMeta, str | None]] = Recent(1024)


def _family(kind: str, name: str, unit: str, description: str, monotonic: bool) -> tuple[FamilyMeta, str | None]:
    """The family a metric's points go to, and why a client may not write it (None: it may)."""
    description = description[:MAX_HELP + 1]  # all HELP reads of it; the key stays small
    key = (kind, name, unit, description, monotonic)
    found = _FAMILIES.get(key)
    if found is None:
        family = _new_family(kind, name, unit, description, monotonic)
        found = family, "invalid_name" if not family.name else families.refusal(family)
        if len(name) + len(unit) <= CACHED_BYTES:
            _FAMILIES.add(key, found)
    return found


def _new_family(kind: str, name: str, unit: str, description: str, monotonic: bool) -> FamilyMeta:
    # Prometheus lints a family without HELP; the OTLP name is the next best description.
    help_ = help_text(description, f"OTLP metric {name[:200]}")
    if kind == "sum":
        return FamilyMeta(metric_name(name, unit, monotonic_sum=monotonic),
                          Kind.COUNTER if monotonic else Kind.GAUGE, help_, monotonic)
    if kind == "gauge":
        return FamilyMeta(metric_name(name, unit, gauge=True), Kind.GAUGE, help_, False)
    return FamilyMeta(metric_name(name, unit), Kind.HISTOGRAM, help_)
