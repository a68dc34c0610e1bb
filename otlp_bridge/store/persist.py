"""Durable state in SQLite (WAL): series totals, family metadata, input state.

One writer at a time (the commit lock), in a worker thread; look-ups of what
memory let go of happen on the event loop through a second connection, which
WAL lets read while the writer writes. `commit` is a group commit: exports that
finish while a write is in flight share the next one, so durability costs one
fsync per batch, not per request.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from otlp_bridge.store.accumulator import (
    Dirty,
    InputKey,
    InputState,
    Series,
    Store,
    series_from_snapshot,
)
from otlp_bridge.translate.metrics import FamilyMeta, HistogramValue, Kind, Labels, input_key

SCHEMA_VERSION = 1
DB_NAME = "bridge.db"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS families (
    name TEXT PRIMARY KEY, kind TEXT NOT NULL, help TEXT NOT NULL, monotonic INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS series (
    family TEXT NOT NULL, labels TEXT NOT NULL, value TEXT NOT NULL, updated REAL NOT NULL,
    PRIMARY KEY (family, labels)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inputs (
    key BLOB PRIMARY KEY, state TEXT NOT NULL, seen REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS inputs_seen ON inputs (seen);
"""


class StateError(Exception):
    """The state file cannot be used; the bridge refuses to start rather than start from zero."""


def _tuples(value: Any) -> Any:
    """JSON arrays back into the tuples keys are made of."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _dump(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=True)


def _key_bytes(key: InputKey) -> bytes:
    """Input keys on disk are 16-byte digests (translation already gives metric inputs as one)."""
    return key if isinstance(key, bytes) else input_key(*key)


def _encode_input(state: InputState) -> str:
    value: object = state.value
    if isinstance(value, HistogramValue):
        value = {"b": value.bounds, "c": value.counts, "n": value.count, "s": value.sum}
    return _dump([state.start, state.time, value, state.windows])


def _decode_input(text: str, seen: float) -> InputState:
    start, time_, value, windows = json.loads(text)
    if isinstance(value, dict):
        value = HistogramValue(tuple(value["b"]), tuple(value["c"]), value["n"], value["s"])
    return InputState(start, time_, value, _tuples(windows), seen)


class SqliteState:
    def __init__(self, directory: Path, *, synchronous: str = "FULL") -> None:
        self.path = directory / DB_NAME
        self._synchronous = synchronous
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self.lock = asyncio.Lock()
        self._committed = 0
        self._generation = 0

    # --- opening ---------------------------------------------------------------------------
    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._writer = self._connect()
            self._writer.executescript(_SCHEMA)
            self._check()
            self._reader = self._connect()
        except sqlite3.DatabaseError as exc:
            self.close()
            raise StateError(self._unusable(str(exc))) from None

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"PRAGMA synchronous={self._synchronous}")
        return connection

    def _check(self) -> None:
        assert self._writer is not None
        (result,) = self._writer.execute("PRAGMA quick_check").fetchone()
        if result != "ok":
            raise StateError(self._unusable(f"integrity check: {result}"))
        row = self._writer.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None:
            self._writer.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif row[0] != str(SCHEMA_VERSION):
            raise StateError(self._unusable(f"schema version {row[0]}, this bridge reads {SCHEMA_VERSION}"))

    def _unusable(self, why: str) -> str:
        return (f"state file {self.path} is unusable ({why}). Refusing to start from zero. "
                f"Run `otlp-bridge serve --fresh-state` to move it aside and start empty.")

    @staticmethod
    def move_aside(directory: Path) -> Path | None:
        """Rename an existing state file (and its WAL) out of the way; returns the new name."""
        path = directory / DB_NAME
        if not path.exists():
            return None
        aside = path.with_name(f"{DB_NAME}.aside-{time.strftime('%Y%m%dT%H%M%S')}")
        for suffix in ("-wal", "-shm"):
            extra = path.with_name(DB_NAME + suffix)
            if extra.exists():
                extra.rename(aside.with_name(aside.name + suffix))
        path.rename(aside)
        return aside

    def close(self) -> None:
        for connection in (self._reader, self._writer):
            if connection is not None:
                connection.close()
        self._reader = self._writer = None

    # --- reading -----------------------------------------------------------------------------
    def load_into(self, store: Store, *, series_ttl: float, now: float) -> int:
        """Put durable series back into the store (all, or those updated within `series_ttl`)."""
        assert self._reader is not None
        metas = {name: FamilyMeta(name, Kind(kind), help_, bool(monotonic))
                 for name, kind, help_, monotonic in self._reader.execute("SELECT * FROM families")}
        by_family: dict[str, dict[Labels, Series]] = {name: {} for name in metas}
        since = now - series_ttl if series_ttl > 0 else float("-inf")
        count = 0
        for family, labels, value, updated in self._reader.execute(
                "SELECT family, labels, value, updated FROM series WHERE updated >= ?", (since,)):
            by_family[family][_tuples(json.loads(labels))] = series_from_snapshot(_tuples(json.loads(value)), updated)
            count += 1
        for name, meta in metas.items():
            store.restore(meta, by_family[name])
        return count

    def load_series(self, family: str, labels: Labels) -> Series | None:
        assert self._reader is not None
        row = self._reader.execute("SELECT value, updated FROM series WHERE family = ? AND labels = ?",
                                   (family, _dump(labels))).fetchone()
        return None if row is None else series_from_snapshot(_tuples(json.loads(row[0])), row[1])

    def load_input(self, key: InputKey) -> InputState | None:
        assert self._reader is not None
        row = self._reader.execute("SELECT state, seen FROM inputs WHERE key = ?", (_key_bytes(key),)).fetchone()
        return None if row is None else _decode_input(row[0], row[1])

    # --- writing -----------------------------------------------------------------------------
    def write(self, dirty: Dirty, prune_inputs_before: float | None = None) -> None:
        """One transaction with everything dirty; runs in a worker thread."""
        assert self._writer is not None
        db = self._writer
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT OR REPLACE INTO families VALUES (?, ?, ?, ?)",
                           [(m.name, m.kind.value, m.help, int(m.monotonic)) for m in dirty.families])
            db.executemany("INSERT OR REPLACE INTO series VALUES (?, ?, ?, ?)",
                           [(name, _dump(labels), _dump(snap), updated)
                            for name, labels, snap, updated in dirty.series])
            db.executemany("INSERT OR REPLACE INTO inputs VALUES (?, ?, ?)",
                           [(_key_bytes(key), _encode_input(state), state.seen) for key, state in dirty.inputs])
            if prune_inputs_before is not None:
                db.execute("DELETE FROM inputs WHERE seen < ?", (prune_inputs_before,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def changed(self) -> int:
        """Note that the store changed; returns the generation a commit must reach to cover it."""
        self._generation += 1
        return self._generation

    @property
    def latest(self) -> int:
        """The generation of the newest change so far."""
        return self._generation

    async def maintain(self, store: Store, *, input_retention: float) -> tuple[int, int]:
        """Expire memory and prune input state older than the retention, between commits."""
        async with self.lock:
            expired = store.expire()
            await self._flush(store, prune_before=store.clock() - input_retention)
            return expired

    async def flush(self, store: Store) -> None:
        """Write whatever is dirty now."""
        async with self.lock:
            await self._flush(store)

    async def commit(self, store: Store, generation: int) -> None:
        """Return once everything up to `generation` is durable (sharing a write with others)."""
        async with self.lock:
            if self._committed < generation:  # else a write that started after our change covered it
                await self._flush(store)

    async def _flush(self, store: Store, prune_before: float | None = None) -> None:
        target = self._generation  # every change up to here is in what take_dirty returns
        dirty = store.take_dirty()
        if dirty or prune_before is not None:
            try:
                await asyncio.to_thread(self.write, dirty, prune_before)
            except BaseException:
                store.mark_dirty(dirty)
                raise
        self._committed = target
