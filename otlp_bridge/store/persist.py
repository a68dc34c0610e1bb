"""Durable state in SQLite (WAL): series totals, family metadata, input state, hourly history.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otlp_bridge.series import FamilyMeta, HistogramValue, Kind, Labels
from otlp_bridge.store.accumulator import (
    Dirty,
    InputState,
    Series,
    Store,
    series_from_snapshot,
)
from otlp_bridge.store.statedir import StateGuard

SCHEMA_VERSION = 2
DB_NAME = "bridge.db"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS families (
    name TEXT PRIMARY KEY, kind TEXT NOT NULL, help TEXT NOT NULL, monotonic INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS series (
    family TEXT NOT NULL, labels TEXT NOT NULL, value TEXT NOT NULL, updated REAL NOT NULL,
    created REAL NOT NULL DEFAULT 0, PRIMARY KEY (family, labels)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inputs (
    key BLOB PRIMARY KEY, state TEXT NOT NULL, seen REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS inputs_seen ON inputs (seen);
CREATE TABLE IF NOT EXISTS history (
    family TEXT NOT NULL, labels TEXT NOT NULL, hour INTEGER NOT NULL, value REAL NOT NULL,
    PRIMARY KEY (family, labels, hour)) WITHOUT ROWID;
"""
# Version 1 kept budget spend in an internal counter per scope and day, and no creation times.
_V1_SPEND = "otlp_bridge_internal_spend_usd_total"


@dataclass(frozen=True)
class Prune:
    inputs_seen_before: float  # uptime
    max_inputs: int


class StateError(Exception):
    """The state file cannot be used; the bridge refuses to start rather than start from zero."""


def _tuples(value: Any) -> Any:
    """JSON arrays back into the tuples keys are made of."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _dump(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=True)


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
        self.guard: StateGuard | None = None  # lock, writability, file identity (store/statedir.py)

    # --- opening ---------------------------------------------------------------------------
    def open(self) -> None:
        self.guard = StateGuard.acquire(self.path)  # one process per directory; never from zero silently
        try:
            self._writer = self._connect()
            self._writer.executescript(_SCHEMA)
            self._check()
            self._reader = self._connect()
            self.guard.watch()
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
        elif row[0] == "1":
            self._migrate_v1()
        elif row[0] != str(SCHEMA_VERSION):
            raise StateError(self._unusable(f"schema version {row[0]}, this bridge reads {SCHEMA_VERSION}"))

    def _migrate_v1(self) -> None:
        """Add creation times; budget spend of version 1 (per scope and day) has no per-series history to
        become, so it is dropped: budgets count from the upgrade on (the README says so)."""
        assert self._writer is not None
        db = self._writer
        db.execute("BEGIN IMMEDIATE")
        columns = [row[1] for row in db.execute("PRAGMA table_info(series)")]
        if "created" not in columns:
            db.execute("ALTER TABLE series ADD COLUMN created REAL NOT NULL DEFAULT 0")
        db.execute("DELETE FROM series WHERE family = ?", (_V1_SPEND,))
        db.execute("DELETE FROM families WHERE name = ?", (_V1_SPEND,))
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),))
        db.execute("COMMIT")

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
        if self.guard is not None:
            self.guard.release()
            self.guard = None

    # --- reading -----------------------------------------------------------------------------
    def load_into(self, store: Store, *, series_ttl: float, now: float) -> int:
        """Put durable state back into the store: series (all, or those updated within `series_ttl`),
        history, and the uptime clock inputs age by."""
        assert self._reader is not None
        metas = {name: FamilyMeta(name, Kind(kind), help_, bool(monotonic))
                 for name, kind, help_, monotonic in self._reader.execute("SELECT * FROM families")}
        by_family: dict[str, dict[Labels, Series]] = {name: {} for name in metas}
        since = now - series_ttl if series_ttl > 0 else float("-inf")
        count = 0
        for family, labels, value, updated, created in self._reader.execute(
                "SELECT family, labels, value, updated, created FROM series WHERE updated >= ?", (since,)):
            by_family[family][_tuples(json.loads(labels))] = series_from_snapshot(
                _tuples(json.loads(value)), updated, created)
            count += 1
        for name, meta in metas.items():
            store.restore(meta, by_family[name])
        if store.history is not None:
            for family, labels, hour, value in self._reader.execute("SELECT * FROM history"):
                store.history.restore(family, _tuples(json.loads(labels)), hour, value)
        (seen,) = self._reader.execute("SELECT max(seen) FROM inputs").fetchone()
        if seen is not None:
            store.uptime.resume(seen)
        return count

    def load_series(self, family: str, labels: Labels) -> Series | None:
        assert self._reader is not None
        row = self._reader.execute("SELECT value, updated, created FROM series WHERE family = ? AND labels = ?",
                                   (family, _dump(labels))).fetchone()
        return None if row is None else series_from_snapshot(_tuples(json.loads(row[0])), row[1], row[2])

    def load_input(self, key: bytes) -> InputState | None:
        assert self._reader is not None
        row = self._reader.execute("SELECT state, seen FROM inputs WHERE key = ?", (key,)).fetchone()
        return None if row is None else _decode_input(row[0], row[1])

    # --- writing -----------------------------------------------------------------------------
    def write(self, dirty: Dirty, prune: Prune | None = None) -> None:
        """One transaction with everything dirty; runs in a worker thread."""
        assert self._writer is not None
        db = self._writer
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT OR REPLACE INTO families VALUES (?, ?, ?, ?)",
                           [(m.name, m.kind.value, m.help, int(m.monotonic)) for m in dirty.families])
            db.executemany("INSERT OR REPLACE INTO series VALUES (?, ?, ?, ?, ?)",
                           [(name, _dump(labels), _dump(snap), updated, created)
                            for name, labels, snap, updated, created in dirty.series])
            db.executemany("DELETE FROM series WHERE family = ? AND labels = ?",
                           [(name, _dump(labels)) for name, labels in dirty.deleted])
            db.executemany("INSERT OR REPLACE INTO inputs VALUES (?, ?, ?)",
                           [(key, _encode_input(state), state.seen) for key, state in dirty.inputs])
            db.executemany("INSERT OR REPLACE INTO history VALUES (?, ?, ?, ?)",
                           [(f, _dump(labels), hour, v) for f, labels, hour, v in dirty.history if v is not None])
            db.executemany("DELETE FROM history WHERE family = ? AND labels = ? AND hour = ?",
                           [(f, _dump(labels), hour) for f, labels, hour, v in dirty.history if v is None])
            if prune is not None:
                db.execute("DELETE FROM inputs WHERE seen < ?", (prune.inputs_seen_before,))
                # By count as well as age: the newest `max_inputs` stay (a live stream is always among them).
                db.execute("DELETE FROM inputs WHERE key IN (SELECT key FROM inputs ORDER BY seen DESC "
                           "LIMIT -1 OFFSET ?)", (prune.max_inputs,))
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

    async def maintain(self, store: Store, *, input_retention: float, max_inputs: int) -> tuple[int, int]:
        """Expire memory, prune history past its retention and input state past its retention (in uptime,
        so a wall clock that jumps cannot age a live stream) or count, between commits."""
        async with self.lock:
            expired = store.expire()
            if store.history is not None:
                store.history.prune(store.clock())
            await self._flush(store, Prune(store.uptime() - input_retention, max_inputs))
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

    async def _flush(self, store: Store, prune: Prune | None = None) -> None:
        target = self._generation  # every change up to here is in what take_dirty returns
        dirty = store.take_dirty()
        if dirty or prune is not None:
            try:
                if self.guard is not None:
                    self.guard.check()  # the file is still the one opened, or nothing is acknowledged
                await asyncio.to_thread(self.write, dirty, prune)
            except BaseException:
                store.mark_dirty(dirty)
                raise
        self._committed = target
