"""Times: stored as naive UTC, shown and typed in Beijing time."""

from __future__ import annotations

from datetime import datetime

from yishi.core.clock import COMPACT_FORMAT, from_local, local_time, set_clock, utcnow


def test_beijing_time_round_trip() -> None:
    stored = datetime(2026, 11, 30, 16, 30)  # naive UTC
    assert local_time(stored) == "12月01日 00:30"
    assert local_time(stored, COMPACT_FORMAT) == "12-01 00:30"
    assert from_local(datetime(2026, 12, 1, 0, 30)) == stored


def test_the_clock_can_be_replaced_and_restored() -> None:
    set_clock(lambda: 0.0)
    try:
        assert utcnow() == datetime(1970, 1, 1)
    finally:
        set_clock(None)
    assert utcnow().year >= 2026
