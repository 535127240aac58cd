"""Fixtures for moderation tests: a real SQLite database per test and a fresh screener."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session

from yishi.core.auth import Actor
from yishi.core.db import create_all, make_engine
from yishi.core.models import Role
from yishi.moderation import service


@pytest.fixture()
def session(tmp_path: Path) -> Iterator[Session]:
    engine = make_engine("sqlite:///" + str(tmp_path / "t.db"))
    create_all(engine)
    with Session(engine, expire_on_commit=False) as s:
        yield s
    engine.dispose()


@pytest.fixture(autouse=True)
def fresh_screener() -> Iterator[None]:
    service.reset()
    service.set_judge(None)
    yield
    service.reset()
    service.set_judge(None)


@pytest.fixture()
def moderator() -> Actor:
    return Actor(user_id="web:mod1", role=Role.moderator, display_name="审核员")


@pytest.fixture()
def resident() -> Actor:
    return Actor(user_id="wechat_mp:oRES1", role=Role.resident)
