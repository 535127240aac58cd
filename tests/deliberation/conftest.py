"""Storage fixtures for deliberation tests: real SQLite per test, and PostgreSQL when it runs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from yishi.core.clock import set_clock
from yishi.core.db import create_all, make_engine

from .factories import Actors, Clock


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    """A new SQLite file from the models, or the session's migrated PostgreSQL schema (shared
    fixture from tests/conftest.py, emptied before the test)."""
    if request.param == "sqlite":
        eng = make_engine("sqlite:///" + str(tmp_path / "t.db"))
        create_all(eng)
        yield eng
        eng.dispose()
        return
    yield request.getfixturevalue("pg_clean_engine")


@pytest.fixture
def sqlite_engine(tmp_path) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    """SQLite only, for tests of logic that need a database but not both."""
    eng = make_engine("sqlite:///" + str(tmp_path / "t.db"))
    create_all(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as s:
        yield s


@pytest.fixture
def clock() -> Iterator[Clock]:
    c = Clock()
    set_clock(c)
    yield c
    set_clock(None)


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Iterator[None]:  # type: ignore[no-untyped-def]
    from yishi.core.config import get_settings

    monkeypatch.setenv("YISHI_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("YISHI_RESPONSIBILITY_PATH", raising=False)
    monkeypatch.setenv("YISHI_JOBS_IMMEDIATE", "true")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def who() -> type[Actors]:
    return Actors
