"""Budgets, periods, rollover, burn rate and forecast as queries over the store's history,
with an injected clock and hand-made numbers."""

from __future__ import annotations

from datetime import datetime

import pytest

from otlp_bridge.derive.economics import Budget, Economics, period_bounds
from otlp_bridge.derive.pricing import PriceTable
from otlp_bridge.store.accumulator import Limits, Store
from tests.builders import BERLIN, COST_FAMILY, Clock, cumulative, delta, store_for

TEAM = (("job", "claude-code"), ("team", "platform"))
OTHER = (("job", "claude-code"), ("team", "other"))


def _spend(store: Store, moment: datetime, usd: float, labels: tuple[tuple[str, str], ...] = TEAM,
           n: int = 0) -> None:
    assert store.apply([delta(COST_FAMILY, labels, usd, moment, stream=(labels, n))]).accepted == 1


def _economics(store: Store, clock: Clock, budgets: list[Budget]) -> Economics:
    return Economics(store, PriceTable(), budgets, timezone="Europe/Berlin", burn_window_seconds=3600, clock=clock)


@pytest.mark.parametrize(("period", "moment", "start", "end"), [
    ("day", datetime(2026, 3, 29, 12, tzinfo=BERLIN), datetime(2026, 3, 29, tzinfo=BERLIN),
     datetime(2026, 3, 30, tzinfo=BERLIN)),  # the 23-hour DST day
    ("week", datetime(2026, 11, 22, 23, 59, tzinfo=BERLIN), datetime(2026, 11, 16, tzinfo=BERLIN),
     datetime(2026, 11, 23, tzinfo=BERLIN)),  # Sunday belongs to the week begun Monday
    ("month", datetime(2026, 12, 31, 23, 0, tzinfo=BERLIN), datetime(2026, 12, 1, tzinfo=BERLIN),
     datetime(2027, 1, 1, tzinfo=BERLIN)),
    ("month", datetime(2026, 2, 28, 9, tzinfo=BERLIN), datetime(2026, 2, 1, tzinfo=BERLIN),
     datetime(2026, 3, 1, tzinfo=BERLIN)),
    ("5h", datetime(2026, 2, 28, 9, 40, tzinfo=BERLIN), datetime(2026, 2, 28, 5, tzinfo=BERLIN),
     datetime(2026, 2, 28, 10, tzinfo=BERLIN)),  # rolling: this hour and the four before it
])
def test_period_bounds(period: str, moment: datetime, start: datetime, end: datetime) -> None:
    assert period_bounds(period, moment) == (start, end)  # type: ignore[arg-type]


def test_month_rollover_at_local_midnight_keeps_each_period_exact() -> None:
    clock = Clock(datetime(2026, 1, 31, 23, 50, tzinfo=BERLIN))
    store = store_for(clock, "Europe/Berlin")
    economics = _economics(store, clock, [Budget("team", "month", 100.0, (("team", "platform"),))])
    _spend(store, datetime(2026, 1, 31, 23, 30, tzinfo=BERLIN), 7.25, n=1)
    _spend(store, datetime(2026, 1, 31, 23, 45, tzinfo=BERLIN), 0.75, n=2)
    _spend(store, datetime(2026, 1, 31, 23, 40, tzinfo=BERLIN), 5.0, OTHER, n=3)
    assert economics.spent("month", match={"team": "platform"}) == 8.0
    assert economics.spent("month") == 13.0
    clock.advance(20 * 60)  # 00:10 Berlin, 23:10 UTC: still January in UTC
    assert economics.spent("month", match={"team": "platform"}) == 0.0
    assert economics.spent("day") == 0.0
    _spend(store, datetime(2026, 2, 1, 0, 5, tzinfo=BERLIN), 2.5, n=4)
    assert economics.spent("month", match={"team": "platform"}) == 2.5
    # January's spend is still there for January
    assert economics.spent("month", datetime(2026, 1, 15, tzinfo=BERLIN), {"team": "platform"}) == 8.0
    (status,) = economics.budget_status()
    assert status.period_start == datetime(2026, 2, 1, tzinfo=BERLIN)
    assert (status.spent_usd, status.remaining_usd, status.used_ratio) == (2.5, 97.5, 0.025)


def test_half_hour_timezone_periods_begin_at_local_midnight() -> None:
    clock = Clock(datetime(2026, 11, 10, 0, 20, tzinfo=BERLIN))
    store = store_for(clock, "Asia/Kolkata")
    economics = Economics(store, PriceTable(), [], timezone="Asia/Kolkata", clock=clock)
    kolkata = economics.tz
    _spend(store, datetime(2026, 11, 9, 23, 50, tzinfo=kolkata), 1.0, n=1)  # 18:20 UTC the day before
    _spend(store, datetime(2026, 11, 10, 0, 10, tzinfo=kolkata), 2.0, n=2)  # 18:40 UTC
    assert economics.spent("day", datetime(2026, 11, 10, 12, tzinfo=kolkata)) == 2.0
    assert economics.spent("day", datetime(2026, 11, 9, 12, tzinfo=kolkata)) == 1.0


def test_a_budget_added_or_renamed_later_is_exact_for_what_is_held() -> None:
    clock = Clock(datetime(2026, 11, 20, 18, 0, tzinfo=BERLIN))
    store = store_for(clock, "Europe/Berlin")
    _spend(store, datetime(2026, 11, 3, 10, tzinfo=BERLIN), 4.0, n=1)
    _spend(store, datetime(2026, 11, 20, 17, tzinfo=BERLIN), 1.5, n=2)
    _spend(store, datetime(2026, 11, 20, 17, 30, tzinfo=BERLIN), 9.0, OTHER, n=3)
    _spend(store, datetime(2026, 10, 31, 23, tzinfo=BERLIN), 100.0, n=4)  # last month
    later = _economics(store, clock, [
        Budget("platform-renamed", "month", 10.0, (("team", "platform"),)),
        Budget("platform-today", "day", 1.0, (("team", "platform"),)),
        Budget("everyone-week", "week", 50.0),
        Budget("platform-5h", "5h", 5.0, (("team", "platform"),)),
    ])
    spent = {s.name: s.spent_usd for s in later.budget_status()}
    assert spent == {"platform-renamed": 5.5, "platform-today": 1.5, "everyone-week": 10.5, "platform-5h": 1.5}


def test_burn_rate_forecast_and_exhaustion_by_hand() -> None:
    clock = Clock(datetime(2026, 11, 10, 12, 0, tzinfo=BERLIN))
    store = store_for(clock, "Europe/Berlin")
    economics = _economics(store, clock, [Budget("month", "month", 100.0)])
    _spend(store, datetime(2026, 11, 2, 9, tzinfo=BERLIN), 40.0, n=1)  # outside the burn window
    _spend(store, datetime(2026, 11, 10, 11, 15, tzinfo=BERLIN), 1.5, n=2)
    _spend(store, datetime(2026, 11, 10, 11, 45, tzinfo=BERLIN), 0.5, n=3)
    (status,) = economics.budget_status()
    assert status.spent_usd == 42.0
    assert status.burn_usd_per_hour == 2.0  # 2 USD since 11:00 (the hour one window ago), 1 h ago
    now = economics.now()
    hours_left = (datetime(2026, 12, 1, tzinfo=BERLIN) - now).total_seconds() / 3600  # 20 days 12 hours
    assert hours_left == 492.0
    assert status.forecast_usd(now) == 42.0 + 2.0 * 492.0
    assert status.exhausted_at(now) == datetime(2026, 11, 11, 17, 0, tzinfo=BERLIN)  # 58 USD at 2/h = 29 h
    clock.advance(30 * 60)  # 12:30: the window now reaches back to 11:00, 1.5 h
    (status,) = economics.budget_status()
    assert status.burn_usd_per_hour == pytest.approx(2.0 / 1.5)


def test_runs_out_only_within_the_period() -> None:
    clock = Clock(datetime(2026, 11, 30, 12, 0, tzinfo=BERLIN))
    store = store_for(clock, "Europe/Berlin")
    economics = _economics(store, clock, [Budget("month", "month", 100.0)])
    _spend(store, datetime(2026, 11, 30, 11, 30, tzinfo=BERLIN), 1.0)  # 50 more hours of this to reach it
    (status,) = economics.budget_status()
    assert status.exhausted_at(economics.now()) is None


def test_no_burn_means_no_exhaustion_and_forecast_equals_spend() -> None:
    clock = Clock(datetime(2026, 11, 10, 12, 0, tzinfo=BERLIN))
    store = store_for(clock, "Europe/Berlin")
    economics = _economics(store, clock, [Budget("month", "month", 10.0)])
    _spend(store, datetime(2026, 11, 1, 12, tzinfo=BERLIN), 12.0)
    (status,) = economics.budget_status()
    assert status.forecast_usd(economics.now()) == 12.0
    assert status.exhausted_at(economics.now()) is None
    assert status.remaining_usd == -2.0


def test_cumulative_cost_counts_its_increases_not_its_values() -> None:
    clock = Clock(datetime(2026, 11, 10, 12, 0, tzinfo=BERLIN))
    store = store_for(clock, "Europe/Berlin")
    economics = _economics(store, clock, [])
    start = datetime(2026, 11, 10, 10, 59, tzinfo=BERLIN)
    for i, value in enumerate((1.0, 1.0, 3.0, 3.5)):
        store.apply([cumulative(COST_FAMILY, TEAM, value, datetime(2026, 11, 10, 11, i, tzinfo=BERLIN), start)])
    assert economics.spent("day") == 3.5
    assert store.value(COST_FAMILY.name, TEAM) == 3.5


def test_future_stamped_spend_is_filed_now_and_cannot_inflate_the_burn_rate() -> None:
    clock = Clock(datetime(2026, 11, 10, 12, 0, tzinfo=BERLIN))
    store = store_for(clock, "Europe/Berlin")
    economics = _economics(store, clock, [Budget("month", "month", 100.0)])
    result = store.apply([delta(COST_FAMILY, TEAM, 3.0, datetime(2026, 11, 12, 9, tzinfo=BERLIN))])
    assert result.future == 1
    assert economics.spent("day") == 3.0  # today, not the day after tomorrow
    (status,) = economics.budget_status()
    assert status.burn_usd_per_hour == 3.0  # since 11:00, one hour


def test_spend_stays_exact_when_the_series_cap_is_reached_as_a_new_period_starts() -> None:
    clock = Clock(datetime(2026, 11, 30, 23, 30, tzinfo=BERLIN))
    store = store_for(clock, "Europe/Berlin", Limits(max_series=1))
    economics = _economics(store, clock, [Budget("month", "month", 100.0)])
    _spend(store, datetime(2026, 11, 30, 23, 0, tzinfo=BERLIN), 2.0, n=1)
    clock.advance(3600)  # December begins; the series cap is full
    _spend(store, datetime(2026, 12, 1, 0, 15, tzinfo=BERLIN), 0.25, n=2)  # the existing series takes it
    refused = store.apply([delta(COST_FAMILY, OTHER, 7.0, datetime(2026, 12, 1, 0, 20, tzinfo=BERLIN))])
    assert refused.rejected == {"series_limit": 1}  # counted and answered as refused, never silently lost
    assert economics.spent("month") == 0.25
    assert economics.spent("month", datetime(2026, 11, 15, tzinfo=BERLIN)) == 2.0
