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


_ONE_BYTE = [bytes([i]) for i in range(0x80)]


def _varint(value: int) -> bytes:
    if 0 <= value < 0x80:
        return _ONE_BYTE[value]
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


class _Samples:
    """Encoded Sample fields; the timestamp's bytes are shared by every series of one push."""

    def __init__(self) -> None:
        self._stamps: dict[int, tuple[bytes, bytes]] = {}

    def encode(self, samples: Iterable[Sample]) -> bytes:
        out = []
        for timestamp, value in samples:
            stamp = self._stamps.get(timestamp)
            if stamp is None:
                tail = b"\x10" + _varint(timestamp)
                stamp = self._stamps[timestamp] = (b"\x12" + _varint(9 + len(tail)) + b"\x09", tail)
                if len(self._stamps) > 64:  # a push uses one or a few; keep the newest
                    del self._stamps[next(iter(self._stamps))]
            out.append(stamp[0] + _DOUBLE.pack(value) + stamp[1])
        return b"".join(out)


class Encoder:
    """Series to snappy-compressed WriteRequest bodies; remembers each label set's encoding."""

    def __init__(self, extra_labels: dict[str, str] | None = None) -> None:
        self._extra = tuple(sorted((extra_labels or {}).items()))
        self._labels: dict[tuple[str, Labels], bytes] = {}
        self._pairs: dict[tuple[str, str], bytes] = {}
        self._samples = _Samples()

    def _pair(self, name: str, value: str) -> bytes:
        encoded = self._pairs.get((name, value))
        if encoded is None:
            if len(self._pairs) >= _LABEL_CACHE_LIMIT:
                self._pairs.clear()
            encoded = self._pairs[name, value] = _field(1, _field(1, name.encode()) + _field(2, value.encode()))
        return encoded

    def labels(self, name: str, labels: Labels) -> bytes:
        key = (name, labels)
        encoded = self._labels.get(key)
        if encoded is None:
            # The receiver wants names sorted; the series' own labels win over the configured extras.
            merged = dict(self._extra)
            merged.update(labels)
            merged["__name__"] = name
            encoded = b"".join(self._pair(k, v) for k, v in sorted(merged.items()))
            if len(self._labels) >= _LABEL_CACHE_LIMIT:
                self._labels.clear()  # bounded; the next push refills what is live
            self._labels[key] = encoded
        return encoded

    def request(self, series: Iterable[tuple[str, Labels, Iterable[Sample]]]) -> bytes:
        """One WriteRequest, snappy-compressed; each series' samples must be in time order."""
        parts = []
        for name, labels, samples in series:
            body = self.labels(name, labels) + self._samples.encode(samples)
            parts.append(b"\x0a" + _varint(len(body)) + body)
        return bytes(cramjam.snappy.compress_raw(b"".join(parts)))
