"""Time in one place: naive UTC datetimes in the database, an injectable clock for tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

_now: Callable[[], float] = time.time

# China keeps UTC+8 all year; a fixed offset needs no tz database on the server.
BEIJING = timezone(timedelta(hours=8), "CST")
RESIDENT_FORMAT = "%m月%d日 %H:%M"  # what residents read: '11月30日 15:00'
COMPACT_FORMAT = "%m-%d %H:%M"  # staff lists and tables: '11-30 15:00'


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


def from_local(moment: datetime) -> datetime:
    """A Beijing-time wall-clock datetime (as staff type it) as the naive UTC that tables store."""
    return moment.replace(tzinfo=BEIJING).astimezone(UTC).replace(tzinfo=None)


def local_time(moment: datetime, fmt: str = RESIDENT_FORMAT) -> str:
    """A stored naive-UTC datetime in Beijing time, formatted with `fmt`."""
    return moment.replace(tzinfo=UTC).astimezone(BEIJING).strftime(fmt)
