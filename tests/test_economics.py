"""Budget periods, rollover, burn rate and forecast, with an injected clock and hand-made numbers."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from otlp_bridge.derive.economics import ALL, Budget, Economics, budget_scope, period_bounds
from otlp_bridge.derive.pricing import PriceTable
from otlp_bridge.store.accumulator import Store
from otlp_bridge.translate.metrics import FamilyMeta, Kind, Observation, Temporality

BERLIN = ZoneInfo("Europe/Berlin")
COST = FamilyMeta("claude_code_cost_usage_USD_total", Kind.COUNTER, "cost")


class Clock:
    def __init__(self, moment: datetime) -> None:
        self.now = moment.timestamp()

    def __call__(self) -> float:
        return self.now


def _spend(store: Store, moment: datetime, usd: float, team: str = "platform", n: int = 0) -> None:
    ns = int(moment.timestamp() * 1e9)
    labels = (("job", "claude-code"), ("team", team))
    store.apply([Observation(COST, ("cost", team, n), labels, Temporality.DELTA, ns - 1, ns, usd)])


def _economics(clock: Clock, budgets: list[Budget]) -> tuple[Store, Economics]:
    store = Store(clock=clock)
    economics = Economics(store, PriceTable(), budgets, timezone="Europe/Berlin", burn_window_seconds=3600,
                          clock=clock)
    store.on_increase = economics.on_increase
    return store, economics


@pytest.mark.parametrize(("period", "moment", "start", "end"), [
    ("day", datetime(2026, 3, 29, 12, tzinfo=BERLIN), datetime(2026, 3, 29, tzinfo=BERLIN),
     datetime(2026, 3, 30, tzinfo=BERLIN)),  # the 23-hour DST day
    ("week", datetime(2026, 11, 22, 23, 59, tzinfo=BERLIN), datetime(2026, 11, 16, tzinfo=BERLIN),
     datetime(2026, 11, 23, tzinfo=BERLIN)),  # Sunday belongs to the week begun Monday
    ("month", datetime(2026, 12, 31, 23, 0, tzinfo=BERLIN), datetime(2026, 12, 1, tzinfo=BERLIN),
     datetime(2027, 1, 1, tzinfo=BERLIN)),
    ("month", datetime(2026, 2, 28, 9, tzinfo=BERLIN), datetime(2026, 2, 1, tzinfo=BERLIN),
     datetime(2026, 3, 1, tzinfo=BERLIN)),
])
def test_period_bounds(period: str, moment: datetime, start: datetime, end: datetime) -> None:
    assert period_bounds(period, moment) == (start, end)  # type: ignore[arg-type]


def test_month_rollover_at_local_midnight_keeps_each_period_exact() -> None:
    clock = Clock(datetime(2026, 1, 31, 23, 50, tzinfo=BERLIN))
    store, economics = _economics(clock, [Budget("team", "month", 100.0, (("team", "platform"),))])
    _spend(store, datetime(2026, 1, 31, 23, 30, tzinfo=BERLIN), 7.25, n=1)
    _spend(store, datetime(2026, 1, 31, 23, 45, tzinfo=BERLIN), 0.75, n=2)
    _spend(store, datetime(2026, 1, 31, 23, 40, tzinfo=BERLIN), 5.0, team="other", n=3)
    assert economics.spent(budget_scope("team"), "month") == 8.0
    assert economics.spent(ALL, "month") == 13.0
    clock.now = datetime(2026, 2, 1, 0, 10, tzinfo=BERLIN).timestamp()  # 23:10 UTC: still January in UTC
    assert economics.spent(budget_scope("team"), "month") == 0.0
    assert economics.spent(ALL, "day") == 0.0
    _spend(store, datetime(2026, 2, 1, 0, 5, tzinfo=BERLIN), 2.5, n=4)
    assert economics.spent(budget_scope("team"), "month") == 2.5
    # January's spend is still there for January
    assert economics.spent(budget_scope("team"), "month", datetime(2026, 1, 15, tzinfo=BERLIN)) == 8.0
    (status,) = economics.budget_status()
    assert status.period_start == datetime(2026, 2, 1, tzinfo=BERLIN)
    assert status.spent_usd == 2.5
    assert status.remaining_usd == 97.5
    assert status.used_ratio == 0.025


def test_late_export_counts_in_the_period_it_happened() -> None:
    clock = Clock(datetime(2026, 2, 1, 9, tzinfo=BERLIN))
    store, economics = _economics(clock, [Budget("all", "day", 10.0)])
    _spend(store, datetime(2026, 1, 31, 22, tzinfo=BERLIN), 4.0)  # arrives after midnight
    assert economics.spent(budget_scope("all"), "day") == 0.0
    assert economics.spent(budget_scope("all"), "day", datetime(2026, 1, 31, 12, tzinfo=BERLIN)) == 4.0
    assert economics.spent(ALL, "day", datetime(2026, 1, 31, 12, tzinfo=BERLIN)) == 4.0  # a budget named "all"


def test_burn_rate_forecast_and_exhaustion_by_hand() -> None:
    clock = Clock(datetime(2026, 11, 10, 12, 0, tzinfo=BERLIN))
    store, economics = _economics(clock, [Budget("month", "month", 100.0)])
    _spend(store, datetime(2026, 11, 2, 9, tzinfo=BERLIN), 40.0, n=1)  # outside the burn window
    _spend(store, datetime(2026, 11, 10, 11, 15, tzinfo=BERLIN), 1.5, n=2)
    _spend(store, datetime(2026, 11, 10, 11, 45, tzinfo=BERLIN), 0.5, n=3)
    (status,) = economics.budget_status()
    assert status.spent_usd == 42.0
    assert status.burn_usd_per_hour == 2.0  # 2 USD in the last hour
    now = economics.now()
    hours_left = (datetime(2026, 12, 1, tzinfo=BERLIN) - now).total_seconds() / 3600  # 20 days 12 hours
    assert hours_left == 492.0
    assert status.forecast_usd(now) == 42.0 + 2.0 * 492.0
    assert status.exhausted_at(now) == datetime(2026, 11, 11, 17, 0, tzinfo=BERLIN)  # 58 USD at 2/h = 29 h


def test_no_burn_means_no_exhaustion_and_forecast_equals_spend() -> None:
    clock = Clock(datetime(2026, 11, 10, 12, 0, tzinfo=BERLIN))
    store, economics = _economics(clock, [Budget("month", "month", 10.0)])
    _spend(store, datetime(2026, 11, 1, 12, tzinfo=BERLIN), 12.0)
    (status,) = economics.budget_status()
    assert status.forecast_usd(economics.now()) == 12.0
    assert status.exhausted_at(economics.now()) is None
    assert status.remaining_usd == -2.0


def test_cumulative_cost_counts_its_increases_not_its_values() -> None:
    clock = Clock(datetime(2026, 11, 10, 12, 0, tzinfo=BERLIN))
    store, economics = _economics(clock, [])
    labels = (("job", "claude-code"),)
    for i, value in enumerate((1.0, 1.0, 3.0, 3.5)):
        ns = int(datetime(2026, 11, 10, 11, i, tzinfo=BERLIN).timestamp() * 1e9)
        store.apply([Observation(COST, ("cum",), labels, Temporality.CUMULATIVE, 1, ns, value)])
    assert economics.spent(ALL, "day") == 3.5
    assert store.value(COST.name, labels) == 3.5
