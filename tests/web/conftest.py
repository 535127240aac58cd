"""Console fixtures: the real app on a tmp SQLite database, users with tokens, a login helper."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from yishi.api import create_app
from yishi.core import auth as auth_service
from yishi.core.config import Settings
from yishi.core.db import get_engine, init_db, session_scope
from yishi.core.models import Role

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once per session; each test starts from a copy of it."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("template"), environment="test")
    init_db(settings)
    engine = get_engine(settings)
    engine.dispose()
    return settings.data_dir / "yishi.db"


@pytest.fixture
def client(yishi_env: Settings, migrated_db: Path) -> Iterator[TestClient]:
    """A TestClient on a fresh app; redirects are not followed so tests can check them."""
    yishi_env.ensure_data_dir()
    shutil.copyfile(migrated_db, yishi_env.data_dir / "yishi.db")
    app = create_app(yishi_env, run_worker=False, warm_knowledge=False)
    with TestClient(app, follow_redirects=False) as c:
        yield c


@pytest.fixture
def make_token(yishi_env: Settings) -> Callable[..., str]:
    """Create a user with a role and return a bearer token for them."""

    def make(role: Role, name: str = "", external_id: str | None = None) -> str:
        with session_scope(yishi_env) as session:
            user = auth_service.create(
                session=session, name=name or f"{role.value}-user", role=role,
                external_id=external_id,
            )
            assert user.id is not None
            return auth_service.issue_token(session=session, user_id=user.id)

    return make


def csrf_from(html: str) -> str:
    """The CSRF value a console page put in its forms."""
    match = CSRF_RE.search(html)
    assert match, "page has no CSRF field"
    return match.group(1)


def login(client: TestClient, token: str, next_path: str = "") -> str:
    """Sign in through the login form; returns the CSRF value for later posts."""
    page = client.get("/console/login")
    assert page.status_code == 200
    csrf = csrf_from(page.text)
    response = client.post(
        "/console/login", data={"token": token, "csrf_token": csrf, "next": next_path}
    )
    assert response.status_code == 303, response.text
    return client.cookies.get("yishi_csrf") or csrf


def visible(html: str) -> str:
    """The text a person sees on a page: tags, attributes, scripts and styles removed."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"<[^>]+>", " ", html)
