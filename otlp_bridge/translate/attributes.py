"""OTLP AnyValue and attribute lists to plain Python and label strings, and the bounded memo the
translators keep of what clients repeat."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Hashable, Iterable
from itertools import islice
from typing import Any, Generic, TypeVar

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message
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
                entries.pop(old, None)  # a large export is translated in a worker thread: another may evict too
        entries[key] = value
        return value


# What a client repeats (a session's attributes, its resource) is a few hundred bytes; a longer key is
# worked out every time rather than held.
CACHED_BYTES = 512
_PLAIN: Recent[bytes, tuple[str, Any]] = Recent(4096)
_LABELS: Recent[bytes, tuple[str, str]] = Recent(4096)


def key_value(serialized: bytes) -> tuple[str, Any]:
    """A serialized `KeyValue` as (key, `plain` value), remembered by its bytes: a session's user,
    session id, model and terminal recur on every record and point it sends."""
    return _PLAIN.get(serialized) or _decode(serialized, plain, _PLAIN)


def label_pair(serialized: bytes) -> tuple[str, str]:
    """A serialized `KeyValue` as (key, `label_value`), as `string_map` has it; remembered likewise."""
    return _LABELS.get(serialized) or _decode(serialized, label_value, _LABELS)


def plain_map(serialized: Iterable[bytes]) -> dict[str, Any]:
    """`{key: plain value}` of serialized KeyValues (a repeated key keeps its last value)."""
    return _mapping(serialized, _PLAIN, key_value)


def label_map(serialized: Iterable[bytes]) -> dict[str, str]:
    """`{key: label value}` of serialized KeyValues, as `string_map` has it."""
    return _mapping(serialized, _LABELS, label_pair)


def _mapping(serialized: Iterable[bytes], memo: Recent[bytes, tuple[str, V]],
             decode: Callable[[bytes], tuple[str, V]]) -> dict[str, V]:
    remembered = memo.get  # looked up inline: a call per pair costs more than the look-up itself
    return dict([remembered(one) or decode(one) for one in serialized])


def _decode(serialized: bytes, convert: Callable[[AnyValue], V], memo: Recent[bytes, tuple[str, V]]) -> tuple[str, V]:
    kv = KeyValue.FromString(serialized)
    pair = (kv.key, convert(kv.value))
    if len(serialized) <= CACHED_BYTES and not isinstance(pair[1], list | dict):  # a list is never shared
        memo.add(serialized, pair)
    return pair


def attributes_view(message: str, number: int) -> type[Message]:
    """A view of an OTLP message's bytes with only its attributes (field `number`), each left as its
    serialized KeyValue (for `key_value`, `label_pair`); the other fields land in unknown fields, never
    decoded."""
    field = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name=f"otlp_bridge/{message}.proto", package="otlp_bridge.views",
                                              syntax="proto3")
    file.message_type.add(name=message).field.add(
        name="attributes", number=number, label=field.LABEL_REPEATED, type=field.TYPE_BYTES)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessages([file], pool=pool)[f"otlp_bridge.views.{message}"]
