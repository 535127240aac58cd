"""Moderation API: moderator role required, queue decisions, appeals, mutes and audit over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from sqlmodel import Session

from yishi.core import auth
from yishi.core.config import Settings, get_settings
from yishi.core.db import create_all, get_session, make_engine
from yishi.core.errors import YishiError
from yishi.core.models import Role
from yishi.moderation import service
from yishi.moderation.routes import router


@pytest.fixture()
def client(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str], Session]]:
    engine = make_engine("sqlite:///" + str(tmp_path / "t.db"))
    create_all(engine)
    app = FastAPI()
    app.include_router(router)

    @app.exception_handler(YishiError)
    def _handle(_: Request, exc: YishiError) -> JSONResponse:
        return JSONResponse({"error": exc.message, "hint": exc.hint}, status_code=exc.status_code)

    def _session() -> Iterator[Session]:
        with Session(engine, expire_on_commit=False) as s:
            yield s

    app.dependency_overrides[get_session] = _session
    app.dependency_overrides[get_settings] = lambda: Settings(data_dir=tmp_path)
    with Session(engine, expire_on_commit=False) as s:
        mod = auth.create(session=s, name="审核员", role=Role.moderator, external_id="web:mod1")
        res = auth.create(session=s, name="居民", role=Role.resident, external_id="wechat_mp:oRES1")
        tokens = {
            "mod": auth.issue_token(session=s, user_id=mod.id),  # type: ignore[arg-type]
            "res": auth.issue_token(session=s, user_id=res.id),  # type: ignore[arg-type]
        }
        yield TestClient(app), tokens, s
    engine.dispose()


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_moderator_role_is_required(client: tuple[TestClient, dict[str, str], Session]) -> None:
    c, tokens, _ = client
    assert c.get("/api/moderation/queue").status_code == 401
    assert c.get("/api/moderation/queue", headers=_h(tokens["res"])).status_code == 403
    assert c.get("/api/moderation/queue", headers=_h(tokens["mod"])).status_code == 200


def test_queue_decisions_and_audit(client: tuple[TestClient, dict[str, str], Session]) -> None:
    c, tokens, s = client
    mod = _h(tokens["mod"])
    items = []
    for text in (
        "你就是个傻逼",
        "修空调的张师傅电话13912345678，手艺不错",
        "物业的李师傅手机13712345678，修得很好",
        "快递员小王电话13612345678，人挺好",
    ):
        v = service.screen(text)
        items.append(
            service.hold(
                session=s, text=text, verdict=v, sender_id="wechat_mp:oRES1", source="message"
            )
        )
    queue = c.get("/api/moderation/queue", headers=mod).json()
    assert [q["id"] for q in queue] == [i.id for i in items]
    assert queue[0]["spans"][0]["text"] == "傻逼"

    r = c.post(f"/api/moderation/items/{items[1].id}/approve", json={"reason": "抱怨"}, headers=mod)
    assert r.status_code == 200 and r.json()["status"] == "approved"
    r = c.post(
        f"/api/moderation/items/{items[2].id}/edit",
        json={"text": "楼道又堆满了，请清理", "reason": "去掉攻击"},
        headers=mod,
    )
    assert r.json()["final_text"] == "楼道又堆满了，请清理"
    r = c.post(f"/api/moderation/items/{items[3].id}/escalate", json={"reason": ""}, headers=mod)
    assert r.status_code == 422
    r = c.post(
        f"/api/moderation/items/{items[3].id}/escalate",
        json={"reason": "需要居委会看"},
        headers=mod,
    )
    assert r.json()["status"] == "escalated"
    r = c.post(f"/api/moderation/items/{items[0].id}/reject", json={"reason": "辱骂"}, headers=mod)
    assert r.json()["status"] == "rejected"
    r = c.post(f"/api/moderation/items/{items[0].id}/approve", json={}, headers=mod)
    assert r.status_code == 409

    audit = c.get("/api/moderation/audit", headers=mod).json()
    assert {"approve", "edit_approve", "escalate", "reject"} <= {a["action"] for a in audit}
    assert all(a["actor_id"] in ("web:mod1", "system") for a in audit)
    strikes = c.get("/api/moderation/strikes/wechat_mp:oRES1", headers=mod).json()
    assert len(strikes) == 1  # the block struck once; rejecting it did not strike again


def test_appeal_by_the_sender_and_resolution(
    client: tuple[TestClient, dict[str, str], Session],
) -> None:
    c, tokens, s = client
    v = service.screen("你就是个傻逼")
    item = service.hold(
        session=s, text="你就是个傻逼", verdict=v, sender_id="wechat_mp:oRES1", source="message"
    )
    r = c.post(
        f"/api/moderation/items/{item.id}/appeal",
        json={"reason": "我在转述"},
        headers=_h(tokens["res"]),
    )
    assert r.status_code == 200
    again = c.post(
        f"/api/moderation/items/{item.id}/appeal",
        json={"reason": "再来"},
        headers=_h(tokens["res"]),
    )
    assert again.status_code == 409
    open_appeals = c.get("/api/moderation/appeals", headers=_h(tokens["mod"])).json()
    assert [a["review_item_id"] for a in open_appeals] == [item.id]
    r = c.post(
        f"/api/moderation/appeals/{open_appeals[0]['id']}/resolve",
        json={"upheld": False, "reason": "维持"},
        headers=_h(tokens["mod"]),
    )
    assert r.json()["status"] == "denied"


def test_mutes_and_screen_endpoint(client: tuple[TestClient, dict[str, str], Session]) -> None:
    c, tokens, s = client
    mod = _h(tokens["mod"])
    r = c.post(
        "/api/moderation/mutes",
        json={"sender_id": "wecom:u1", "hours": 3, "reason": "刷屏"},
        headers=mod,
    )
    assert r.status_code == 200
    assert service.is_muted(session=s, sender_id="wecom:u1")
    assert [m["sender_id"] for m in c.get("/api/moderation/mutes", headers=mod).json()] == [
        "wecom:u1"
    ]
    assert c.delete("/api/moderation/mutes/wecom:u1", headers=mod).json()["lifted"] == 1
    v = c.post("/api/moderation/screen", json={"text": "我的电话13812345678"}, headers=mod).json()
    assert v["action"] == "allow" and "138****5678" in v["redacted"]
