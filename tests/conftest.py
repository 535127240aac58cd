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


BACKENDS = ("sqlite", "postgres")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sqlite_only: a pure-logic test that `yishi_env` runs on SQLite only"
    )
    config.addinivalue_line(
        "markers", "drill: a fault drill on PostgreSQL + Redis with real processes (.ci/run)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The drills run only when asked for (`-m drill`): they take minutes, not seconds."""
    if "drill" in (config.getoption("-m") or ""):
        return
    kept = [item for item in items if item.get_closest_marker("drill") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test on `yishi_env` runs twice: on SQLite, and on PostgreSQL + Redis.

    `YISHI_TEST_BACKENDS=sqlite` (or `postgres`) narrows the run; a module or test marked
    `sqlite_only` (pure logic that merely needs a data dir) runs on SQLite alone.
    """
    if "backend" not in metafunc.fixturenames or "backend" in _direct_params(metafunc):
        return
    if {"pg_env", "any_db_env"} & set(metafunc.fixturenames):
        return  # those choose their backend themselves
    wanted = os.environ.get("YISHI_TEST_BACKENDS", ",".join(BACKENDS)).split(",")
    backends = [b for b in BACKENDS if b in wanted]
    if metafunc.definition.get_closest_marker("sqlite_only"):
        backends = ["sqlite"]
    metafunc.parametrize("backend", backends, indirect=True)


def _direct_params(metafunc: pytest.Metafunc) -> set[str]:
    marks = metafunc.definition.iter_markers("parametrize")
    return {name.strip() for m in marks for name in str(m.args[0]).split(",")}


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The storage backend of this test run: "sqlite", or "postgres" (with Redis)."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest) -> str | None:
    """None on the "sqlite" backend (the data dir's file); the session's PostgreSQL schema,
    emptied first, on "postgres" — for tests that build their own `Settings`."""
    if backend != "postgres":
        return None
    request.getfixturevalue("pg_clean_engine")
    return str(request.getfixturevalue("pg_schema_url"))


def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in _YISHI_VARS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("YISHI_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("YISHI_ENVIRONMENT", "test")


@pytest.fixture
def yishi_env(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    backend: str,
    request: pytest.FixtureRequest,
) -> Iterator[Settings]:
    """A fresh data dir (jobs, index) for one test; settings read from the environment.

    On the "sqlite" backend the database is a SQLite file in the data dir; on "postgres" it is
    the session's PostgreSQL schema (emptied first) and Redis is configured (flushed first).
    """
    _isolated_env(tmp_path, monkeypatch)
    if backend == "postgres":
        monkeypatch.setenv("YISHI_DATABASE_URL", request.getfixturevalue("pg_schema_url"))
        request.getfixturevalue("pg_clean_engine")
        monkeypatch.setenv("YISHI_REDIS_URL", request.getfixturevalue("redis_url"))
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
    a second per test) and its identities restarted."""
    from sqlmodel import SQLModel

    with pg_engine.begin() as conn:
        # The audit log's append-only trigger refuses DELETE; only this fixture may bypass it.
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        for table in reversed(SQLModel.metadata.sorted_tables):
            conn.execute(table.delete())
        # Identities restart at 1, as on a fresh SQLite file (setval is cheap; TRUNCATE is not).
        conn.execute(
            text(
                "SELECT setval(format('%I.%I', n.nspname, s.relname)::regclass, 1, false)"
                " FROM pg_class s JOIN pg_namespace n ON n.oid = s.relnamespace"
                " WHERE s.relkind = 'S' AND n.nspname = current_schema()"
            )
        )
    return pg_engine


@pytest.fixture
def pg_env(
    tmp_path: Path, pg_schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """Like `yishi_env` but always on PostgreSQL (a schema shared by the session, emptied and
    with identities reset per test); Redis is left to the test (`redis_url`)."""
    _isolated_env(tmp_path, monkeypatch)
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


@pytest.fixture(params=BACKENDS)
def any_db_env(request: pytest.FixtureRequest) -> Settings:
    """Runs a storage test twice: on SQLite and on the machine's PostgreSQL (migrated)."""
    if request.param == "sqlite":
        tmp_path: Path = request.getfixturevalue("tmp_path")
        _isolated_env(tmp_path, request.getfixturevalue("monkeypatch"))
        _reset_process_state()
        request.addfinalizer(_reset_process_state)
        settings = get_settings()
        from yishi.core.db import init_db

        init_db(settings)
        return settings
    return request.getfixturevalue("pg_env")


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The machine's Redis (`YISHI_TEST_REDIS_URL`, default database 15), flushed before and
    after the test."""
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
