"""Fixtures for the knowledge tests: the shared policy corpus and one index built per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from yishi.core.config import Settings
from yishi.core.db import dispose_engines
from yishi.knowledge import service as knowledge_service

REPO = Path(__file__).resolve().parents[2]

# Small real files keep embedding time low on a 2-core machine.
SMALL_POLICY_FILES = (
    "城市居民委员会组织法(2018-12-29).md",
    "最高人民法院关于审理物业服务纠纷案件适用法律若干问题的解释(2020-12-29).md",
)


def shared_dir() -> Path:
    """The shared data folder: env YISHI_SHARED_DIR, else `shared` beside the repository."""
    env = os.environ.get("YISHI_SHARED_DIR")
    return Path(env) if env else REPO.parent / "shared"


def policy_dir() -> Path:
    return shared_dir() / "corpus" / "policy"


def policy_file(name: str) -> Path:
    path = policy_dir() / name
    if not path.is_file():
        pytest.skip(f"shared policy corpus not available: {path}")
    return path


def make_settings(data_dir: Path, *, samples: bool = False) -> Settings:
    return Settings(data_dir=data_dir, load_sample_knowledge=samples, environment="development")


@pytest.fixture(scope="session")
def ready_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """An index with the shipped samples and two small real policy files (built once)."""
    settings = make_settings(tmp_path_factory.mktemp("kb-session"), samples=True)
    knowledge_service.ensure_ready(settings)
    report = knowledge_service.ingest_paths(
        paths=[policy_file(n) for n in SMALL_POLICY_FILES], settings=settings
    )
    assert not report.errors, report.errors
    yield settings
    dispose_engines()


@pytest.fixture()
def fresh_settings(tmp_path: Path) -> Settings:
    """An empty data dir of its own (for tests that write)."""
    settings = make_settings(tmp_path / "data")
    knowledge_service.ensure_schema(settings)
    return settings
