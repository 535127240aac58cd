"""HTTP API: role checks, screening of resident text, held messages released by moderators."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from yishi.core import auth
from yishi.core.db import get_session
from yishi.core.errors import YishiError
from yishi.core.models import Role
from yishi.deliberation.models import ThreadMessage
from yishi.deliberation.routes import router
from yishi.moderation import service as moderation_service
from yishi.moderation.models import ReviewItem

from .factories import Actors, Clock, pk


@pytest.fixture
def api(sqlite_engine: Engine, clock: Clock) -> Iterator[tuple[TestClient, dict[str, dict]]]:
    app = FastAPI()

    @app.exception_handler(YishiError)
    async def _err(_r: Request, exc: YishiError) -> JSONResponse:
        return JSONResponse(status_code=exc.status_code, content={"error": exc.message})

    app.include_router(router)

    def session_override() -> Iterator[Session]:
        with Session(sqlite_engine, expire_on_commit=False) as s:
            yield s

    app.dependency_overrides[get_session] = session_override
    headers: dict[str, dict] = {}
    with Session(sqlite_engine) as s:
        for key, role, ext in [("resident", Role.resident, "wechat_mp:o1"),
                               ("resident2", Role.resident, "wechat_mp:o2"),
                               ("staff", Role.staff, "wecom:staff1"),
                               ("moderator", Role.moderator, "web:mod1"),
                               ("admin", Role.admin, "web:admin")]:
            user = auth.create(session=s, name=key, role=role, external_id=ext)
            token = auth.issue_token(session=s, user_id=pk(user))
            headers[key] = {"Authorization": f"Bearer {token}"}
    yield TestClient(app), headers


def test_report_issue_and_roles(api) -> None:
    client, h = api
    r = client.post("/api/deliberation/issues", json={"text": "3栋2单元漏水，我的电话13812345678"},
                    headers=h["resident"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["issue"]["responsible_party"] == "物业公司"
    assert "13812345678" not in body["issue"]["text"]
    issue_id = body["issue"]["id"]
    again = client.post("/api/deliberation/issues", json={"text": "三号楼二单元漏水了"},
                        headers=h["resident2"]).json()
    assert again["joined_existing"] and again["issue"]["id"] == issue_id

    public = client.get("/api/deliberation/issues", headers=h["resident2"]).json()
    assert [i["id"] for i in public] == [issue_id] and public[0]["reporter_id"] == ""
    assert client.get("/api/deliberation/issues").status_code == 401
    board = client.get("/api/deliberation/issues?party=物业公司&building=3",
                       headers=h["staff"]).json()
    assert [i["id"] for i in board] == [issue_id]
    assert client.post(f"/api/deliberation/issues/{issue_id}/status",
                       json={"status": "in_progress"}, headers=h["resident"]).status_code == 403
    moved = client.post(f"/api/deliberation/issues/{issue_id}/status",
                        json={"status": "in_progress", "note": "已派维修工"}, headers=h["staff"])
    assert moved.json()["status_label"] == "处理中"
    timeline = client.get(f"/api/deliberation/issues/{issue_id}/timeline",
                          headers=h["resident"]).json()
    assert [e["kind"] for e in timeline] == ["reported", "routed", "supporter", "status"]
    mine = client.get("/api/deliberation/issues/mine", headers=h["resident2"]).json()
    assert [i["id"] for i in mine] == [issue_id]


def test_abusive_report_is_held_not_recorded(api, sqlite_engine: Engine) -> None:
    client, h = api
    r = client.post("/api/deliberation/issues", json={"text": "楼上那个傻逼天天半夜吵"},
                    headers=h["resident"]).json()
    assert r["held"] and r["issue"] is None and r["notice"]
    with Session(sqlite_engine) as s:
        item = s.exec(select(ReviewItem)).one()
        assert item.source == "deliberation" and (item.source_ref or "").startswith("held_issue:")


def test_responsibility_admin_api(api) -> None:
    client, h = api
    listed = client.get("/api/deliberation/responsibility", headers=h["resident"]).json()
    assert {e["category"] for e in listed} >= {"repairs", "fire_safety", "other"}
    body = {"party": "派出所", "sla_hours": 2}
    assert client.put("/api/deliberation/responsibility/security", json=body,
                      headers=h["staff"]).status_code == 403
    after = client.put("/api/deliberation/responsibility/security", json=body,
                       headers=h["admin"]).json()
    sec = next(e for e in after if e["category"] == "security")
    assert sec["party"] == "派出所" and sec["source"] == "admin"
    reset = client.delete("/api/deliberation/responsibility/security", headers=h["admin"]).json()
    assert next(e for e in reset if e["category"] == "security")["source"] == "file"


def test_thread_messages_are_screened_and_held(api, sqlite_engine: Engine) -> None:
    client, h = api
    refused = client.post("/api/deliberation/threads",
                          json={"title": "停车", "question": "怎么收费？"}, headers=h["resident"])
    assert refused.status_code == 403
    tid = client.post("/api/deliberation/threads",
                      json={"title": "停车收费", "question": "地面车位怎么收费？",
                            "statements": ["按月收费"]}, headers=h["staff"]).json()["id"]
    ok = client.post(f"/api/deliberation/threads/{tid}/messages",
                     json={"text": "我同意，我的电话13812345678", "as_statement": False},
                     headers=h["resident"]).json()
    assert ok["visible"] and "13812345678" not in ok["text"]
    held = client.post(f"/api/deliberation/threads/{tid}/messages",
                       json={"text": "楼上那个傻逼天天乱停车", "as_statement": True},
                       headers=h["resident2"]).json()
    assert held["held"] and not held["visible"] and held["notice"]
    msgs = client.get(f"/api/deliberation/threads/{tid}/messages", headers=h["resident"]).json()
    assert [m["id"] for m in msgs] == [ok["id"]]
    statements = client.get(f"/api/deliberation/threads/{tid}/statements",
                            headers=h["resident"]).json()
    assert len(statements) == 1

    # the moderator edits and approves: the cleaned text is published, statement included
    with Session(sqlite_engine, expire_on_commit=False) as s:
        item = s.exec(select(ReviewItem)).one()
        moderation_service.edit_and_approve(session=s, actor=Actors.moderator(), item_id=pk(item),
                                            text="楼上邻居天天乱停车")
        message = s.get(ThreadMessage, held["id"])
        assert message is not None
        assert message.visible and message.text == "楼上邻居天天乱停车"
    statements = client.get(f"/api/deliberation/threads/{tid}/statements",
                            headers=h["resident"]).json()
    assert [s["text"] for s in statements] == ["按月收费", "楼上邻居天天乱停车"]


def test_votes_and_summary_over_http(api) -> None:
    client, h = api
    created = client.post("/api/deliberation/threads",
                          json={"title": "停车收费", "question": "地面车位怎么收费？",
                                "statements": ["按月收费", "访客免费"]}, headers=h["staff"])
    tid = created.json()["id"]
    sid = client.get(f"/api/deliberation/threads/{tid}/statements",
                     headers=h["resident"]).json()[0]["id"]
    first = client.post(f"/api/deliberation/statements/{sid}/vote", json={"value": "agree"},
                        headers=h["resident"]).json()
    assert first == {"statement_id": sid, "value": "agree", "changed": False}
    assert client.post(f"/api/deliberation/statements/{sid}/vote", json={"value": "maybe"},
                       headers=h["resident"]).status_code == 422
    client.post(f"/api/deliberation/statements/{sid}/vote", json={"value": "disagree"},
                headers=h["resident"])
    counts = client.get(f"/api/deliberation/threads/{tid}/statements",
                        headers=h["resident"]).json()[0]
    assert (counts["agree"], counts["disagree"]) == (0, 1)
    assert client.post("/api/deliberation/summaries", json={"topic": "停车收费"},
                       headers=h["resident"]).status_code == 403
    summary = client.post("/api/deliberation/summaries", json={"topic": "总结一下停车收费的讨论"},
                          headers=h["staff"]).json()
    assert summary["thread_id"] == tid and summary["participation"]["votes"] == 1
    draft = client.post("/api/deliberation/proposals",
                        json={"summary_id": summary["summary_id"]}, headers=h["staff"]).json()
    assert draft["status"] == "draft" and draft["thread_id"] == tid


def test_summary_over_http_uses_the_configured_llm(api, monkeypatch: pytest.MonkeyPatch) -> None:
    """With YISHI_LLM_* set, the API's summaries are written by the model (not offline)."""
    import json

    from tests.fakes.openai_server import FakeOpenAIServer
    from tests.fakes.openai_server import text as scripted
    from yishi.core.config import get_settings

    client, h = api
    created = client.post("/api/deliberation/threads",
                          json={"title": "停车收费", "question": "地面车位怎么收费？",
                                "statements": ["按月收费", "访客免费"]}, headers=h["staff"])
    tid = created.json()["id"]
    sid = client.get(f"/api/deliberation/threads/{tid}/statements",
                     headers=h["resident"]).json()[0]["id"]
    for who in ("resident", "resident2"):
        client.post(f"/api/deliberation/statements/{sid}/vote", json={"value": "agree"},
                    headers=h[who])
    reply = {"groups": [], "divisive": [], "open_questions": [], "next_steps": [],
             "consensus": [{"text": "都同意按月收费", "cites": [f"s{sid}"],
                            "quotes": [{"ref": f"s{sid}", "text": "按月收费"}]}]}
    with FakeOpenAIServer() as server:
        server.enqueue(scripted(json.dumps(reply, ensure_ascii=False)))
        monkeypatch.setenv("YISHI_LLM_BASE_URL", server.base_url)
        monkeypatch.setenv("YISHI_LLM_MODEL", "fake-model")
        monkeypatch.setenv("YISHI_LLM_MAX_RETRIES", "0")
        get_settings.cache_clear()
        summary = client.post("/api/deliberation/summaries", json={"thread_id": tid},
                              headers=h["staff"]).json()
        calls = len(server.history)
    assert calls == 1
    assert summary["engine"] == "llm"
    assert [c["text"] for c in summary["consensus"]] == ["都同意按月收费"]
