"""Accounts: token expiry and last use, revocation, deactivation (API and console at once)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.web.conftest import login
from yishi.api import create_app
from yishi.cli import app as cli_app
from yishi.core import auth as auth_service
from yishi.core.clock import set_clock, timestamp
from yishi.core.config import Settings
from yishi.core.db import init_db, session_scope
from yishi.core.errors import Unauthorized
from yishi.core.models import Role


@pytest.fixture
def client(yishi_env: Settings) -> Iterator[TestClient]:
    init_db(yishi_env)
    app = create_app(yishi_env, run_worker=False, warm_knowledge=False)
    with TestClient(app, follow_redirects=False) as c:
        yield c


def _user(settings: Settings, role: Role, name: str, ttl_days: int | None = None
          ) -> tuple[int, str]:
    with session_scope(settings) as session:
        user = auth_service.create(session=session, name=name, role=role,
                                   external_id=f"web:{name}")
        assert user.id is not None
        return user.id, auth_service.issue_token(session=session, user_id=user.id,
                                                 ttl_days=ttl_days)


def test_tokens_expire_and_record_their_last_use(yishi_env: Settings) -> None:
    init_db(yishi_env)
    user_id, token = _user(yishi_env, Role.staff, "s1", ttl_days=30)
    with session_scope(yishi_env) as session:
        auth_service.authenticate(session=session, token=token)
        row = auth_service.get_tokens(session=session, user_id=user_id)[0]
        assert row.last_used_at is not None and row.expires_at is not None
    later = timestamp() + 31 * 86400
    set_clock(lambda: later)
    try:
        with session_scope(yishi_env) as session, pytest.raises(Unauthorized, match="过期"):
            auth_service.authenticate(session=session, token=token)
    finally:
        set_clock(None)


def test_revoked_token_and_deactivated_user_stop_at_once(
    client: TestClient, yishi_env: Settings
) -> None:
    _, admin = _user(yishi_env, Role.admin, "admin1")
    staff_id, staff = _user(yishi_env, Role.staff, "staff1")
    _, second = _user(yishi_env, Role.staff, "staff2")
    as_admin = {"Authorization": f"Bearer {admin}"}
    assert client.get("/api/users/me", headers={"Authorization": f"Bearer {second}"}).is_success
    tokens = client.get(f"/api/users/{staff_id + 1}/tokens", headers=as_admin).json()
    assert tokens[0]["last_used_at"] is not None and "token" not in tokens[0]
    revoked = client.post(f"/api/users/tokens/{tokens[0]['id']}/revoke", headers=as_admin)
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    assert client.get("/api/users/me",
                      headers={"Authorization": f"Bearer {second}"}).status_code == 401

    # A staff member signed in to the console and holding an API token ...
    login(client, staff)
    assert client.get("/console/issues").status_code == 200
    assert client.get("/api/users/me", headers={"Authorization": f"Bearer {staff}"}).is_success
    # ... is deactivated: both stop working on their next request.
    done = client.post(f"/api/users/{staff_id}/deactivate", headers=as_admin)
    assert done.status_code == 200 and done.json()["active"] is False
    assert client.get("/api/users/me",
                      headers={"Authorization": f"Bearer {staff}"}).status_code == 401
    page = client.get("/console/issues")
    assert page.status_code == 303 and "/console/login" in page.headers["location"]


def test_cli_deactivate_and_revoke(yishi_env: Settings) -> None:
    init_db(yishi_env)
    user_id, token = _user(yishi_env, Role.moderator, "m1")
    _, other = _user(yishi_env, Role.moderator, "m2")
    runner = CliRunner()
    listed = runner.invoke(cli_app, ["users", "tokens", str(user_id)])
    assert listed.exit_code == 0 and "有效" in listed.output and "到期" in listed.output
    with session_scope(yishi_env) as session:
        other_id = auth_service.get_tokens(session=session, user_id=user_id + 1)[0].id
    revoked = runner.invoke(cli_app, ["users", "revoke-token", str(other_id)])
    assert revoked.exit_code == 0, revoked.output
    off = runner.invoke(cli_app, ["users", "deactivate", str(user_id)])
    assert off.exit_code == 0 and "已停用" in off.output
    with session_scope(yishi_env) as session:
        for plain in (token, other):
            with pytest.raises(Unauthorized):
                auth_service.authenticate(session=session, token=plain)
