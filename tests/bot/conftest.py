"""Fixtures shared by the bot tests: a real SQLite session, the fake knowledge base, the fake
WeChat API server."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest
from sqlmodel import Session

import yishi.bot.memory_models  # noqa: F401  (tables for create_all)
from tests.bot.scenarios.support import install_fake_knowledge
from tests.fakes.wechat_server import FakeWeChatServer
from yishi.core.config import Settings
from yishi.core.db import create_all, make_engine


@pytest.fixture
def session(yishi_env: Settings) -> Iterator[Session]:
    """A session on a fresh SQLite file with every table."""
    engine = make_engine(yishi_env.resolved_database_url)
    create_all(engine)
    with Session(engine, expire_on_commit=False) as s:
        yield s
    engine.dispose()


@pytest.fixture
def knowledge(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The knowledge service replaced by a small in-process fake (unit tests of engine logic)."""
    return install_fake_knowledge(monkeypatch)


@pytest.fixture
def wx() -> Iterator[FakeWeChatServer]:
    """A local server that speaks the WeChat / WeCom APIs (the real clients talk to it)."""
    with FakeWeChatServer() as server:
        yield server
