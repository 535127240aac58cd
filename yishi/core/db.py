"""Database: one SQLModel engine per URL, sessions, and schema set-up through Alembic."""

from __future__ import annotations

import fcntl
import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, create_engine

from yishi.core.config import Settings, get_settings

# Every module that defines tables; imported before create_all / Alembic autogenerate.
MODEL_MODULES = (
    "yishi.core.models",
    "yishi.bot.models",
    "yishi.bot.memory_models",
    "yishi.bot.channel_models",
    "yishi.knowledge.models",
    "yishi.moderation.models",
    "yishi.deliberation.models",
    "yishi.privacy.models",
)

_engines: dict[str, Engine] = {}


def import_all_models() -> None:
    """Import every domain's tables so that SQLModel.metadata knows them."""
    for name in MODEL_MODULES:
        importlib.import_module(name)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Deleted rows are overwritten with zeros, so an erased resident's text leaves the file.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    """A new engine for `url` (SQLite gets WAL and a busy timeout so several processes share it)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # hide_parameters: a failed statement's message (which ends up in logs) carries no
    # resident's text or identity.
    return create_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=20, hide_parameters=True
    )


def get_engine(settings: Settings | None = None) -> Engine:
    """The process-wide engine for the configured database URL."""
    url = (settings or get_settings()).resolved_database_url
    engine = _engines.get(url)
    if engine is None:
        engine = _engines[url] = make_engine(url)
    return engine


def dispose_engines() -> None:
    """Close every engine (tests, after fork)."""
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()


@contextmanager
def session_scope(settings: Settings | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(get_engine(settings), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def get_session() -> Iterator[Session]:
    """FastAPI dependency: one session per request."""
    with Session(get_engine(), expire_on_commit=False) as session:
        yield session


def ping(settings: Settings | None = None) -> str | None:
    """None when the database answers `SELECT 1`; otherwise the error's name."""
    from sqlalchemy import text

    try:
        with get_engine(settings).connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return type(exc).__name__
    return None


def alembic_config(url: str) -> Any:
    """An Alembic config pointing at the packaged migrations and `url`."""
    from alembic.config import Config

    here = Path(__file__).resolve().parent.parent
    cfg = Config()
    cfg.set_main_option("script_location", str(here / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def init_db(settings: Settings | None = None) -> None:
    """Bring the schema to the newest migration (idempotent; safe from several processes)."""
    from alembic import command

    settings = settings or get_settings()
    data_dir = settings.ensure_data_dir()
    import_all_models()
    # Processes on one machine (API + worker starting together) migrate one at a time.
    with open(data_dir / ".migrate.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        command.upgrade(alembic_config(settings.resolved_database_url), "head")


def create_all(engine: Engine) -> None:
    """Create tables straight from the models (unit tests of logic only; the app uses Alembic)."""
    import_all_models()
    SQLModel.metadata.create_all(engine)
