"""The remote-write 1.0 wire format: a `prometheus.WriteRequest` (prompb/remote.proto, types.proto)
in snappy's block format.

    WriteRequest { repeated TimeSeries timeseries = 1; }
    TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
    Label        { string name = 1; string value = 2; }
    Sample       { double value = 1; int64 timestamp = 2; }   // timestamp: Unix milliseconds

Encoded by hand rather than through generated classes because a push of 200k series re-sends the
same label sets every interval: each series' encoded labels are remembered, so a push costs one
concatenation per series. tests/test_remote_write.py decodes the output with protobuf's own parser.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

import cramjam

from otlp_bridge.series import Labels

HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}
_LABEL_CACHE_LIMIT = 500_000
_DOUBLE = struct.Struct("<d")
Sample = tuple[int, float]  # (Unix milliseconds, value)


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # int64 on the wire is two's complement
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _sample(timestamp_ms: int, value: float) -> bytes:
    return _field(2, b"\x09" + _DOUBLE.pack(value) + b"\x10" + _varint(timestamp_ms))


class Encoder:
    """Series to snappy-compressed WriteRequest bodies; remembers each label set's encoding."""

    def __init__(self, extra_labels: dict[str, str] | None = None) -> None:
        self._extra = tuple(sorted((extra_labels or {}).items()))
        self._labels: dict[tuple[str, Labels], bytes] = {}

    def labels(self, name: str, labels: Labels) -> bytes:
        key = (name, labels)
        encoded = self._labels.get(key)
        if encoded is None:
            # The receiver wants names sorted; the series' own labels win over the configured extras.
            merged = dict(self._extra)
            merged.update(labels)
            merged["__name__"] = name
            encoded = b"".join(_field(1, _field(1, k.encode()) + _field(2, v.encode()))
                               for k, v in sorted(merged.items()))
            if len(self._labels) >= _LABEL_CACHE_LIMIT:
                self._labels.clear()  # bounded; the next push refills what is live
            self._labels[key] = encoded
        return encoded

    def request(self, series: Iterable[tuple[str, Labels, Iterable[Sample]]]) -> bytes:
        """One WriteRequest, snappy-compressed; each series' samples must be in time order."""
        body = b"".join(
            _field(1, self.labels(name, labels) + b"".join(_sample(t, v) for t, v in samples))
            for name, labels, samples in series)
        return bytes(cramjam.snappy.compress_raw(body))
