"""OTLP AnyValue and attribute lists to plain Python and label strings."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Any

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
