"""OTLP AnyValue and attribute lists to plain Python and label strings, and the bounded memo the
translators keep of what clients repeat."""

from __future__ import annotations

import base64
import json
from collections.abc import Hashable, Iterable
from itertools import islice
from typing import Any, Generic, TypeVar

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


def plain(value: AnyValue) -> Any:
    """The Python value of an AnyValue (None when unset)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [plain(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: plain(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def label_value(value: AnyValue) -> str:  # noqa: PLR0911 - one return per AnyValue kind
    """An AnyValue as a label value, formatted like the Collector's `AsString`."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "int_value":
        return str(value.int_value)
    if kind == "double_value":
        return _format_double(value.double_value)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    if kind is None:
        return ""
    return json.dumps(plain(value), separators=(",", ":"), default=_json_bytes)


def _format_double(number: float) -> str:
    if number.is_integer() and abs(number) < 1e21:
        return str(int(number))
    return repr(number)


def _json_bytes(value: object) -> str:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(type(value).__name__)


def string_map(attributes: Iterable[KeyValue]) -> dict[str, str]:
    """Attribute keys to label-formatted values; a repeated key keeps its last value."""
    return {kv.key: label_value(kv.value) for kv in attributes}


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Recent(Generic[K, V]):
    """A bounded memo of what was worked out lately: past `capacity` entries the oldest quarter goes.
    The keys come from clients, so under a cardinality attack every one is new: callers also leave
    out keys longer than they would ever recur at (see `CACHED_BYTES`)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: dict[K, V] = {}
        self.get = self._entries.get

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, key: K, value: V) -> V:
        entries = self._entries
        if len(entries) >= self.capacity:
            for old in list(islice(entries, max(self.capacity // 4, 1))):
                del entries[old]
        entries[key] = value
        return value


# What a client repeats (a session's attributes, its resource) is a few hundred bytes; a longer key is
# worked out every time rather than held.
CACHED_BYTES = 512
_SCALARS = frozenset({"string_value", "bool_value", "int_value", "double_value", "bytes_value"})
_PAIRS: Recent[bytes, tuple[str, Any]] = Recent(4096)


def key_value(serialized: bytes) -> tuple[str, Any]:
    """A serialized `KeyValue` as (key, `plain` value). Scalar pairs are remembered by their bytes: a
    session's user, session id, model and terminal recur on every record it sends."""
    pair = _PAIRS.get(serialized)
    if pair is not None:
        return pair
    kv = KeyValue.FromString(serialized)
    value = kv.value
    kind = value.WhichOneof("value")
    if kind not in _SCALARS:
        return kv.key, plain(value)  # a list or dict: built afresh, never shared between records
    pair = (kv.key, getattr(value, kind))
    if len(serialized) <= CACHED_BYTES:
        _PAIRS.add(serialized, pair)
    return pair
