"""Test factories: actors of each role and a settable clock."""

from __future__ import annotations

from typing import Any

from yishi.core.auth import Actor
from yishi.core.models import Role


class Clock:
    """A settable clock for SLA and overdue tests (no sleeping, no timed assertions)."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, *, hours: float = 0, minutes: float = 0) -> None:
        self.now += hours * 3600 + minutes * 60


class Actors:
    """Factories for callers of each role."""

    @staticmethod
    def resident(n: int = 1) -> Actor:
        return Actor(user_id=f"wechat_mp:o{n}", role=Role.resident, channel="wechat_mp")

    @staticmethod
    def staff(n: int = 1) -> Actor:
        return Actor(user_id=f"wecom:staff{n}", role=Role.staff, channel="wecom")

    @staticmethod
    def moderator(n: int = 1) -> Actor:
        return Actor(user_id=f"web:mod{n}", role=Role.moderator, channel="web")

    @staticmethod
    def admin() -> Actor:
        return Actor(user_id="web:admin", role=Role.admin, channel="web")


def pk(row: Any) -> int:
    """A stored row's primary key (fails the test if the row was never stored)."""
    assert row is not None and row.id is not None
    return int(row.id)
