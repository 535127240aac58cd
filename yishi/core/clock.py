"""Time in one place: naive UTC datetimes in the database, an injectable clock for tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

_now: Callable[[], float] = time.time


def utcnow() -> datetime:
    """The current time as a naive UTC datetime (what every table stores)."""
    return datetime.fromtimestamp(_now(), UTC).replace(tzinfo=None)


def timestamp() -> float:
    """Seconds since the epoch from the current clock."""
    return _now()


def set_clock(fn: Callable[[], float] | None) -> None:
    """Replace the clock (tests); `None` restores the system clock."""
    global _now
    _now = fn or time.time
