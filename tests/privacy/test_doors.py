"""Regression tests for the security review's findings (each failed before its fix)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from tests.bot.test_webhook_mp import AES_KEY, APP_ID, TOKEN, make_client, stored
from tests.fakes.wechat_server import CallbackSigner, text_xml
from tests.web.conftest import csrf_from, login
from yishi.api import create_app
from yishi.core import auth as auth_service
from yishi.core.config import Settings
from yishi.core.db import init_db, session_scope
from yishi.core.errors import Invalid
from yishi.core.models import ConsoleSession, Role
from yishi.privacy import logs as privacy_logs

signer = CallbackSigner(token=TOKEN, aes_key=AES_KEY, receive_id=APP_ID)


def _mp_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path, "database_url": f"sqlite:///{tmp_path / 'yishi.db'}",
        "wechat_token": TOKEN, "wechat_aes_key": AES_KEY, "wechat_app_id": APP_ID,
        "redis_url": None,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


# ---------------------------------------------------------------- webhooks


def test_safe_mode_refuses_a_plaintext_body(tmp_path: Path) -> None:
    settings = _mp_settings(tmp_path)  # an AES key is set: safe mode by default
    forged = text_xml(content="我是工作人员，通知全体业主缴费", msg_id="1", sender="oStaffBound")
    with make_client(settings) as client:
        r = client.post("/wechat/mp", params=signer.plain_query(int(time.time())), content=forged)
        assert r.status_code == 403
        query, body = signer.encrypted(text_xml(content="楼道灯坏了", msg_id="2"), int(time.time()))
        assert client.post("/wechat/mp", params=query, content=body).status_code == 200
    assert [m.msg_id for m in stored(settings)] == ["2"]


def test_a_signed_query_cannot_carry_another_body(tmp_path: Path) -> None:
    settings = _mp_settings(tmp_path, wechat_message_mode="plaintext")
    query = signer.plain_query(int(time.time()))
    genuine = text_xml(content="3栋楼道灯坏了", msg_id="10")
    with make_client(settings) as client:
        assert client.post("/wechat/mp", params=query, content=genuine).status_code == 200
        # WeChat's retry of the same request is fine (and deduplicated) ...
        assert client.post("/wechat/mp", params=query, content=genuine).status_code == 200
        # ... a forged body under the seen signature, timestamp and nonce is not.
        forged = text_xml(content="同意 1", msg_id="11", sender="oSomeoneElse")
        assert client.post("/wechat/mp", params=query, content=forged).status_code == 403
    assert [m.msg_id for m in stored(settings)] == ["10"]


def test_webhook_query_secrets_and_openids_stay_out_of_the_access_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    privacy_logs.install()
    openid = "oAbCdEfGhIjKlMnOpQrStUvWxYz1"
    path = (f"/wechat/mp?signature=5d197aaffba7e9b25a30732f161a50dee96bd5fa&timestamp=1714000000"
            f"&nonce=1398233312&openid={openid}&encrypt_type=aes"
            "&msg_signature=9b2f4e7ac3a4d0a5f8c1e6b7d2a3f4e5c6b7a8d9")
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        logging.getLogger("uvicorn.access").info(
            '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "POST", path, "1.1", 200)
    line = caplog.records[-1].getMessage()
    assert "/wechat/mp" in line and " 200" in line
    for secret in (openid, "5d197aaffba7e9b25a30732f161a50dee96bd5fa", "1398233312",
                   "1714000000", "9b2f4e7ac3a4d0a5f8c1e6b7d2a3f4e5c6b7a8d9"):
        assert secret not in line


# ---------------------------------------------------------------- the API and the console


@pytest.fixture
def app_client(yishi_env: Settings) -> Iterator[TestClient]:
    init_db(yishi_env)
    with TestClient(create_app(yishi_env, run_worker=False, warm_knowledge=False),
                    follow_redirects=False) as c:
        yield c


def _token(settings: Settings, role: Role, external_id: str | None) -> str:
    with session_scope(settings) as session:
        user = auth_service.create(session=session, name=external_id or role.value, role=role,
                                   external_id=external_id)
        assert user.id is not None
        return auth_service.issue_token(session=session, user_id=user.id)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_supporters_never_see_who_reported(app_client: TestClient, yishi_env: Settings) -> None:
    reporter = _token(yishi_env, Role.resident, "web:r1")
    supporter = _token(yishi_env, Role.resident, "web:r2")
    staff = _token(yishi_env, Role.staff, "web:s1")
    first = app_client.post("/api/deliberation/issues", headers=_bearer(reporter), json={
        "text": "3栋2单元楼道灯坏了一周了，我是302的张建国", "location": "3栋2单元"})
    issue_id = first.json()["issue"]["id"]
    joined = app_client.post("/api/deliberation/issues", headers=_bearer(supporter), json={
        "text": "3栋2单元楼道灯坏了", "location": "3栋2单元"})
    assert joined.json()["joined_existing"] is True
    app_client.post(f"/api/deliberation/issues/{issue_id}/status", headers=_bearer(staff),
                    json={"status": "in_progress", "note": "已联系张建国本人上门查看"})

    seen = app_client.get(f"/api/deliberation/issues/{issue_id}", headers=_bearer(supporter))
    assert seen.status_code == 200 and seen.json()["reporter_id"] == ""
    assert seen.json()["status"] == "in_progress"
    mine = app_client.get("/api/deliberation/issues/mine", headers=_bearer(supporter)).json()
    assert [i["reporter_id"] for i in mine] == [""]
    timeline = app_client.get(f"/api/deliberation/issues/{issue_id}/timeline",
                              headers=_bearer(supporter)).json()
    assert timeline and all(e["actor_id"] is None and e["note"] == "" for e in timeline)
    assert all(e["kind"] != "supporter" for e in timeline)
    # The reporter and staff still see the whole story.
    full = app_client.get(f"/api/deliberation/issues/{issue_id}/timeline",
                          headers=_bearer(staff)).json()
    assert any(e["actor_id"] == "web:r1" for e in full)
    assert any("张建国" in e["note"] for e in full)


def test_moderators_see_no_private_categories_or_reporters(
    app_client: TestClient, yishi_env: Settings
) -> None:
    resident = _token(yishi_env, Role.resident, "web:r1")
    moderator = _token(yishi_env, Role.moderator, "web:m1")
    private = app_client.post("/api/deliberation/issues", headers=_bearer(resident), json={
        "text": "邻居家空调外机滴水到我家阳台，协商未果", "category": "neighbour_dispute",
        "location": "5栋"})
    public = app_client.post("/api/deliberation/issues", headers=_bearer(resident), json={
        "text": "东门路灯不亮", "category": "repairs", "location": "东门"})
    private_id, public_id = private.json()["issue"]["id"], public.json()["issue"]["id"]
    board = app_client.get("/api/deliberation/issues", headers=_bearer(moderator)).json()
    assert [i["id"] for i in board] == [public_id]
    assert all(i["reporter_id"] == "" for i in board)
    assert app_client.get(f"/api/deliberation/issues/{private_id}",
                          headers=_bearer(moderator)).status_code == 403
    one = app_client.get(f"/api/deliberation/issues/{public_id}", headers=_bearer(moderator))
    assert one.status_code == 200 and one.json()["reporter_id"] == ""


def test_staff_cannot_chat_or_vote_as_another_resident(
    app_client: TestClient, yishi_env: Settings
) -> None:
    staff = _token(yishi_env, Role.staff, "web:s1")
    admin = _token(yishi_env, Role.admin, None)
    for token in (staff, admin):
        for user in ("r1", "invented-voter-17"):
            r = app_client.post("/api/chat", headers=_bearer(token),
                                json={"user": user, "text": "同意 1"})
            assert r.status_code == 403
    own = app_client.post("/api/chat", headers=_bearer(staff), json={"user": "s1", "text": "帮助"})
    assert own.status_code == 200


def test_console_logout_revokes_the_session_which_is_not_the_bearer_token(
    app_client: TestClient, yishi_env: Settings
) -> None:
    token = _token(yishi_env, Role.staff, "web:s1")
    csrf = login(app_client, token)
    cookie = app_client.cookies.get("yishi_console")
    assert cookie and cookie != token and token not in cookie
    assert app_client.get("/console/issues").status_code == 200
    out = app_client.post("/console/logout", data={"csrf_token": csrf})
    assert out.status_code == 303
    with session_scope(yishi_env) as session:
        assert all(s.revoked_at is not None for s in session.exec(select(ConsoleSession)))
    # The stolen cookie is worthless after logout.
    app_client.cookies.set("yishi_console", cookie, path="/console")
    page = app_client.get("/console/issues")
    assert page.status_code == 303 and "/console/login" in page.headers["location"]


def test_console_cookies_carry_the_host_prefix_over_https(yishi_env: Settings) -> None:
    init_db(yishi_env)
    token = _token(yishi_env, Role.staff, "web:s1")
    app = create_app(yishi_env, run_worker=False, warm_knowledge=False)
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as client:
        page = client.get("/console/login")
        csrf = csrf_from(page.text)
        assert client.cookies.get("__Host-yishi_csrf")
        done = client.post("/console/login", data={"token": token, "csrf_token": csrf})
        assert done.status_code == 303
        set_cookie = [c for c in done.headers.get_list("set-cookie")
                      if c.startswith("__Host-yishi_console=")]
        assert set_cookie and "Secure" in set_cookie[0] and "Path=/;" in set_cookie[0] + ";"
        assert "Domain" not in set_cookie[0]
        assert client.get("/console/issues").status_code == 200


def test_api_docs_are_off_in_production_unless_enabled(yishi_env: Settings) -> None:
    prod = yishi_env.model_copy(update={"environment": "production"})
    with TestClient(create_app(prod, run_worker=False, warm_knowledge=False)) as c:
        assert c.get("/docs").status_code == 404
        assert c.get("/openapi.json").status_code == 404
    opened = prod.model_copy(update={"api_docs": True})
    with TestClient(create_app(opened, run_worker=False, warm_knowledge=False)) as c:
        assert c.get("/openapi.json").status_code == 200


def test_health_reports_retention_figures(app_client: TestClient) -> None:
    held = app_client.get("/healthz").json()["personal_data"]
    assert held == {"retention_days": 180, "messages": 0, "oldest_message_days": None}


# ---------------------------------------------------------------- knowledge filters


def test_an_operator_in_a_search_filter_is_a_422_and_not_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from yishi.knowledge import service as knowledge_service

    settings = Settings(data_dir=tmp_path, load_sample_knowledge=True, environment="test")
    knowledge_service.ensure_ready(settings)
    assert knowledge_service.search("停车", k=2, settings=settings)
    with caplog.at_level(logging.INFO), pytest.raises(Invalid) as refused:
        knowledge_service.search("停车", k=2, filters={"document": {"$ne": "x"}},
                                 settings=settings)
    assert refused.value.status_code == 422
    assert "$ne" not in caplog.text
