"""The exactness rules, one table-like test each, on the store alone."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC

import pytest

from otlp_bridge.expose.snapshot import snapshot
from otlp_bridge.series import (
    FamilyMeta,
    HistogramValue,
    Kind,
    Observation,
    Temporality,
    input_key,
)
from otlp_bridge.store.accumulator import Limits, Store
from otlp_bridge.store.history import History

COUNTER = FamilyMeta("c_total", Kind.COUNTER, "")
UPDOWN = FamilyMeta("u", Kind.GAUGE, "", monotonic=False)
GAUGE = FamilyMeta("g", Kind.GAUGE, "", monotonic=False)
HIST = FamilyMeta("h", Kind.HISTOGRAM, "")
D, C, L = Temporality.DELTA, Temporality.CUMULATIVE, Temporality.LAST_VALUE


def obs(meta: FamilyMeta, temporality: Temporality, start: int, time: int, value: float | HistogramValue,
        session: str = "s1", labels: tuple[tuple[str, str], ...] = ()) -> Observation:
    return Observation(meta, input_key(meta.name, (), (("session.id", session), *labels)), labels, temporality,
                       start, time, value)


def value(store: Store, meta: FamilyMeta, labels: tuple[tuple[str, str], ...] = ()) -> float:
    return store.families[meta.name].series[labels].value  # type: ignore[union-attr]


def test_delta_points_add() -> None:
    store = Store()
    store.apply([obs(COUNTER, D, 0, 10, 1.5), obs(COUNTER, D, 10, 20, 2.5)])
    assert value(store, COUNTER) == 4.0


def test_sparse_deltas_with_moving_start_times_never_reset() -> None:
    store = Store()
    # Claude Code: start = first recording in the interval, gaps between exports
    store.apply([obs(COUNTER, D, 100, 200, 5), obs(COUNTER, D, 900, 950, 1), obs(COUNTER, D, 5000, 5001, 2)])
    assert value(store, COUNTER) == 8


def test_delta_replay_is_not_applied_twice_even_after_later_points() -> None:
    store = Store()
    first = obs(COUNTER, D, 0, 10, 1)
    store.apply([first, obs(COUNTER, D, 10, 20, 1)])
    result = store.apply([obs(COUNTER, D, 0, 10, 1)])
    assert result.duplicates == 1
    assert value(store, COUNTER) == 2


def test_interleaved_deltas_of_one_attribute_set_are_not_mistaken_for_replays() -> None:
    store = Store()
    # two processes without session.id: same input series, overlapping windows
    store.apply([obs(COUNTER, D, 50, 100, 1), obs(COUNTER, D, 60, 99, 1)])
    assert value(store, COUNTER) == 2


def test_cumulative_is_differenced() -> None:
    store = Store()
    store.apply([obs(COUNTER, C, 1, 10, 3), obs(COUNTER, C, 1, 20, 3), obs(COUNTER, C, 1, 30, 7)])
    assert value(store, COUNTER) == 7


def test_cumulative_new_start_time_is_a_reset() -> None:
    store = Store()
    store.apply([obs(COUNTER, C, 1, 10, 5), obs(COUNTER, C, 15, 20, 2)])
    assert value(store, COUNTER) == 7


def test_cumulative_lower_value_is_a_reset() -> None:
    store = Store()
    store.apply([obs(COUNTER, C, 1, 10, 5), obs(COUNTER, C, 1, 20, 2)])
    assert value(store, COUNTER) == 7


def test_cumulative_replay_and_out_of_order_are_skipped() -> None:
    store = Store()
    store.apply([obs(COUNTER, C, 1, 10, 5), obs(COUNTER, C, 1, 20, 8)])
    result = store.apply([obs(COUNTER, C, 1, 20, 8), obs(COUNTER, C, 1, 10, 5)])
    assert result.duplicates == 2
    assert value(store, COUNTER) == 8


def test_dropped_labels_fold_sessions_without_loss() -> None:
    store = Store()
    store.apply([obs(COUNTER, D, 0, 10, 1, session="a"), obs(COUNTER, D, 0, 10, 2, session="b"),
                 obs(COUNTER, C, 0, 10, 4, session="c"), obs(COUNTER, C, 0, 20, 6, session="c")])
    assert value(store, COUNTER) == 9
    assert len(store.families["c_total"].series) == 1
    assert store.input_count == 3


def test_updown_cumulative_folds_to_sum_of_current_values() -> None:
    store = Store()
    store.apply([obs(UPDOWN, C, 0, 10, 5, session="a"), obs(UPDOWN, C, 0, 10, 3, session="b"),
                 obs(UPDOWN, C, 0, 20, 1, session="a")])
    assert value(store, UPDOWN) == 4


def test_updown_delta_adds_negative_changes() -> None:
    store = Store()
    store.apply([obs(UPDOWN, D, 0, 10, 5), obs(UPDOWN, D, 10, 20, -7)])
    assert value(store, UPDOWN) == -2


def test_gauge_is_last_value_and_ignores_older_points() -> None:
    store = Store()
    store.apply([obs(GAUGE, L, 0, 10, 5), obs(GAUGE, L, 0, 30, 9)])
    result = store.apply([obs(GAUGE, L, 0, 20, 1)])
    assert result.rejected["out_of_order"] == 1
    assert value(store, GAUGE) == 9


def test_negative_and_non_finite_counter_points_are_rejected() -> None:
    store = Store()
    result = store.apply([obs(COUNTER, D, 0, 10, -1), obs(COUNTER, D, 0, 11, float("nan")),
                          obs(COUNTER, D, 0, 12, float("inf")), obs(COUNTER, D, 0, 13, 2)])
    assert dict(result.rejected) == {"negative_delta": 1, "non_finite": 2}
    assert value(store, COUNTER) == 2


def test_kind_conflict_is_rejected_not_mixed() -> None:
    store = Store()
    store.apply([obs(COUNTER, D, 0, 10, 1)])
    result = store.apply([obs(FamilyMeta("c_total", Kind.GAUGE, ""), L, 0, 10, 1)])
    assert result.rejected["name_collision"] == 1


def test_decimal_deltas_sum_to_the_correctly_rounded_total() -> None:
    store = Store()
    store.apply([obs(COUNTER, D, i, i + 1, 0.1) for i in range(10)])
    assert value(store, COUNTER) == 1.0  # naive float addition gives 0.9999999999999999


def _hist(counts: tuple[int, ...], total: float) -> HistogramValue:
    return HistogramValue((1.0, 5.0), counts, sum(counts), total)


def test_histogram_delta_accumulates_buckets_count_and_sum() -> None:
    store = Store()
    store.apply([obs(HIST, D, 0, 10, _hist((1, 0, 2), 20.5)), obs(HIST, D, 10, 20, _hist((0, 3, 0), 9.0))])
    series = store.families["h"].series[()]
    assert series.counts == [1, 3, 2]  # type: ignore[union-attr]
    assert series.count == 6  # type: ignore[union-attr]
    assert series.sum.value == 29.5  # type: ignore[union-attr]


def test_histogram_cumulative_differences_and_resets() -> None:
    store = Store()
    store.apply([obs(HIST, C, 0, 10, _hist((1, 0, 0), 0.5)), obs(HIST, C, 0, 20, _hist((1, 2, 0), 6.5)),
                 obs(HIST, C, 30, 40, _hist((0, 0, 1), 10.0))])
    series = store.families["h"].series[()]
    assert series.counts == [1, 2, 1]  # type: ignore[union-attr]
    assert series.count == 4  # type: ignore[union-attr]
    assert series.sum.value == 16.5  # type: ignore[union-attr]


def test_histogram_with_other_bounds_is_rejected() -> None:
    store = Store()
    store.apply([obs(HIST, D, 0, 10, _hist((1, 0, 0), 0.5))])
    other = HistogramValue((2.0,), (1, 0), 1, 1.0)
    assert store.apply([obs(HIST, D, 10, 20, other)]).rejected["histogram_bounds_changed"] == 1


def test_version_moves_only_on_change() -> None:
    store = Store()
    store.apply([obs(COUNTER, D, 0, 10, 1)])
    version = store.version
    store.apply([obs(COUNTER, D, 0, 10, 1)])
    assert store.version == version


def test_an_addition_that_would_overflow_is_refused_and_the_total_stays_finite() -> None:
    store = Store()
    result = store.apply([obs(COUNTER, D, 0, 10, 1e308), obs(COUNTER, D, 10, 20, 1e308)])
    assert result.rejected == {"overflow": 1}
    assert value(store, COUNTER) == 1e308


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_non_finite_values_are_refused_everywhere(bad: float) -> None:
    store = Store()
    result = store.apply([obs(COUNTER, D, 0, 10, bad), obs(GAUGE, L, 0, 10, bad), obs(UPDOWN, C, 0, 10, bad)])
    assert result.rejected == {"non_finite": 3}
    assert store.series_count == 0


def test_a_staleness_marker_removes_a_gauge_series() -> None:
    store = Store()
    store.apply([obs(GAUGE, L, 0, 10, 3.0)])
    version = store.version
    store.apply([obs(GAUGE, L, 0, 20, None)])  # type: ignore[arg-type]
    assert store.series_count == 0
    assert store.version == version + 1


def test_the_version_moves_only_on_a_change_a_scrape_would_show() -> None:
    store = Store()
    store.apply([obs(COUNTER, D, 0, 10, 1.0), obs(GAUGE, L, 0, 10, 2.0)])
    version = store.version
    assert store.apply([obs(COUNTER, D, 0, 10, 1.0)]).duplicates == 1  # a replay
    store.apply([obs(GAUGE, L, 0, 20, 2.0)])  # the same value again (target_info every export)
    store.apply([obs(COUNTER, C, 5, 30, 0.0, session="s2")])  # another stream adding nothing yet
    assert store.version == version
    store.apply([obs(COUNTER, C, 5, 40, 2.0, session="s2")])
    assert store.version == version + 1


def test_points_ahead_of_the_clock_are_counted_and_filed_now() -> None:
    store = Store(clock=lambda: 1000.0)
    result = store.apply([obs(COUNTER, D, 0, 5000 * 10**9, 1.0), obs(COUNTER, D, 0, 1000 * 10**9 + 5, 1.0)])
    assert result.future == 1  # five nanoseconds of skew is not worth counting
    assert [a.time_ns for a in result.applied] == [1000 * 10**9, 1000 * 10**9]
    assert store.apply([obs(COUNTER, D, 0, 5000 * 10**9, 1.0)]).duplicates == 1  # a retry is still a replay


def test_the_number_of_families_is_capped() -> None:
    store = Store(Limits(max_families=2))
    names = [FamilyMeta(f"f{i}_total", Kind.COUNTER, "") for i in range(4)]
    result = store.apply([obs(meta, D, 0, 10, 1.0) for meta in names])
    assert result.rejected == {"family_limit": 2}
    assert sorted(store.families) == ["f0_total", "f1_total"]


def test_a_family_whose_series_are_all_gone_is_not_exposed() -> None:
    store = Store()
    store.apply([obs(GAUGE, L, 0, 10, 3.0), obs(COUNTER, D, 0, 10, 1.0)])
    store.apply([obs(GAUGE, L, 0, 20, None)])  # type: ignore[arg-type]
    assert [family.meta.name for family in asyncio.run(snapshot(store))] == ["c_total"]


def test_a_store_without_a_backing_keeps_no_dirty_rows_nor_log_and_bounds_its_inputs() -> None:
    store = Store(Limits(max_inputs_in_memory=100, input_ttl=0), history=History({COUNTER.name}, UTC))
    store.apply([obs(COUNTER, D, 0, 1, 1.0, session=f"s{i}") for i in range(1000)])
    assert value(store, COUNTER) == 1000.0
    assert store.history is not None
    assert store.history.size == 1
    assert not store.take_dirty()
    assert not store.has_log
    assert store.input_count == 1000
    store.expire()
    assert store.input_count == 100  # the most recently seen stay
