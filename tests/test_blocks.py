"""Plan windows: block boundaries, time left, burn rate and projection with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from otlp_bridge.derive.blocks import BLOCK_HOURS, WEEK_HOURS, HourActivity, current_window, windows
from otlp_bridge.store.history import local_hour


def at(text: str, tz: str = "UTC") -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz))


def activity(*spend: tuple[datetime, float]) -> dict[int, HourActivity]:
    """Hourly history as the store files it: spend at a moment lands in its local hour."""
    hours: dict[int, HourActivity] = {}
    for moment, usd in spend:
        hour = hours.setdefault(local_hour(moment.timestamp(), moment.tzinfo or UTC), HourActivity())
        hour.cost_usd += usd
        hour.tokens += usd * 1000
        hour.requests += 1
    return hours


def test_a_block_starts_at_the_floored_hour_of_its_first_activity() -> None:
    hours = activity((at("2026-11-23T10:55:30"), 1.0), (at("2026-11-23T14:59:59"), 2.0))
    now = at("2026-11-23T14:59:59")
    block = current_window("5h", "u", hours, BLOCK_HOURS, now)
    assert block is not None
    assert (block.start, block.end) == (at("2026-11-23T10:00"), at("2026-11-23T15:00"))
    assert (block.cost_usd, block.tokens, block.requests) == (3.0, 3000.0, 2)
    assert block.hours_left(now) == pytest.approx(1 / 3600)
    assert block.burn_rate_usd_per_hour(now) == pytest.approx(3.0 / (5 - 1 / 3600))
    assert block.projected_usd(now) == pytest.approx(3.0 + block.burn_rate_usd_per_hour(now) / 3600)


def test_activity_at_the_end_opens_the_next_block_and_never_extends_the_old_one() -> None:
    hours = activity((at("2026-11-23T10:55"), 1.0), (at("2026-11-23T15:00"), 4.0), (at("2026-11-23T19:59"), 1.0))
    assert windows(hours, BLOCK_HOURS) == [
        (local_hour(at("2026-11-23T10:00").timestamp(), UTC), local_hour(at("2026-11-23T15:00").timestamp(), UTC)),
        (local_hour(at("2026-11-23T15:00").timestamp(), UTC), local_hour(at("2026-11-23T20:00").timestamp(), UTC)),
    ]
    block = current_window("5h", "u", hours, BLOCK_HOURS, at("2026-11-23T19:59:30"))
    assert block is not None
    assert (block.start, block.cost_usd) == (at("2026-11-23T15:00"), 5.0)


def test_no_block_once_the_last_one_ended() -> None:
    hours = activity((at("2026-11-23T10:05"), 1.0))
    assert current_window("5h", "u", hours, BLOCK_HOURS, at("2026-11-23T14:59:59")) is not None
    assert current_window("5h", "u", hours, BLOCK_HOURS, at("2026-11-23T15:00")) is None
    # a gap: the next activity starts a block of its own, floored to its hour
    hours.update(activity((at("2026-11-23T22:30"), 2.0)))
    block = current_window("5h", "u", hours, BLOCK_HOURS, at("2026-11-23T23:00"))
    assert block is not None
    assert (block.start, block.end, block.cost_usd) == (at("2026-11-23T22:00"), at("2026-11-24T03:00"), 2.0)


def test_activity_after_now_is_not_in_the_current_block() -> None:
    hours = activity((at("2026-11-23T10:05"), 1.0), (at("2026-11-23T12:10"), 7.0))
    block = current_window("5h", "u", hours, BLOCK_HOURS, at("2026-11-23T11:00"))
    assert block is not None
    assert block.cost_usd == 1.0  # what a clock at 11:00 cannot have seen yet is not in it


def test_weekly_window() -> None:
    first = at("2026-11-23T09:10")
    hours = activity((first, 1.0), (first + timedelta(days=6, hours=23), 2.0), (first + timedelta(days=7), 4.0))
    week = current_window("week", "u", hours, WEEK_HOURS, first + timedelta(days=6, hours=23, minutes=30))
    assert week is not None
    assert (week.start, week.end, week.cost_usd) == (at("2026-11-23T09:00"), at("2026-11-30T09:00"), 3.0)
    week = current_window("week", "u", hours, WEEK_HOURS, first + timedelta(days=7, minutes=5))
    assert week is not None
    assert (week.start, week.cost_usd) == (at("2026-11-30T09:00"), 4.0)


@pytest.mark.parametrize("tz", ["Europe/Berlin", "Asia/Kolkata", "America/St_Johns"])
def test_blocks_floor_to_the_local_hour(tz: str) -> None:
    hours = activity((at("2026-11-23T10:55", tz), 1.0))
    block = current_window("5h", "u", hours, BLOCK_HOURS, at("2026-11-23T11:00", tz))
    assert block is not None
    assert (block.start, block.end) == (at("2026-11-23T10:00", tz), at("2026-11-23T15:00", tz))
    assert block.hours_left(at("2026-11-23T11:00", tz)) == 4.0
