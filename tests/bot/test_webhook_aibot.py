"""WeCom 智能机器人: signed and encrypted JSON callbacks through the real route, one answer each.

The callbacks come from `CallbackSigner.aibot` (WXBizMsgCrypt with an empty receive id, as WeCom
signs them); replies are checked and decrypted as WeCom would. The worker is driven by hand so
each step is deterministic; `response_url` answers go to the local fake WeChat server.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from tests.fakes.wechat_server import AIBOT_RESPONSE, CallbackSigner, FakeWeChatServer
from yishi.bot import aibot, pipeline
from yishi.bot.channel_models import AibotStream, StreamState
from yishi.bot.channels import aibot_routes
from yishi.bot.models import InboundMessage, OutboundMessage, OutboundStatus
from yishi.core import clock, jobs
from yishi.core.clock import set_clock
from yishi.core.config import Settings, get_settings
from yishi.core.db import get_engine, init_db
from yishi.moderation import service as moderation_service

TOKEN = "aibot-token"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
signer = CallbackSigner(token=TOKEN, aes_key=AES_KEY, receive_id="")


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
             wx: FakeWeChatServer) -> Iterator[Settings]:
    # Every test runs on SQLite and on the machine's PostgreSQL (dedupe is the database's job).
    request.getfixturevalue("yishi_env" if request.param == "sqlite" else "pg_env")
    monkeypatch.setenv("YISHI_WECOM_AIBOT_TOKEN", TOKEN)
    monkeypatch.setenv("YISHI_WECOM_AIBOT_AES_KEY", AES_KEY)
    monkeypatch.setenv("YISHI_WECOM_AIBOT_WAIT_S", "0.05")
    monkeypatch.setenv("YISHI_WECOM_API_BASE_URL", wx.base_url)
    get_settings.cache_clear()
    pipeline.reset_caches()
    settings = get_settings()
    init_db(settings)
    jobs.configure(settings, immediate=False)  # nothing consumes: the test drives the worker
    start = time.time()
    set_clock(lambda: start)  # a slow first answer must not make the stream look abandoned
    yield settings
    set_clock(None)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    app = FastAPI()
    app.include_router(aibot_routes.router)
    app.state.settings = settings
    with TestClient(app) as c:
        yield c


def _message(msgid: str, text: str, *, wx: FakeWeChatServer, group: bool = False,
             user: str = "zhangsan", code: str = "C1") -> dict[str, Any]:
    payload: dict[str, Any] = {
        "msgid": msgid,
        "aibotid": "AIBOTID",
        "chattype": "group" if group else "single",
        "from": {"userid": user},
        "response_url": wx.response_url(code),
        "msgtype": "text",
        "text": {"content": text},
    }
    if group:
        payload["chatid"] = "wrkSFfCgAAxxxx"
    return payload


def _post(client: TestClient, payload: dict[str, Any]) -> dict[str, Any] | None:
    query, body = signer.aibot(payload, int(time.time()))
    response = client.post("/wechat/aibot", params=query, content=body)
    assert response.status_code == 200
    return signer.open_aibot_reply(response.content) if response.content else None


def _refresh(client: TestClient, stream_id: str, user: str = "zhangsan") -> dict[str, Any]:
    payload = {"msgid": f"refresh-{time.monotonic_ns()}", "aibotid": "AIBOTID",
               "chattype": "single", "from": {"userid": user}, "msgtype": "stream",
               "stream": {"id": stream_id}}
    reply = _post(client, payload)
    assert reply is not None
    return reply


def _work(settings: Settings) -> list[OutboundMessage]:
    """One worker pass: process every received message and deliver what it queued."""
    with Session(get_engine(settings)) as session:
        ids = session.exec(select(InboundMessage.id)).all()
    for inbound_id in ids:
        assert inbound_id is not None
        pipeline.process_inbound(inbound_id)
    with Session(get_engine(settings)) as session:
        outs = session.exec(select(OutboundMessage).order_by(col(OutboundMessage.id))).all()
    for out in outs:
        assert out.id is not None
        pipeline.deliver_outbound(out.id)
    with Session(get_engine(settings)) as session:
        return list(session.exec(select(OutboundMessage).order_by(col(OutboundMessage.id))).all())


def _streams(settings: Settings) -> list[AibotStream]:
    with Session(get_engine(settings)) as session:
        return list(session.exec(select(AibotStream)).all())


def test_url_check_answers_the_decrypted_echostr(client: TestClient) -> None:
    query = signer.aibot_echostr("1234567890123", int(time.time()))
    response = client.get("/wechat/aibot", params=query)
    assert response.status_code == 200 and response.text == "1234567890123"
    query["nonce"] = "tampered"
    assert client.get("/wechat/aibot", params=query).status_code == 403


def test_wrong_key_or_signature_is_refused_and_nothing_is_stored(
    client: TestClient, settings: Settings, wx: FakeWeChatServer
) -> None:
    other = CallbackSigner(token=TOKEN, aes_key="B" * 43, receive_id="")
    query, body = other.aibot(_message("m-x", "你好", wx=wx), int(time.time()))
    assert client.post("/wechat/aibot", params=query, content=body).status_code == 400
    query, body = signer.aibot(_message("m-y", "你好", wx=wx), int(time.time()))
    query["msg_signature"] = "0" * 40
    assert client.post("/wechat/aibot", params=query, content=body).status_code == 403
    assert client.post("/wechat/aibot", params=query, content=b"not json").status_code == 400
    assert _streams(settings) == []


def test_group_mention_retried_gets_exactly_one_screened_answer_in_the_stream(
    client: TestClient, settings: Settings, wx: FakeWeChatServer
) -> None:
    payload = _message("m-1", "@议事助手 帮助", wx=wx, group=True)
    first = _post(client, payload)
    assert first is not None and first["msgtype"] == "stream"
    assert first["stream"]["finish"] is False
    stream_id = first["stream"]["id"]
    for _ in range(2):  # WeCom's retries of the same msgid: the same stream, nothing new stored
        again = _post(client, payload)
        assert again is not None and again["stream"]["id"] == stream_id
    outs = _work(settings)
    assert len(outs) == 1 and outs[0].status is OutboundStatus.sent
    answer = _refresh(client, stream_id)
    assert answer["stream"]["finish"] is True
    expected = moderation_service.screen(outs[0].text, context="reply").redacted
    assert answer["stream"]["content"] == expected and expected
    # a refresh that WeCom repeats shows the same answer; nothing goes through response_url
    assert _refresh(client, stream_id)["stream"]["content"] == expected
    assert wx.calls(AIBOT_RESPONSE) == []
    with Session(get_engine(settings)) as session:
        assert len(session.exec(select(InboundMessage)).all()) == 1
    [stream] = _streams(settings)
    assert stream.state is StreamState.answered and stream.chat_type == "group"


def test_group_message_without_mention_is_not_answered(
    client: TestClient, settings: Settings, wx: FakeWeChatServer
) -> None:
    assert _post(client, _message("m-2", "大家好", wx=wx, group=True)) is None
    assert _streams(settings) == []
    with Session(get_engine(settings)) as session:
        assert session.exec(select(InboundMessage)).all() == []


def test_late_answer_goes_once_through_response_url(
    client: TestClient, settings: Settings, wx: FakeWeChatServer
) -> None:
    first = _post(client, _message("m-3", "帮助", wx=wx, code="late"))
    assert first is not None
    start = clock.timestamp()
    set_clock(lambda: start + 30)  # WeCom stopped refreshing: the stream is no longer live
    outs = _work(settings)
    assert outs[0].status is OutboundStatus.sent
    [posted] = wx.sent(AIBOT_RESPONSE)
    assert posted["msgtype"] == "markdown" and posted["markdown"]["content"] == outs[0].text
    # the worker retrying the delivery does not post again (the URL works once anyway)
    assert outs[0].id is not None
    with Session(get_engine(settings)) as session:
        row = session.get(OutboundMessage, outs[0].id)
        assert row is not None
        row.status = OutboundStatus.pending
        session.add(row)
        session.commit()
    pipeline.deliver_outbound(outs[0].id)
    assert len(wx.calls(AIBOT_RESPONSE)) == 1
    [stream] = _streams(settings)
    assert stream.state is StreamState.posted
    assert _refresh(client, stream.stream_id)["stream"]["content"] == aibot.ANSWERED_ELSEWHERE


def test_answer_waiting_in_an_abandoned_stream_is_flushed_through_response_url(
    client: TestClient, settings: Settings, wx: FakeWeChatServer
) -> None:
    assert _post(client, _message("m-4", "帮助", wx=wx, code="flush")) is not None
    outs = _work(settings)  # handed to the stream, but WeCom never refreshes again
    assert [s.state for s in _streams(settings)] == [StreamState.ready]
    assert aibot.flush() == 0  # too soon: WeCom may still refresh
    start = clock.timestamp()
    set_clock(lambda: start + 30)
    assert aibot.flush() == 1
    assert aibot.flush() == 0
    [posted] = wx.sent(AIBOT_RESPONSE)
    assert posted["markdown"]["content"] == outs[0].text


def test_response_url_on_another_host_is_never_called(
    client: TestClient, settings: Settings, wx: FakeWeChatServer
) -> None:
    payload = _message("m-5", "帮助", wx=wx)
    payload["response_url"] = f"http://127.0.0.1:{wx.port + 1}/cgi-bin/aibot/response?x=1"
    assert _post(client, payload) is not None
    start = clock.timestamp()
    set_clock(lambda: start + 30)
    outs = _work(settings)
    assert outs[0].status is OutboundStatus.failed
    assert "回复地址" in (outs[0].last_error or "")
    assert wx.calls(AIBOT_RESPONSE) == []
    [stream] = _streams(settings)
    assert stream.state is StreamState.failed


def test_a_file_gets_a_clear_answer_of_what_the_assistant_takes(
    client: TestClient, settings: Settings, wx: FakeWeChatServer
) -> None:
    payload = _message("m-6", "", wx=wx)
    payload["msgtype"] = "file"
    payload["file"] = {"url": "https://example.invalid/file"}
    first = _post(client, payload)
    assert first is not None
    _work(settings)
    answer = _refresh(client, first["stream"]["id"])
    assert answer["stream"]["finish"] is True
    assert "文件" in answer["stream"]["content"] and "文字" in answer["stream"]["content"]


def test_a_notice_without_a_conversation_is_failed_with_a_reason(settings: Settings) -> None:
    from yishi.bot import outbox
    from yishi.core.db import session_scope

    with session_scope(settings) as session:
        out = outbox.notify(session=session, user_id="wecom_aibot:zhangsan", text="您的报修已处理")
        out_id = out.id
    assert out_id is not None
    pipeline.deliver_outbound(out_id)
    with Session(get_engine(settings)) as session:
        row = session.get(OutboundMessage, out_id)
        assert row is not None and row.status is OutboundStatus.failed
        assert "主动" in (row.last_error or "")


def test_two_messages_with_the_same_answer_each_get_one(
    client: TestClient, settings: Settings, wx: FakeWeChatServer
) -> None:
    first = _post(client, _message("m-7", "帮助", wx=wx, code="a"))
    second = _post(client, _message("m-8", "帮助", wx=wx, code="b"))
    assert first is not None and second is not None
    outs = _work(settings)
    assert len(outs) == 2 and outs[0].text == outs[1].text
    for reply in (first, second):
        answer = _refresh(client, reply["stream"]["id"])
        assert answer["stream"]["finish"] is True and answer["stream"]["content"] == outs[0].text
    assert wx.calls(AIBOT_RESPONSE) == []


def test_mentions_are_stripped_and_a_bare_mention_asks_for_help() -> None:
    from yishi.bot.channels.aibot import AibotCallback, to_incoming

    def incoming(text: str, group: bool = True) -> str | None:
        payload = {"msgid": "x1", "chattype": "group" if group else "single",
                   "chatid": "c1", "from": {"userid": "u1"}, "msgtype": "text",
                   "text": {"content": text}}
        msg = to_incoming(AibotCallback(payload, "n", "1700000000", 0))
        return None if msg is None else msg.content

    assert incoming("@议事助手\u20053栋电梯坏了") == "3栋电梯坏了"  # WeCom puts U+2005 after it
    assert incoming("@议事助手") == "帮助"
    assert incoming("3栋电梯坏了") is None  # a group line that does not @ the bot
    assert incoming("3栋电梯坏了", group=False) == "3栋电梯坏了"


def test_staff_bind_a_group_to_a_community_and_thread(settings: Settings) -> None:
    from yishi.api import create_app
    from yishi.core import auth as auth_service
    from yishi.core.db import session_scope
    from yishi.core.models import Role

    with session_scope(settings) as session:
        staff = auth_service.create(session=session, name="居委会", role=Role.staff)
        resident = auth_service.create(session=session, name="居民", role=Role.resident)
        assert staff.id is not None and resident.id is not None
        staff_token = auth_service.issue_token(session=session, user_id=staff.id)
        resident_token = auth_service.issue_token(session=session, user_id=resident.id)
    body = {"chat_id": "wrkSFfCgAAxxxx", "community_id": 1, "thread_id": 7, "name": "3栋业主群"}
    with TestClient(create_app(settings, run_worker=False, warm_knowledge=False)) as client:
        _bind(client, body, staff_token, resident_token)


def _bind(client: TestClient, body: dict[str, Any], staff_token: str, resident_token: str) -> None:
    refused = client.post("/api/bot/aibot/groups", json=body,
                          headers={"Authorization": f"Bearer {resident_token}"})
    assert refused.status_code == 403
    headers = {"Authorization": f"Bearer {staff_token}"}
    bound = client.post("/api/bot/aibot/groups", json=body, headers=headers)
    assert bound.status_code == 200 and bound.json()["thread_id"] == 7
    moved = client.post("/api/bot/aibot/groups", json=body | {"thread_id": 8}, headers=headers)
    assert moved.status_code == 200
    listed = client.get("/api/bot/aibot/groups", headers=headers).json()
    assert [(g["chat_id"], g["thread_id"]) for g in listed] == [("wrkSFfCgAAxxxx", 8)]


def test_concurrent_retries_of_one_msgid_share_one_stream(
    client: TestClient, settings: Settings, wx: FakeWeChatServer
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    payload = _message("m-9", "帮助", wx=wx)
    with ThreadPoolExecutor(max_workers=4) as pool:
        replies = list(pool.map(lambda _: _post(client, payload), range(4)))
    assert {r["stream"]["id"] for r in replies if r is not None} == {
        s.stream_id for s in _streams(settings)
    }
    assert len(_streams(settings)) == 1
    outs = _work(settings)
    assert len(outs) == 1
    with Session(get_engine(settings)) as session:
        assert len(session.exec(select(InboundMessage)).all()) == 1
