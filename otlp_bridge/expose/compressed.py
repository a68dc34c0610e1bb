"""A body kept compressed: each part (a family's header, a run of series) a raw deflate segment of
its own, flushed to a byte boundary so that segments concatenate into one deflate stream; and one gzip
stream (RFC 1952) made of them per scrape — a header, the segments as kept, an end, the CRC-32 of the
whole worked out from the parts' — rather than concatenated gzip members, which some clients (curl
7.88) stop reading after the first.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Part:
    """One part of a body: its text as a raw deflate segment, the text's length and CRC-32."""

    deflated: bytes
    size: int
    crc: int

    @classmethod
    def of(cls, text: str | bytes) -> Part:
        data = text.encode("utf-8", "replace") if isinstance(text, str) else text
        compressor = zlib.compressobj(1, zlib.DEFLATED, -15)  # level 1: fast, and label text repeats
        return cls(compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH), len(data), zlib.crc32(data))

    def text(self) -> bytes:
        return zlib.decompressobj(-15).decompress(self.deflated)


def plain(parts: Iterable[Part]) -> bytes:
    """A body's text (tests, and scrapers without gzip)."""
    return b"".join(part.text() for part in parts)


GZIP_HEADER = bytes((0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 0xFF))  # deflate, no name, no time, OS unknown
GZIP_END = b"\x03\x00"  # an empty final block: the deflate stream ends after the segments


def gzip_stream(parts: Iterable[Part], crc: tuple[int, int]) -> Iterable[bytes]:
    """One gzip stream of `parts`, whose text has the (CRC-32, length) `crc`."""
    yield GZIP_HEADER
    for part in parts:
        yield part.deflated
    yield GZIP_END + gzip_trailer(*crc)


def crc_joined(first: tuple[int, int], parts: Iterable[Part]) -> tuple[int, int]:
    """The (CRC-32, length) of texts one after another, from each one's own: CRC-32 is affine, so
    crc(a + b) = crc(a + zeros(len b)) ^ crc(zeros(len b)) ^ crc(b) (zlib's crc32_combine, by zeros)."""
    crc, size = first
    for part in parts:
        crc = _shifted(crc, part.size) ^ _zeros_crc(part.size) ^ part.crc
        size += part.size
    return crc, size


def gzip_trailer(crc: int, size: int) -> bytes:
    return (crc & 0xFFFFFFFF).to_bytes(4, "little") + (size & 0xFFFFFFFF).to_bytes(4, "little")


_ZEROS = bytes(1 << 20)


def _shifted(crc: int, count: int) -> int:
    """The CRC-32 of what `crc` covers followed by `count` zero bytes."""
    view = memoryview(_ZEROS)
    while count > 0:
        step = min(count, len(_ZEROS))
        crc = zlib.crc32(view[:step], crc)
        count -= step
    return crc


@functools.lru_cache(maxsize=4096)  # a run of series keeps its length while unchanged
def _zeros_crc(count: int) -> int:
    return _shifted(0, count)
