"""Shared fixtures: an isolated data dir per test, real SQLite, and the machine's PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from yishi.core import clock
from yishi.core.config import Settings, get_settings
from yishi.core.db import dispose_engines

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("YISHI_SHARED_DIR", REPO.parent / "shared")).resolve()
PG_ADMIN_URL = os.environ.get(
    "YISHI_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("YISHI_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

_YISHI_VARS = [k for k in os.environ if k.startswith("YISHI_") and k != "YISHI_SHARED_DIR"]


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared evaluation data beside the repository (read-only)."""
    if not SHARED.is_dir():
        pytest.fail(f"shared data not found at {SHARED}; set YISHI_SHARED_DIR")
    return SHARED


def _reset_process_state() -> None:
    get_settings.cache_clear()
    dispose_engines()
    clock.set_clock(None)
    try:
        from yishi.bot import pipeline

        pipeline.reset_caches()
    except ImportError:
        pass


@pytest.fixture
def yishi_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A fresh data dir (SQLite, jobs, index) for one test; settings read from the environment."""
    for key in _YISHI_VARS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("YISHI_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("YISHI_ENVIRONMENT", "test")
    _reset_process_state()
    yield get_settings()
    _reset_process_state()


def _pg_available() -> bool:
    try:
        engine = create_engine(PG_ADMIN_URL)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_schema_url() -> Iterator[str]:
    """A URL on the machine's PostgreSQL (database `test`) with a fresh schema for this session."""
    if not _pg_available():
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: start it (see README)")
    schema = f"yishi_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_ADMIN_URL else "?"
    yield f"{PG_ADMIN_URL}{sep}options=-csearch_path%3D{schema}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(scope="session")
def pg_engine(pg_schema_url: str) -> Iterator[Engine]:
    """An engine on the session's PostgreSQL schema, migrated to the newest revision."""
    from alembic import command

    from yishi.core.db import alembic_config, import_all_models, make_engine

    import_all_models()
    command.upgrade(alembic_config(pg_schema_url), "head")
    engine = make_engine(pg_schema_url)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_clean_engine(pg_engine: Engine) -> Engine:
    """`pg_engine` with every table emptied first (by DELETE: on tiny tables TRUNCATE costs about
    a second per test); identities are not reset."""
    from sqlmodel import SQLModel

    with pg_engine.begin() as conn:
        # The audit log's append-only trigger refuses DELETE; only this fixture may bypass it.
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        for table in reversed(SQLModel.metadata.sorted_tables):
            conn.execute(table.delete())
    return pg_engine


@pytest.fixture
def pg_env(
    yishi_env: Settings, pg_schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """Like `yishi_env` but on PostgreSQL (a schema shared by the session, emptied per test)."""
    monkeypatch.setenv("YISHI_DATABASE_URL", pg_schema_url)
    _reset_process_state()
    settings = get_settings()
    from yishi.core.db import init_db

    init_db(settings)
    _truncate_all(pg_schema_url)
    yield settings
    _reset_process_state()


def _truncate_all(url: str) -> None:
    from sqlmodel import SQLModel

    from yishi.core.db import import_all_models

    import_all_models()
    engine = create_engine(url)
    names = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def any_db_env(request: pytest.FixtureRequest) -> Settings:
    """Runs a storage test twice: on SQLite and on the machine's PostgreSQL."""
    if request.param == "sqlite":
        settings: Settings = request.getfixturevalue("yishi_env")
        from yishi.core.db import init_db

        init_db(settings)
        return settings
    return request.getfixturevalue("pg_env")


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The machine's Redis (database 15), flushed before and after the test."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except Exception:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}: start it (see README)")
    client.flushdb()
    yield REDIS_URL
    client.flushdb()
    client.close()
