"""An append-only journal of what each group commit made durable, in numbered segment files.

The Prometheus TSDB's WAL + checkpoint is the model: an acknowledged export costs one appended
record (and one fdatasync per group of exports), not a rewrite of B-tree pages; every so often the
rows the journal holds are checkpointed into SQLite and the segments they came from are deleted.

A record is `length (u32) | crc32 (u32) | payload`. A crash can tear only the record being written,
which was never acknowledged: a bad record that reaches the end of the newest segment (or is
followed only by zeros) is cut off with a warning. A bad record with anything after it, or in an
older segment, means the file was damaged after it was written, and the bridge refuses to start
rather than lose what it had acknowledged.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "bridge.journal."
_HEADER = struct.Struct("<II")
MAX_RECORD = 1 << 30  # a length above this is damage, not a record


class JournalError(Exception):
    """A journal segment is damaged where it cannot have been torn by a crash."""


def segments(directory: Path) -> list[tuple[int, Path]]:
    """Segment files by sequence number, oldest first."""
    found = []
    for path in directory.glob(PREFIX + "*"):
        suffix = path.name[len(PREFIX):]
        if suffix.isdigit():
            found.append((int(suffix), path))
    return sorted(found)


def segment_path(directory: Path, seq: int) -> Path:
    return directory / f"{PREFIX}{seq:08d}"


def read(directory: Path, first: int) -> Iterator[bytes]:
    """Payloads of every segment numbered `first` or above, in order; a torn tail of the newest is cut off."""
    found = [(seq, path) for seq, path in segments(directory) if seq >= first]
    for index, (_, path) in enumerate(found):
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            payload = _record_at(data, offset)
            if payload is None:
                if index != len(found) - 1 or not _torn(data, offset):
                    raise JournalError(f"journal segment {path} is damaged at byte {offset}")
                log.warning("journal %s: cutting off %d bytes of a record torn by a crash (never acknowledged)",
                            path, len(data) - offset)
                with path.open("r+b") as torn:
                    torn.truncate(offset)
                break
            yield payload
            offset += _HEADER.size + len(payload)


def _record_at(data: bytes, offset: int) -> bytes | None:
    if offset + _HEADER.size > len(data):
        return None
    length, crc = _HEADER.unpack_from(data, offset)
    start = offset + _HEADER.size
    if length == 0 or length > MAX_RECORD or start + length > len(data):
        return None
    payload = data[start:start + length]
    return payload if zlib.crc32(payload) == crc else None


def _torn(data: bytes, offset: int) -> bool:
    """Whether the bad record at `offset` is the tail a crash leaves: nothing intact after it."""
    if offset + _HEADER.size > len(data):
        return True
    length, _ = _HEADER.unpack_from(data, offset)
    if length == 0:
        return not data[offset:].strip(b"\0")
    return offset + _HEADER.size + length >= len(data)


def remove_through(directory: Path, seq: int) -> None:
    """Delete the segments a checkpoint has made redundant (numbered `seq` or below)."""
    for number, path in segments(directory):
        if number <= seq:
            path.unlink(missing_ok=True)


class Journal:
    """The segment being appended to. `append` runs in a worker thread, one at a time (the commit lock)."""

    def __init__(self, directory: Path, seq: int, *, fsync: bool) -> None:
        self.directory = directory
        self.seq = seq
        self.fsync = fsync
        self.size = 0
        self.broken: str | None = None  # a failed append that could not be undone: nothing more is written
        self._fd = self._open(seq)

    def _open(self, seq: int) -> int:
        fd = os.open(segment_path(self.directory, seq), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        self.size = os.fstat(fd).st_size
        if self.fsync:  # the new name must survive a power cut like the records in it
            directory = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        return fd

    def append(self, payload: bytes) -> None:
        """Write one record and (with fsync on) make it durable; on failure the segment is as before."""
        if self.broken is not None:
            raise OSError(self.broken)
        record = _HEADER.pack(len(payload), zlib.crc32(payload)) + payload
        before = self.size
        try:
            view = memoryview(record)
            while view:
                view = view[os.write(self._fd, view):]
            if self.fsync:
                os.fdatasync(self._fd)
        except OSError as exc:
            try:
                os.ftruncate(self._fd, before)  # a half-written record must not hide later ones
            except OSError:
                self.broken = f"journal {segment_path(self.directory, self.seq)} damaged by a failed write: {exc}"
            raise
        self.size = before + len(record)

    @property
    def open_file(self) -> tuple[int, Path]:
        """The segment being appended to, as (fd, path): what the state guard watches for deletion."""
        return self._fd, segment_path(self.directory, self.seq)

    def rotate(self) -> int:
        """Start the next segment; returns the number of the one closed."""
        closed = self.seq
        os.close(self._fd)
        self.seq += 1
        self._fd = self._open(self.seq)
        return closed

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
