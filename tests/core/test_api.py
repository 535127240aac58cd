"""The HTTP edge: health, docs, bearer-token auth by role, the chat API and simulator page."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from yishi.api import create_app
from yishi.core import auth as auth_service
from yishi.core.config import Settings
from yishi.core.db import session_scope
from yishi.core.models import Role


@pytest.fixture
def client(yishi_env: Settings) -> Iterator[TestClient]:
    app = create_app(yishi_env, run_worker=False, warm_knowledge=False)
    with TestClient(app) as c:
        yield c


def _token(settings: Settings, role: Role, name: str, external_id: str | None = None) -> str:
    with session_scope(settings) as session:
        user = auth_service.create(session=session, name=name, role=role, external_id=external_id)
        assert user.id is not None
        return auth_service.issue_token(session=session, user_id=user.id)


def test_health_and_docs(client: TestClient) -> None:
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["database"] == "ok"
    assert health["engine"] == "offline"
    spec = client.get("/openapi.json").json()
    assert "/api/chat" in spec["paths"]
    assert client.get("/docs").status_code == 200


def test_api_needs_a_token_and_the_right_role(client: TestClient, yishi_env: Settings) -> None:
    assert client.get("/api/users").status_code == 401
    bad = client.get("/api/users", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and "hint" in bad.json()
    resident = _token(yishi_env, Role.resident, "居民甲", "web:r1")
    staff = _token(yishi_env, Role.staff, "工作人员", "web:s1")
    admin = _token(yishi_env, Role.admin, "管理员")
    assert (
        client.get("/api/users", headers={"Authorization": f"Bearer {resident}"}).status_code == 403
    )
    assert client.get("/api/users", headers={"Authorization": f"Bearer {staff}"}).status_code == 403
    listed = client.get("/api/users", headers={"Authorization": f"Bearer {admin}"})
    assert listed.status_code == 200 and len(listed.json()) == 3
    flagged = client.get("/api/bot/flagged", headers={"Authorization": f"Bearer {resident}"})
    assert flagged.status_code == 403
    assert (
        client.get("/api/bot/flagged", headers={"Authorization": f"Bearer {staff}"}).status_code
        == 200
    )


def test_residents_chat_only_as_themselves(client: TestClient, yishi_env: Settings) -> None:
    token = _token(yishi_env, Role.resident, "居民乙", "web:r2")
    headers = {"Authorization": f"Bearer {token}"}
    ok = client.post("/api/chat", json={"user": "r2", "text": "帮助"}, headers=headers)
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["reply"] and body["engine"] == "offline"
    other = client.post("/api/chat", json={"user": "r3", "text": "帮助"}, headers=headers)
    assert other.status_code == 403
    invalid = client.post("/api/chat", json={"user": "r2", "text": ""}, headers=headers)
    assert invalid.status_code == 422 and "error" in invalid.json()


def test_simulator_page_serves_local_clients_with_a_resident_token(client: TestClient) -> None:
    page = client.get("/chat")
    assert page.status_code == 200
    assert "居民对话模拟器" in page.text
    token = page.text.split('const token = "', 1)[1].split('"', 1)[0]
    me = client.get("/api/users/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["role"] == "resident" and me["external_id"] == "web:u1"


def test_simulator_is_closed_in_production(yishi_env: Settings) -> None:
    prod = yishi_env.model_copy(update={"environment": "production"})
    with TestClient(create_app(prod, run_worker=False, warm_knowledge=False)) as c:
        assert c.get("/chat").status_code == 404


def test_handoffs_are_listed_for_staff_and_can_be_resolved(
    client: TestClient, yishi_env: Settings
) -> None:
    resident = _token(yishi_env, Role.resident, "居民丙", "web:r9")
    staff = _token(yishi_env, Role.staff, "值班员", "web:s9")
    turn = client.post(
        "/api/chat",
        json={"user": "r9", "text": "转人工"},
        headers={"Authorization": f"Bearer {resident}"},
    )
    assert turn.status_code == 200
    flagged = client.get("/api/bot/flagged", headers={"Authorization": f"Bearer {staff}"}).json()
    assert [h["user_id"] for h in flagged["handoffs"]] == ["web:r9"]
    handoff_id = flagged["handoffs"][0]["id"]
    done = client.post(
        f"/api/bot/handoffs/{handoff_id}/resolve", headers={"Authorization": f"Bearer {staff}"}
    )
    assert done.status_code == 200 and done.json()["resolved"] is True
    again = client.get("/api/bot/flagged", headers={"Authorization": f"Bearer {staff}"}).json()
    assert again["handoffs"] == []
