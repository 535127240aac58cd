"""Storage fixtures for deliberation tests: real SQLite per test, and PostgreSQL when it runs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

from yishi.core.clock import set_clock
from yishi.core.db import create_all, make_engine

from .factories import Actors, Clock

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _postgres_available() -> bool:
    try:
        probe = make_engine(PG_URL)
        with probe.connect() as conn:
            conn.execute(text("select 1"))
        probe.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_engine() -> Iterator[Engine]:
    """A fresh schema on the machine's PostgreSQL for this test session, dropped afterwards."""
    if not _postgres_available():
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not reachable")
    schema = f"delib_{uuid.uuid4().hex[:10]}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(f"{PG_URL}?options=-csearch_path%3D{schema}")
    create_all(engine)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    """A migrated-from-models database: a new SQLite file, or the session's PostgreSQL schema."""
    if request.param == "sqlite":
        eng = make_engine("sqlite:///" + str(tmp_path / "t.db"))
        create_all(eng)
        yield eng
        eng.dispose()
        return
    eng = request.getfixturevalue("pg_engine")
    yield eng
    # DELETE beats TRUNCATE here: the tables are tiny and TRUNCATE costs a second per test.
    with eng.begin() as conn:
        for table in reversed(SQLModel.metadata.sorted_tables):
            conn.execute(table.delete())


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
