"""Totals survive restarts; replays stay replays across them; a bad state file stops start-up."""

from __future__ import annotations

import asyncio
import contextlib
import marshal
import subprocess
import sys
from datetime import UTC
from pathlib import Path

import pytest

from otlp_bridge.app import Bridge
from otlp_bridge.series import FamilyMeta, HistogramValue, Kind, Observation, Temporality, input_key
from otlp_bridge.store import chunks as on_disk
from otlp_bridge.store import journal
from otlp_bridge.store.accumulator import Limits, Store, Uptime, snapshot_series
from otlp_bridge.store.history import History
from otlp_bridge.store.persist import DB_NAME, SqliteState, StateError
from tests.builders import Clock
from tests.support import CLAUDE, RunningBridge, capture_requests, replay, settings_for_test

TOKENS = "claude_code_token_usage_tokens_total"


def test_totals_and_replay_memory_survive_a_restart(tmp_path: Path) -> None:
    now = 1795382900.0  # one fixed moment: plan-window burn rates on /metrics move with the clock
    first = RunningBridge(settings_for_test(tmp_path), clock=lambda: now)
    replay(first, CLAUDE / "t7_write_edit_acceptEdits")
    before = first.scrape().samples()
    first.stop()
    second = RunningBridge(settings_for_test(tmp_path), clock=lambda: now)
    try:
        restored = second.scrape()
        assert {k: v for k, v in restored.samples().items() if k[0].startswith("claude_code")} == \
            {k: v for k, v in before.items() if k[0].startswith("claude_code")}
        replay(second, CLAUDE / "t7_write_edit_acceptEdits")  # the client retrying after the restart
        assert second.scrape().total(TOKENS, type="cacheRead") == 3 * 4567
    finally:
        second.stop()


def test_cumulative_stream_split_by_a_restart_stays_exact(tmp_path: Path) -> None:
    requests = [r for r in capture_requests(CLAUDE / "t9_cumulative_sleep") if r.signal == "metrics"]
    first = RunningBridge(settings_for_test(tmp_path))
    for req in requests[:3]:
        assert first.post(req.http_path, req.body)[0] == 200
    first.stop()
    second = RunningBridge(settings_for_test(tmp_path))
    try:
        for req in requests[3:]:
            assert second.post(req.http_path, req.body)[0] == 200
        scrape = second.scrape()
        assert scrape.total(TOKENS, type="cacheRead") == 2 * 4567
        assert scrape.total("claude_code_session_count_total") == 1
    finally:
        second.stop()


def test_persistence_off_keeps_nothing(tmp_path: Path) -> None:
    first = RunningBridge(settings_for_test(tmp_path, state={"dir": str(tmp_path), "persist": False}))
    replay(first, CLAUDE / "t1_http_protobuf_sayhi")
    first.stop()
    assert not (tmp_path / DB_NAME).exists()


def _start(tmp_path: Path) -> None:
    async def run() -> None:
        bridge = Bridge(settings_for_test(tmp_path))
        await bridge.start()
        await bridge.stop(0)

    asyncio.run(run())


def test_corrupt_state_file_refuses_to_start(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / DB_NAME).write_bytes(b"this is not a database" * 100)
    with pytest.raises(StateError, match="--fresh-state"):
        _start(tmp_path)
    # the CLI says so and exits 2 (every start-up failure does); --fresh-state moves the file aside and starts
    env_args = [sys.executable, "-m", "otlp_bridge", "serve"]
    config = tmp_path / "c.toml"
    config.write_text(f'[server]\ngrpc_port = 0\nhttp_port = 0\nmetrics_port = 0\n[state]\ndir = "{state_dir}"\n')
    result = subprocess.run([*env_args, "--config", str(config)], capture_output=True, timeout=30, check=False)
    assert result.returncode == 2
    assert b"unusable" in result.stderr
    assert b"Traceback" not in result.stderr
    process = subprocess.Popen([*env_args, "--config", str(config), "--fresh-state"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        line = b""
        while b"Prometheus metrics on" not in line:
            line = process.stdout.readline()  # type: ignore[union-attr]
            assert line, "bridge exited"
    finally:
        process.terminate()
        process.wait(15)
    assert process.returncode == 0
    assert [p.name for p in state_dir.iterdir() if p.name.startswith(f"{DB_NAME}.aside-")]


def test_state_from_a_newer_schema_is_refused(tmp_path: Path) -> None:
    state = SqliteState(tmp_path / "state")
    state.open()
    assert state._writer is not None
    state._writer.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    state.close()
    with pytest.raises(StateError, match="schema version 99"):
        _start(tmp_path)


# --- expiry and eviction against the real state file --------------------------------------------
COUNTER = FamilyMeta("c_total", Kind.COUNTER, "help")


def _obs(session: str, start: int, time: int, value: float, temporality: Temporality) -> Observation:
    return Observation(COUNTER, input_key("c_total", (), (("session.id", session),)), (("job", "x"),), temporality,
                       start, time, value)


def _store(state: SqliteState, clock: Clock, limits: Limits) -> Store:
    return Store(limits, backing=state, clock=clock, uptime=Uptime(clock.monotonic))


def test_expired_series_leaves_memory_and_continues_its_total_when_it_returns(tmp_path: Path) -> None:
    clock = Clock(1_000_000.0)
    state = SqliteState(tmp_path)
    state.open()
    store = _store(state, clock, Limits(series_ttl=60, input_ttl=60))
    store.apply([_obs("a", 0, 10, 5.0, Temporality.CUMULATIVE)])
    asyncio.run(state.flush(store))
    clock.advance(120)
    asyncio.run(state.maintain(store, input_retention=86400, max_inputs=1000))
    assert store.series_count == 0
    assert store.input_count == 0
    # the same cumulative stream returns: its input state comes back from disk, no double count
    store.apply([_obs("a", 0, 20, 7.0, Temporality.CUMULATIVE)])
    assert store.families["c_total"].series[(("job", "x"),)].value == 7.0
    state.close()


def test_inputs_over_the_memory_cap_are_evicted_but_not_forgotten(tmp_path: Path) -> None:
    clock = Clock(1_000_000.0)
    state = SqliteState(tmp_path)
    state.open()
    store = _store(state, clock, Limits(max_inputs_in_memory=10, input_ttl=0))
    store.apply([_obs(f"s{i}", 0, 10, 1.0, Temporality.CUMULATIVE) for i in range(100)])
    asyncio.run(state.flush(store))
    asyncio.run(state.maintain(store, input_retention=86400, max_inputs=1000))
    assert store.input_count == 10
    store.apply([_obs(f"s{i}", 0, 20, 2.0, Temporality.CUMULATIVE) for i in range(100)])
    assert store.families["c_total"].series[(("job", "x"),)].value == 200.0
    state.close()


def test_a_wall_clock_jump_never_ages_a_live_cumulative_stream(tmp_path: Path) -> None:
    clock = Clock(1_000_000.0)
    state = SqliteState(tmp_path)
    state.open()
    store = _store(state, clock, Limits(input_ttl=60))
    store.apply([_obs("a", 5, 10, 5.0, Temporality.CUMULATIVE)])
    asyncio.run(state.flush(store))
    clock.jump(8 * 86400)  # NTP steps the clock 8 days ahead; retention is 7 days
    clock.advance(30)
    asyncio.run(state.maintain(store, input_retention=7 * 86400, max_inputs=1000))
    store.apply([_obs("a", 5, 20, 6.0, Temporality.CUMULATIVE)])
    assert store.families["c_total"].series[(("job", "x"),)].value == 6.0  # 5 + 1, not 5 + 6
    state.close()


def test_input_state_on_disk_is_bounded_by_count_keeping_the_newest(tmp_path: Path) -> None:
    clock = Clock(1_000_000.0)
    state = SqliteState(tmp_path)
    state.open()
    store = _store(state, clock, Limits(input_ttl=1, max_inputs_in_memory=5))
    for i in range(30):
        store.apply([_obs(f"s{i}", 0, 10, 1.0, Temporality.CUMULATIVE)])
        clock.advance(1)
    asyncio.run(state.maintain(store, input_retention=86400, max_inputs=10))
    assert state._writer is not None
    (kept,) = state._writer.execute("SELECT count(*) FROM inputs").fetchone()
    assert kept == 10
    store.apply([_obs("s29", 0, 20, 3.0, Temporality.CUMULATIVE)])  # the newest is still known: +2
    assert store.families["c_total"].series[(("job", "x"),)].value == 32.0
    state.close()


def test_restart_restores_series_without_loading_every_input(tmp_path: Path) -> None:
    state = SqliteState(tmp_path)
    state.open()
    store = Store(backing=state)
    store.apply([_obs("a", 0, 10, 3.0, Temporality.DELTA)])
    asyncio.run(state.flush(store))
    state.close()
    again = SqliteState(tmp_path)
    again.open()
    fresh = Store(backing=again)
    assert again.load_into(fresh, series_ttl=0, now=0) == 1
    assert fresh.input_count == 0
    assert fresh.apply([_obs("a", 0, 10, 3.0, Temporality.DELTA)]).duplicates == 1  # looked up on miss
    again.close()


def test_budget_periods_last_seen_and_event_replay_marks_survive_a_restart(tmp_path: Path) -> None:
    now = 1795382900.0
    budgets = [{"name": "team", "period": "month", "limit_usd": 1.0, "match": {"team_id": "platform"}}]
    first = RunningBridge(settings_for_test(tmp_path, budgets=budgets), clock=lambda: now)
    replay(first, CLAUDE / "t10_fail_reject_details")
    before = first.get_json("/summary")
    first.stop()
    second = RunningBridge(settings_for_test(tmp_path, budgets=budgets), clock=lambda: now)
    try:
        after = second.get_json("/summary")
        assert after["budgets"][0]["spent_usd"] == before["budgets"][0]["spent_usd"] == 0.0133908
        assert after["cost_usd"]["today"] == 0.0133908
        assert after["last_seen"] == before["last_seen"]
        replay(second, CLAUDE / "t10_fail_reject_details")  # the CLI retrying after the restart
        again = second.get_json("/summary")
        assert again["api"]["requests"] == before["api"]["requests"] == 2
        assert again["budgets"][0]["spent_usd"] == 0.0133908
    finally:
        second.stop()


def test_a_restart_mid_burn_window_and_mid_session_changes_nothing(tmp_path: Path) -> None:
    """Burn rate, forecast and session duration are the same with a restart as without one."""
    budgets = [{"name": "month", "period": "month", "limit_usd": 1.0}]
    t8 = [r for r in capture_requests(CLAUDE / "t8_bash_sleep_multi_export") if r.transport == "http"]
    clock = Clock(1795382900.0)

    def start(directory: Path) -> RunningBridge:
        settings = settings_for_test(directory, budgets=budgets, events={"session_idle": 60})
        return RunningBridge(settings, clock=clock, monotonic=clock.monotonic)

    def views(bridge: RunningBridge) -> tuple[object, ...]:
        summary = bridge.get_json("/summary")
        budget = summary["budgets"][0]
        return budget["burn_rate_usd_per_hour"], budget["forecast_usd"], summary["activity"]["active_sessions"]

    straight = start(tmp_path / "straight")
    for req in t8:
        assert straight.post(req.http_path, req.decoded_body)[0] == 200
    expected = views(straight)
    clock.advance(120)  # the session goes idle: its duration is observed
    straight.bridge.pipeline.apply(straight.bridge.activity.expire(clock()))
    duration = straight.scrape().total("claude_code_session_duration_seconds_sum")
    straight.stop()
    assert duration > 0

    clock.advance(-120)
    first = start(tmp_path / "restarted")
    for req in t8[:2]:
        assert first.post(req.http_path, req.decoded_body)[0] == 200
    first.stop()
    second = start(tmp_path / "restarted")
    try:
        for req in t8[2:]:
            assert second.post(req.http_path, req.decoded_body)[0] == 200
        assert views(second) == expected
        clock.advance(120)
        second.bridge.pipeline.apply(second.bridge.activity.expire(clock()))
        assert second.scrape().total("claude_code_session_duration_seconds_sum") == duration
    finally:
        second.stop()


# --- the journal: what a crash leaves, and what it cannot -------------------------------------------
def _journaled_then_crashed(state_dir: Path, values: list[float]) -> Path:
    """One group commit per value into the journal, no checkpoint, files left as a kill -9 leaves them."""
    state = SqliteState(state_dir)
    state.open()
    store = Store(backing=state)

    async def commit_each() -> None:
        for i, value in enumerate(values):
            store.apply([_obs("a", i, i + 1, value, Temporality.DELTA)])
            await state.commit(store, state.changed())

    asyncio.run(commit_each())
    assert state._journal is not None
    segment = journal.segment_path(state_dir, state._journal.seq)
    state.close()
    return segment


def _restored_total(state_dir: Path) -> float | None:
    state = SqliteState(state_dir)
    state.open()
    try:
        store = Store(backing=state)
        state.load_into(store, series_ttl=0, now=0)
        return store.value("c_total", (("job", "x"),))
    finally:
        state.close()


def test_acknowledged_commits_survive_in_the_journal_and_a_torn_tail_is_cut_off(tmp_path: Path) -> None:
    segment = _journaled_then_crashed(tmp_path, [1.0, 2.0, 4.0])
    with segment.open("ab") as torn:  # a record the crash interrupted: its header promises more than is there
        torn.write((500).to_bytes(4, "little") + b"\x01\x02\x03\x04" + b"partial")
    size = segment.stat().st_size
    assert _restored_total(tmp_path) == 7.0
    assert segment.stat().st_size == size - 4 - 4 - len(b"partial")  # the torn record is cut off the file
    assert _restored_total(tmp_path) == 7.0  # no checkpoint since: replayed again on the same one, not added twice


def test_a_second_crash_before_any_checkpoint_replays_both_journals_in_order(tmp_path: Path) -> None:
    _journaled_then_crashed(tmp_path, [1.0, 2.0])
    state = SqliteState(tmp_path)
    state.open()
    store = Store(backing=state)
    state.load_into(store, series_ttl=0, now=0)
    store.apply([_obs("a", 10, 11, 4.0, Temporality.DELTA), _obs("a", 0, 1, 1.0, Temporality.DELTA)])  # + a retry
    asyncio.run(state.commit(store, state.changed()))
    state.close()  # killed again before the first checkpoint
    assert _restored_total(tmp_path) == 7.0


def test_damage_inside_the_journal_refuses_to_start(tmp_path: Path) -> None:
    segment = _journaled_then_crashed(tmp_path, [1.0, 2.0, 4.0])
    data = bytearray(segment.read_bytes())
    data[12] ^= 0xFF  # inside the first record, with acknowledged records after it
    segment.write_bytes(bytes(data))
    with pytest.raises(StateError, match="damaged"):
        _restored_total(tmp_path)


def test_a_checkpoint_writes_the_journal_into_sqlite_and_deletes_it(tmp_path: Path) -> None:
    state = SqliteState(tmp_path)
    state.open()
    store = Store(backing=state)
    store.apply([_obs("a", 0, 1, 3.0, Temporality.DELTA)])
    asyncio.run(state.commit(store, state.changed()))
    assert state._writer is not None
    assert state._writer.execute("SELECT count(*) FROM series_chunks").fetchone() == (0,)  # journaled only
    asyncio.run(state.checkpoint(store))
    assert state._writer.execute("SELECT count(*) FROM series_chunks").fetchone() == (1,)
    assert [seq for seq, _ in journal.segments(tmp_path)] == [state._journal.seq]  # type: ignore[union-attr]
    state.close()
    assert _restored_total(tmp_path) == 3.0


def test_series_in_chunks_are_rewritten_where_they_changed_and_removed_when_gone(tmp_path: Path) -> None:
    state, store = _with_series(tmp_path, 3000)
    asyncio.run(state.flush(store))
    assert state._writer is not None
    chunks = dict(state._writer.execute("SELECT chunk, data FROM series_chunks"))
    assert len(chunks) > on_disk.CHUNKS // 2  # spread over many chunks
    gauge = FamilyMeta("g", Kind.GAUGE, "help", monotonic=False)
    store.apply([Observation(COUNTER, input_key("c_total", 7), (("n", "7"),), Temporality.DELTA, 1, 2, 1.0),
                 Observation(gauge, input_key("g"), (("k", "v"),), Temporality.LAST_VALUE, 0, 1, 1.0)])
    asyncio.run(state.flush(store))
    store.apply([Observation(gauge, input_key("g"), (("k", "v"),), Temporality.LAST_VALUE, 0, 2, None)])
    asyncio.run(state.flush(store))
    after = dict(state._writer.execute("SELECT chunk, data FROM series_chunks WHERE family = 'c_total'"))
    assert [chunk for chunk in chunks if chunks[chunk] != after[chunk]] == [on_disk.chunk_of((("n", "7"),))]
    assert state._writer.execute("SELECT count(*) FROM series_chunks WHERE family = 'g'").fetchone() == (0,)
    state.close()
    again = SqliteState(tmp_path)
    again.open()
    restored = Store(backing=again)
    assert again.load_into(restored, series_ttl=0, now=0) == 3000
    assert restored.value("c_total", (("n", "7"),)) == 2.0
    again.close()


def test_a_version_3_file_with_a_row_per_series_and_bucket_is_migrated_to_chunks(tmp_path: Path) -> None:
    state = SqliteState(tmp_path)
    state.open()
    assert state._writer is not None
    db = state._writer
    db.execute("CREATE TABLE series (family TEXT NOT NULL, labels TEXT NOT NULL, value TEXT NOT NULL, "
               "updated REAL NOT NULL, created REAL NOT NULL DEFAULT 0, PRIMARY KEY (family, labels)) WITHOUT ROWID")
    db.execute("CREATE TABLE images (name TEXT PRIMARY KEY, value BLOB NOT NULL)")
    db.execute("INSERT INTO families VALUES ('c_total', 'counter', 'help', 1)")
    db.execute("INSERT INTO series VALUES ('c_total', '[[\"job\",\"x\"]]', '[5.5,0.0]', 10.0, 3.0)")
    db.execute("CREATE TABLE history (family TEXT NOT NULL, labels TEXT NOT NULL, hour INTEGER NOT NULL, "
               "value REAL NOT NULL, PRIMARY KEY (family, labels, hour)) WITHOUT ROWID")
    db.executemany("INSERT INTO history VALUES ('c_total', '[[\"job\",\"x\"]]', ?, ?)",
                   [(400_000, 1.5), (400_001, 4.0)])
    db.execute("UPDATE meta SET value = '3' WHERE key = 'schema'")
    state.close()
    again = SqliteState(tmp_path)
    again.open()
    restored = Store(backing=again, history=History({"c_total"}, UTC))
    assert again.load_into(restored, series_ttl=0, now=0) == 1
    assert restored.history is not None
    assert restored.history.buckets == {("c_total", (("job", "x"),)): {400_000: 1.5, 400_001: 4.0}}
    series = restored.families["c_total"].series[(("job", "x"),)]
    assert (series.value, series.updated, series.created) == (5.5, 10.0, 3.0)
    assert again._reader is not None
    tables = {name for (name,) in again._reader.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert not tables & {"series", "images", "history"}
    again.close()


def _with_series(state_dir: Path, count: int) -> tuple[SqliteState, Store]:
    """An open state and a store holding `count` distinct series, not yet committed."""
    state = SqliteState(state_dir)
    state.open()
    store = Store(backing=state)
    store.apply([Observation(COUNTER, input_key("c_total", i), (("n", str(i)),), Temporality.DELTA, 0, 1, 1.0)
                 for i in range(count)])
    return state, store


def _restored_count(state_dir: Path) -> int:
    state = SqliteState(state_dir)
    state.open()
    try:
        return state.load_into(Store(backing=state), series_ttl=0, now=0)
    finally:
        state.close()


def test_a_cancelled_checkpoint_never_collides_with_the_next_write(tmp_path: Path) -> None:
    """Shutdown cancels maintenance mid-checkpoint; its thread still writes while the final flush starts."""
    state, store = _with_series(tmp_path, 20_000)

    async def run() -> None:
        await state.commit(store, state.changed())
        checkpoint = asyncio.create_task(state.checkpoint(store))
        await asyncio.sleep(0.001)  # its SQLite write is under way in a worker thread
        checkpoint.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await checkpoint
        await state.flush(store)

    asyncio.run(run())
    state.close()
    assert _restored_count(tmp_path) == 20_000


# --- the journal is a log of what the store applied ------------------------------------------------
GAUGE = FamilyMeta("g", Kind.GAUGE, "help", monotonic=False)
HISTOGRAM = FamilyMeta("h", Kind.HISTOGRAM, "help")


def _everything(store: Store) -> dict[tuple[str, object], object]:
    totals: dict[tuple[str, object], object] = {
        (name, labels): (snapshot_series(series), series.updated, series.created)
        for name, family in store.families.items() for labels, series in family.series.items()}
    assert store.history is not None
    totals["history", "c_total"] = store.history.by_hour("c_total", 0, 2e9)
    return totals


def _mixed_store(state: SqliteState, clock: Clock) -> Store:
    return Store(backing=state, clock=clock, uptime=Uptime(clock.monotonic),
                 history=History({"c_total"}, UTC))


def test_a_crash_restores_exactly_what_was_applied_every_kind_and_clock(tmp_path: Path) -> None:
    """Cumulative streams (a reset, a new start), deltas, histograms, a gauge removed by a staleness
    marker, history-only increases, refusals: replaying the journal on the checkpoint gives the same store."""
    clock = Clock(1_700_000_000.0)
    state = SqliteState(tmp_path)
    state.open()
    store = _mixed_store(state, clock)
    single = HistogramValue.single((1.0, 10.0), 3.0)
    batches = [
        [_obs("a", 1, 10, 5.0, Temporality.CUMULATIVE), _obs("b", 0, 5, 2.5, Temporality.DELTA),
         Observation(GAUGE, input_key("g"), (("k", "1"),), Temporality.LAST_VALUE, 0, 10, 4.0),
         Observation(HISTOGRAM, input_key("h"), (), Temporality.DELTA, 0, 10, single)],
        [_obs("a", 1, 20, 3.0, Temporality.CUMULATIVE),  # a reset within the stream
         Observation(GAUGE, input_key("g"), (("k", "1"),), Temporality.LAST_VALUE, 0, 20, None),
         Observation(HISTOGRAM, input_key("h"), (), Temporality.DELTA, 10, 20, single),
         _obs("c", 0, 5, float("nan"), Temporality.DELTA)],  # refused, and the refusal changes nothing
    ]

    async def run() -> None:
        for i, batch in enumerate(batches):
            clock.advance(3600)
            store.apply(batch)
            store.apply([_obs("old", 0, 1_600_000_000 * 10**9 + i, 1.25, Temporality.DELTA)], history_only=True)
            await state.commit(store, state.changed())
        await state.checkpoint(store)  # half in SQLite, half only in the journal
        clock.advance(60)
        store.apply([_obs("a", 7, 30, 1.0, Temporality.CUMULATIVE)])  # a new start: a new stream
        await state.commit(store, state.changed())

    asyncio.run(run())
    expected = _everything(store)
    state.close()  # as kill -9 leaves it: no flush
    again = SqliteState(tmp_path)
    again.open()
    restored = _mixed_store(again, clock)
    again.load_into(restored, series_ttl=0, now=clock())
    assert _everything(restored) == expected
    # input state came back too: every point again is a duplicate
    retry = restored.apply([_obs("a", 7, 30, 1.0, Temporality.CUMULATIVE), batches[0][1], batches[1][2]])
    assert retry.duplicates == 3
    assert not retry.applied
    again.close()


def test_a_failed_journal_write_is_owed_and_written_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = SqliteState(tmp_path)
    state.open()
    store = Store(backing=state)
    real = journal.Journal.append
    failures = iter([OSError("disk full")])

    def flaky(self: journal.Journal, payload: bytes) -> None:
        if (failure := next(failures, None)) is not None:
            raise failure
        real(self, payload)

    monkeypatch.setattr(journal.Journal, "append", flaky)

    async def run() -> None:
        store.apply([_obs("a", 0, 1, 1.0, Temporality.DELTA)])
        with pytest.raises(OSError, match="disk full"):
            await state.commit(store, state.changed())
        store.apply([_obs("a", 1, 2, 2.0, Temporality.DELTA)])
        await state.commit(store, state.changed())

    asyncio.run(run())
    state.close()
    assert _restored_total(tmp_path) == 3.0


def test_a_new_series_costs_no_disk_read_and_one_the_ttl_left_on_disk_continues(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(1_000_000.0)
    state = SqliteState(tmp_path)
    state.open()
    store = _store(state, clock, Limits(series_ttl=60))
    store.apply([_obs("a", 0, 10, 5.0, Temporality.DELTA)])
    asyncio.run(state.flush(store))
    state.close()
    clock.advance(120)
    again = SqliteState(tmp_path)
    again.open()
    restored = _store(again, clock, Limits(series_ttl=60))
    assert again.load_into(restored, series_ttl=60, now=clock()) == 0  # too old to load
    reads: list[tuple[str, object]] = []
    real = SqliteState.load_series
    monkeypatch.setattr(SqliteState, "load_series",
                        lambda self, f, labels: reads.append((f, labels)) or real(self, f, labels))
    restored.apply([Observation(COUNTER, input_key("new"), (("job", "new"),), Temporality.DELTA, 0, 1, 1.0)])
    assert reads == []
    restored.apply([_obs("a", 10, 20, 2.0, Temporality.DELTA)])
    assert reads == [("c_total", (("job", "x"),))]
    assert restored.value("c_total", (("job", "x"),)) == 7.0
    again.close()


def test_row_images_an_older_bridge_journaled_are_written_before_the_load(tmp_path: Path) -> None:
    """Killed before its checkpoint, a bridge that journaled row images leaves them to the upgrade."""
    state = SqliteState(tmp_path)
    state.open()
    state.close()
    older = journal.Journal(tmp_path, 0, fsync=False)
    older.append(marshal.dumps(({"c_total": ("counter", "help", True)},
                                {("c_total", (("job", "x"),)): ((7.5, 0.0), 10.0, 3.0)}, {}, {}), 4))
    older.close()
    assert _restored_total(tmp_path) == 7.5
    assert not journal.segment_path(tmp_path, 0).exists()  # written into SQLite, then deleted
    assert _restored_total(tmp_path) == 7.5
