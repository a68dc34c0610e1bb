"""Durable state: an append-only journal of what the store applied, checkpointed into SQLite (WAL).

An export is made durable by appending the store's log of `apply` calls (its clock and its
observations, `Store.take_log`) to the journal (store/journal.py) — one write and one fdatasync per
group of exports that finished together — and only then is it answered. Nothing is re-encoded per
row on the way: a checkpoint (every maintenance interval, on shutdown, or when the journal grows
large) takes the rows changed since the last one (`Store.take_dirty`, each row once however often it
changed) at the same instant as it closes the journal segment, writes them into SQLite in a worker
thread, records which segments they cover and deletes those. Start-up loads the checkpoint and
replays the journal's `apply` calls on it (`Store.replay`); the next checkpoint covers them. This is the
Prometheus TSDB's WAL (records of what was appended) + checkpoint, with SQLite as the checkpoint.

Look-ups of what memory let go of happen on the event loop: first in rows a checkpoint is writing
(or owes after a failed write), then — only when the key filter says the state file may hold the
key — through a second SQLite connection, which WAL lets read while the writer writes.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import marshal
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otlp_bridge.series import FamilyMeta, Kind, Labels, intern_labels
from otlp_bridge.store import chunks, journal
from otlp_bridge.store.accumulator import (
    Dirty,
    HistoryRows,
    InputRow,
    InputState,
    Series,
    SeriesRow,
    Store,
    series_from_snapshot,
)
from otlp_bridge.store.known import KeyFilter
from otlp_bridge.store.statedir import StateGuard

log = logging.getLogger(__name__)

SCHEMA_VERSION = 5
DB_NAME = "bridge.db"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS families (
    name TEXT PRIMARY KEY, kind TEXT NOT NULL, help TEXT NOT NULL, monotonic INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS series_chunks (
    family TEXT NOT NULL, chunk INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (family, chunk)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inputs (
    key BLOB PRIMARY KEY, state TEXT NOT NULL, seen REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS inputs_seen ON inputs (seen);
CREATE TABLE IF NOT EXISTS history_chunks (
    family TEXT NOT NULL, chunk INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (family, chunk)) WITHOUT ROWID;
"""
# Version 1 kept budget spend in an internal counter per scope and day, and no creation times.
# Version 2 kept input state as JSON text; version 3 writes it as a marshal blob and reads both.
# Version 3 kept a row per series (JSON labels and value) and an image of them after a clean stop;
# version 4 keeps them in chunks (store/chunks.py); version 5 the hourly history too (a row per bucket before).
# Journal records: `(LOG, [apply calls])`; before, each was a commit's row images (still replayed).
_V1_SPEND = "otlp_bridge_internal_spend_usd_total"
_MARSHAL_VERSION = 4  # stable since Python 3.4
_LOG = "apply-log"
CHECKPOINT_BYTES = 8 << 20  # a journal segment this large is checkpointed without waiting for maintenance:
# it bounds what a start after a crash replays (~55k observations, ~0.7 s)
_KEY_FILTER_REBUILD = 4_000_000  # keys added since the filter was built; pruned ones stay set until then


@dataclass(frozen=True)
class Prune:
    inputs_seen_before: float  # uptime
    max_inputs: int


class StateError(Exception):
    """The state file cannot be used; the bridge refuses to start rather than start from zero."""


def _labels(text: str) -> Labels:
    return intern_labels(tuple(map(tuple, json.loads(text))))


def _dump(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=True)


def _decode_input(state: bytes | str, seen: float) -> InputState:
    if isinstance(state, bytes):
        return InputState.from_row(marshal.loads(state))
    start, time_, value, windows = json.loads(state)  # schema 2
    if isinstance(value, dict):
        value = (value["b"], value["c"], value["n"], value["s"])
    return InputState.from_row((start, time_, value, windows, seen))


class _Rows:
    """The newest of every row a checkpoint writes (or owes after a failed write)."""

    __slots__ = ("families", "history", "inputs", "series")

    def __init__(self) -> None:
        self.families: dict[str, tuple[str, str, bool]] = {}  # name → kind, help, monotonic
        self.series: dict[tuple[str, Labels], SeriesRow] = {}
        self.inputs: dict[bytes, InputRow] = {}
        self.history: HistoryRows = {}

    def __len__(self) -> int:
        return len(self.families) + len(self.series) + len(self.inputs) + len(self.history)

    def merge(self, record: tuple[Any, ...]) -> None:
        """Newer rows over older ones: one C-level update per table."""
        families, series, inputs, history = record
        self.families.update(families)
        self.series.update(series)
        self.inputs.update(inputs)
        self.history.update(history)

    def update(self, newer: _Rows) -> None:
        self.merge((newer.families, newer.series, newer.inputs, newer.history))


def _rewrite(db: sqlite3.Connection, table: str, by_chunk: dict[tuple[str, int], list[tuple[Labels, Any]]],
             apply: Callable[[chunks.Entry | None, Labels, Any], chunks.Entry | None]) -> None:
    for (name, chunk), changed in by_chunk.items():
        held = db.execute(f"SELECT data FROM {table} WHERE family = ? AND chunk = ?", (name, chunk)).fetchone()
        data = chunks.merged(None if held is None else held[0], changed, apply)
        if data is None:
            db.execute(f"DELETE FROM {table} WHERE family = ? AND chunk = ?", (name, chunk))
        else:
            db.execute(f"INSERT OR REPLACE INTO {table} VALUES (?, ?, ?)", (name, chunk, data))


def _retrieved(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()  # seen by its waiters if any; else not an "exception never retrieved" warning


def _record(dirty: Dirty) -> _Rows:
    """What the store changed, as the rows a checkpoint writes."""
    rows = _Rows()
    rows.merge(({name: (m.kind.value, m.help, m.monotonic) for name, m in dirty.families.items()},
                dirty.series, dirty.inputs, dirty.history))
    return rows


def _from_marshal(record: Any) -> tuple[Any, ...]:
    """A journal record of row images (written before the apply log) with shared label pairs."""
    families, series, inputs, history = record
    return (families, {(name, intern_labels(labels)): row for (name, labels), row in series.items()}, inputs,
            {(family, intern_labels(labels), hour): value for (family, labels, hour), value in history.items()})


class SqliteState:
    def __init__(self, directory: Path, *, synchronous: str = "FULL") -> None:
        self.path = directory / DB_NAME
        self._synchronous = synchronous
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self.lock = asyncio.Lock()  # one journal append at a time (a group commit, or a checkpoint's)
        # A cancelled await (a client gone, shutdown cancelling maintenance) releases the asyncio locks while
        # its worker thread still writes: the files and the SQLite writer are guarded in the threads too.
        self._journal_lock = threading.Lock()
        self._sqlite_lock = threading.Lock()
        self._checkpoint_lock = asyncio.Lock()
        self._committed = 0
        self._generation = 0
        self._group: asyncio.Future[None] | None = None  # the group commit under way
        self.guard: StateGuard | None = None  # lock, writability, file identity (store/statedir.py)
        self._journal: journal.Journal | None = None
        self._owed = _Rows()  # taken by a checkpoint whose write failed: the next one writes them
        self._inflight: _Rows | None = None  # being checkpointed
        self._replay: list[Any] = []  # apply calls the journal holds beyond the checkpoint (load_into applies them)
        self._known: KeyFilter | None = None  # built in a thread after open; until then every miss asks SQLite
        self._known_lock = threading.Lock()
        self._known_backlog: list[bytes] | None = None  # keys written while the filter is being built
        self._background: asyncio.Task[None] | None = None

    # --- opening ---------------------------------------------------------------------------
    def open(self) -> None:
        self.guard = StateGuard.acquire(self.path)  # one process per directory; never from zero silently
        try:
            self._writer = self._connect()
            self._writer.executescript(_SCHEMA)
            self._check()
            self._reader = self._connect()
            first = self._read_journal()
            self._journal = journal.Journal(self.path.parent, first, fsync=self._synchronous == "FULL")
            self.guard.watch()
        except sqlite3.DatabaseError as exc:
            self.close()
            raise StateError(self._unusable(str(exc))) from None
        except journal.JournalError as exc:
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
        elif row[0] in ("1", "2", "3", "4"):  # version 2's input state (JSON text) is still read as it is
            self._migrate_rows(v1=row[0] == "1")
        elif row[0] != str(SCHEMA_VERSION):
            raise StateError(self._unusable(f"schema version {row[0]}, this bridge reads {SCHEMA_VERSION}"))

    def _migrate_rows(self, *, v1: bool) -> None:
        """Rows per series and per history bucket become chunks, in one transaction. From version 1,
        budget spend (kept per scope and day, with no per-series history to become) is dropped:
        budgets count from the upgrade on (the README says so)."""
        assert self._writer is not None
        db = self._writer
        db.execute("BEGIN IMMEDIATE")
        try:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "series" in tables:
                created = any(row[1] == "created" for row in db.execute("PRAGMA table_info(series)"))
                self._write_series(db, {
                    (family, _labels(labels)): (json.loads(value), updated, born)
                    for family, labels, value, updated, born in db.execute(
                        f"SELECT family, labels, value, updated, {'created' if created else '0'} FROM series")
                    if not (v1 and family == _V1_SPEND)})
                db.execute("DROP TABLE series")
            if "history" in tables:
                self._write_history(db, {(family, _labels(labels), hour): value
                                         for family, labels, hour, value in db.execute("SELECT * FROM history")})
                db.execute("DROP TABLE history")
            if v1:
                db.execute("DELETE FROM families WHERE name = ?", (_V1_SPEND,))
            db.execute("DROP TABLE IF EXISTS images")
            db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _read_journal(self) -> int:
        """Read what the journal holds beyond the last checkpoint (row images of an older bridge are
        written into SQLite here, before anything loads); returns the number of the next segment."""
        assert self._writer is not None
        row = self._writer.execute("SELECT value FROM meta WHERE key = 'journal'").fetchone()
        first = int(row[0]) if row else 0
        rows = _Rows()
        for payload in journal.read(self.path.parent, first):
            try:
                record = marshal.loads(payload)
                if record[0] == _LOG:
                    self._replay.extend(record[1])
                else:
                    rows.merge(_from_marshal(record))
            except (ValueError, EOFError, TypeError, IndexError) as exc:  # checksum matched: damage in memory
                raise journal.JournalError(f"journal record cannot be read: {exc}") from None
        last = max((seq for seq, _ in journal.segments(self.path.parent)), default=first - 1)
        following = max(first, last + 1)
        if rows:
            log.info("state: writing %d rows an older bridge journaled", len(rows))
            self._write_rows(rows, None, None if self._replay else following)
        if not self._replay:
            journal.remove_through(self.path.parent, following - 1)
        return following

    def _unusable(self, why: str) -> str:
        return (f"state file {self.path} is unusable ({why}). Refusing to start from zero. "
                f"Run `otlp-bridge serve --fresh-state` to move it aside and start empty.")

    @staticmethod
    def move_aside(directory: Path) -> Path | None:
        """Rename an existing state file (its WAL and journal too) out of the way; returns the new name."""
        path = directory / DB_NAME
        if not path.exists():
            return None
        aside = path.with_name(f"{DB_NAME}.aside-{time.strftime('%Y%m%dT%H%M%S')}")
        for suffix in ("-wal", "-shm"):
            extra = path.with_name(DB_NAME + suffix)
            if extra.exists():
                extra.rename(aside.with_name(aside.name + suffix))
        for _, segment in journal.segments(directory):
            segment.rename(aside.with_name(f"{aside.name}.{segment.name}"))
        path.rename(aside)
        return aside

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
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
        history, and the uptime clock inputs age by; then replay the journal. Until the input key filter
        is built (in a thread, after), every new input stream is looked up in SQLite."""
        # Hundreds of thousands of new containers would set off the cyclic GC again and again, each pass
        # over everything restored so far; none of them can be in a cycle. Afterwards they are frozen
        # out of its passes for good (refcounting still frees them).
        gc.disable()
        try:
            count = self._load_into(store, series_ttl, now)
            if self._replay:
                self._replay_into(store)
        finally:
            gc.enable()
            gc.freeze()
        # After the load, not beside it: the two would share one GIL and the start would wait for both.
        with self._known_lock:
            self._known_backlog = []
        threading.Thread(target=self._build_key_filter, name="key-filter", daemon=True).start()
        return count

    def _replay_into(self, store: Store) -> None:
        """Apply the journal's calls on the checkpoint just loaded. What they changed is dirty, and the
        segments stay until the next checkpoint (in the background) covers them: a crash before then
        replays them again on the same checkpoint."""
        log.info("state: replaying %d apply calls from the journal", len(self._replay))
        try:
            seen = store.replay(self._replay)
        except (ValueError, TypeError) as exc:  # checksum matched but not what this bridge wrote
            raise StateError(self._unusable(f"journal record cannot be replayed: {exc}")) from None
        self._replay = []
        if seen > store.uptime():
            store.uptime.resume(seen)

    def _load_into(self, store: Store, series_ttl: float, now: float) -> int:
        assert self._reader is not None
        metas = {name: FamilyMeta(name, Kind(kind), help_, bool(monotonic))
                 for name, kind, help_, monotonic in self._reader.execute("SELECT * FROM families")}
        by_family: dict[str, dict[Labels, Series]] = {name: {} for name in metas}
        since = now - series_ttl if series_ttl > 0 else float("-inf")
        count = 0
        for family, data in self._reader.execute("SELECT family, data FROM series_chunks"):
            restored = by_family.get(family)
            if restored is None:
                raise StateError(self._unusable(f"series of family {family!r}, which the file does not define"))
            for labels, snap, updated, created in chunks.entries(data):
                if updated >= since:
                    restored[labels] = series_from_snapshot(snap, updated, created)
                    count += 1
                else:  # what the TTL leaves on disk is found there again if it comes back
                    store.released(family, labels)
        for name, meta in metas.items():
            store.restore(meta, by_family[name])
        if store.history is not None:
            for family, data in self._reader.execute("SELECT family, data FROM history_chunks"):
                for labels, hours in chunks.entries(data):
                    store.history.restore(family, labels, hours)
        (seen,) = self._reader.execute("SELECT max(seen) FROM inputs").fetchone()
        if seen is not None:
            store.uptime.resume(seen)
        return count

    def _unwritten(self) -> list[_Rows]:
        """Rows SQLite does not hold yet, newest first."""
        return [self._owed] if self._inflight is None else [self._inflight, self._owed]

    def load_series(self, family: str, labels: Labels) -> Series | None:
        for rows in self._unwritten():
            if (family, labels) in rows.series:
                row = rows.series[family, labels]
                return None if row is None else series_from_snapshot(*row)
        assert self._reader is not None
        row = self._reader.execute("SELECT data FROM series_chunks WHERE family = ? AND chunk = ?",
                                   (family, chunks.chunk_of(labels))).fetchone()
        found = None if row is None else chunks.find(row[0], labels)
        return None if found is None else series_from_snapshot(*found[1:])

    def load_input(self, key: bytes) -> InputState | None:
        for rows in self._unwritten():
            if key in rows.inputs:
                return InputState.from_row(rows.inputs[key])
        known = self._known
        if known is not None and key not in known:  # certain: a new stream costs no disk read
            return None
        assert self._reader is not None
        row = self._reader.execute("SELECT state, seen FROM inputs WHERE key = ?", (key,)).fetchone()
        return None if row is None else _decode_input(row[0], row[1])

    # --- writing -----------------------------------------------------------------------------
    def write(self, dirty: Dirty, prune: Prune | None = None) -> None:
        """Write `dirty` straight into SQLite, in one transaction (offline use: `otlp-bridge import`)."""
        self._write_rows(_record(dirty), prune, None)

    def _write_rows(self, rows: _Rows, prune: Prune | None, journal_next: int | None) -> None:
        """One transaction with `rows` (and the number of the first segment not in it); a worker thread's job."""
        with self._sqlite_lock:
            self._write_rows_locked(rows, prune, journal_next)

    def _write_rows_locked(self, rows: _Rows, prune: Prune | None, journal_next: int | None) -> None:
        assert self._writer is not None
        db = self._writer
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT OR REPLACE INTO families VALUES (?, ?, ?, ?)",
                           [(name, kind, help_, int(monotonic)) for name, (kind, help_, monotonic)
                            in rows.families.items()])
            self._write_series(db, rows.series)
            db.executemany("INSERT OR REPLACE INTO inputs VALUES (?, ?, ?)",
                           [(key, marshal.dumps(row, _MARSHAL_VERSION), row[4])  # type: ignore[arg-type]
                            for key, row in rows.inputs.items()])
            self._write_history(db, rows.history)
            if prune is not None:
                db.execute("DELETE FROM inputs WHERE seen < ?", (prune.inputs_seen_before,))
                # By count as well as age: the newest `max_inputs` stay (a live stream is always among them).
                db.execute("DELETE FROM inputs WHERE key IN (SELECT key FROM inputs ORDER BY seen DESC "
                           "LIMIT -1 OFFSET ?)", (prune.max_inputs,))
            if journal_next is not None:
                db.execute("INSERT OR REPLACE INTO meta VALUES ('journal', ?)", (str(journal_next),))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        with self._known_lock:
            if self._known is None:
                if self._known_backlog is not None:
                    self._known_backlog.extend(rows.inputs)
            else:
                for key in rows.inputs:
                    self._known.add(key)
                if self._known.added > _KEY_FILTER_REBUILD:
                    self._known = KeyFilter(key for (key,) in db.execute("SELECT key FROM inputs"))

    @staticmethod
    def _write_series(db: sqlite3.Connection, rows: dict[tuple[str, Labels], SeriesRow]) -> None:
        """Each chunk holding a changed series, rewritten once."""
        _rewrite(db, "series_chunks", chunks.grouped((name, labels, row) for (name, labels), row in rows.items()),
                 lambda _, labels, row: None if row is None else (labels, *row))

    @staticmethod
    def _write_history(db: sqlite3.Connection, rows: HistoryRows) -> None:
        """Each chunk holding a changed hourly bucket, rewritten once."""
        def apply(entry: chunks.Entry | None, labels: Labels, change: tuple[int, float | None]) -> chunks.Entry | None:
            hours: dict[int, float] = {} if entry is None else entry[1]
            hour, value = change
            if value is None:
                hours.pop(hour, None)
            else:
                hours[hour] = value
            return (labels, hours) if hours else None

        _rewrite(db, "history_chunks",
                 chunks.grouped((name, labels, (hour, value)) for (name, labels, hour), value in rows.items()), apply)

    def _build_key_filter(self) -> None:
        """Every input key in the state file (at start-up, off the event loop: ~2 µs a key)."""
        connection = self._connect()
        try:
            built = KeyFilter(key for (key,) in connection.execute("SELECT key FROM inputs"))
        except sqlite3.Error:
            log.exception("cannot build the input key filter; every new input stream is looked up on disk")
            with self._known_lock:
                self._known_backlog = None
            return
        finally:
            connection.close()
        with self._known_lock:
            for key in self._known_backlog or ():
                built.add(key)
            self._known_backlog = None
            self._known = built

    def changed(self) -> int:
        """Note that the store changed; returns the generation a commit must reach to cover it."""
        self._generation += 1
        return self._generation

    @property
    def latest(self) -> int:
        """The generation of the newest change so far."""
        return self._generation

    async def maintain(self, store: Store, *, input_retention: float, max_inputs: int) -> tuple[int, int]:
        """Checkpoint, pruning input state past its retention (in uptime, so a wall clock that jumps cannot
        age a live stream) or count; then let memory go of what is durable, and prune history."""
        await self.checkpoint(store, Prune(store.uptime() - input_retention, max_inputs))
        expired = store.expire()  # only what is clean goes: look-ups find it in SQLite
        if store.history is not None:
            store.history.prune(store.clock())
        return expired

    async def flush(self, store: Store) -> None:
        """Make everything durable and checkpoint it (shutdown): the next start replays nothing."""
        await self.checkpoint(store)

    async def commit(self, store: Store, generation: int) -> None:
        """Return once everything up to `generation` is durable. Exports that change the store while a
        write is under way share the next write: all wait on one future and wake together."""
        while self._committed < generation:
            if self._group is None:
                self._group = asyncio.ensure_future(self._write_group(store))
                self._group.add_done_callback(_retrieved)  # its waiters may all be gone
            await asyncio.shield(self._group)  # one waiter hanging up must not cancel the others' write

    async def _write_group(self, store: Store) -> None:
        try:
            async with self.lock:
                await self._append_log(store, rotate=False)
        finally:
            self._group = None

    async def _append_log(self, store: Store, *, rotate: bool) -> int:
        """Journal the store's log (then, with `rotate`, close the segment: returns its number). Holds
        `self.lock`. Waits for the worker thread even when cancelled, so no other append can overtake
        it; if the write fails, the log is owed again, ahead of what came since."""
        assert self._journal is not None
        target = self._generation  # every change up to here is in the log taken now
        entries = store.take_log()
        if not entries and not rotate:  # a replay, or a change a concurrent write covered
            self._committed = max(self._committed, target)
            return self._journal.seq
        if self.guard is not None and entries:  # the files are still the ones opened, or nothing is acknowledged
            try:
                self.guard.check(self._journal.open_file)
            except BaseException as exc:
                store.return_log(entries)
                self.guard.wrote(exc)
                raise
        written = asyncio.ensure_future(asyncio.to_thread(self._append, entries, rotate))

        def settle(done: asyncio.Future[int]) -> None:
            failed = done.cancelled() or done.exception() is not None
            if failed and entries:
                store.return_log(entries)
            if self.guard is not None and entries:
                self.guard.wrote(None if not failed else done.exception() or OSError("journal write cancelled"))

        written.add_done_callback(settle)
        try:
            covered = await asyncio.shield(written)
        except asyncio.CancelledError:
            if not written.done():
                await asyncio.wait([written])
            raise
        self._committed = max(self._committed, target)
        if self._journal.size > CHECKPOINT_BYTES and self._background is None:
            self._background = asyncio.create_task(self._checkpoint_in_background(store))
        return covered

    def _append(self, entries: list[Any], rotate: bool) -> int:
        with self._journal_lock:
            assert self._journal is not None
            if entries:
                self._journal.append(marshal.dumps((_LOG, entries), _MARSHAL_VERSION))
            if not rotate:
                return self._journal.seq
            return self._journal.rotate() if self._journal.size else self._journal.seq - 1

    async def _checkpoint_in_background(self, store: Store) -> None:
        try:
            await self.checkpoint(store)
        except Exception:
            log.exception("checkpoint failed; the journal keeps everything, retrying later")
        finally:
            self._background = None

    async def checkpoint(self, store: Store, prune: Prune | None = None) -> None:
        """Write the rows changed since the last checkpoint into SQLite and delete the journal segments
        they cover. Commits carry on meanwhile, into the next segment."""
        async with self._checkpoint_lock:
            await self._checkpoint(store, prune)

    async def _checkpoint(self, store: Store, prune: Prune | None) -> None:
        async with self.lock:
            if self._journal is None:  # never opened (a start-up that failed)
                return
            # The rows and the log are taken at one instant: the segments closed below hold exactly
            # the calls whose effects the rows carry.
            rows = self._owed
            rows.update(_record(store.take_dirty()))
            self._owed = _Rows()
            self._inflight = rows
            try:
                covered = await self._append_log(store, rotate=True)
            except BaseException:
                self._owed, self._inflight = rows, None
                raise
        try:
            await asyncio.to_thread(self._write_rows, rows, prune, covered + 1)
        except BaseException:
            rows.update(self._owed)  # still owed; what came since is newer
            self._owed = rows
            raise
        finally:
            self._inflight = None
        await asyncio.to_thread(journal.remove_through, self.path.parent, covered)
