"""Whole paths a resident depends on: WeCom in and out, a dead LLM, a worker killed mid-job."""

from __future__ import annotations

import socket
import time

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from tests.fakes.wechat_server import (
    WECOM_SEND,
    WECOM_TOKEN,
    CallbackSigner,
    FakeWeChatServer,
    text_xml,
)
from yishi.api import create_app
from yishi.bot import pipeline
from yishi.bot.models import InboundMessage, InboundStatus, OutboundMessage, OutboundStatus
from yishi.bot.schemas import IncomingMessage
from yishi.core import clock, jobs
from yishi.core.config import Settings, get_settings
from yishi.core.db import init_db, session_scope

WECOM_TOKEN_VALUE = "wecom-token"
WECOM_AES = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"


def _env(monkeypatch: pytest.MonkeyPatch, **values: str) -> Settings:
    for key, value in values.items():
        monkeypatch.setenv(f"YISHI_{key.upper()}", value)
    get_settings.cache_clear()
    pipeline.reset_caches()
    return get_settings()


def test_wecom_message_is_answered_once_through_the_app_message_api(
    yishi_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeWeChatServer() as wx:
        settings = _env(
            monkeypatch,
            wecom_token=WECOM_TOKEN_VALUE, wecom_aes_key=WECOM_AES, wecom_corp_id=wx.corp_id,
            wecom_agent_id="1000002", wecom_secret=wx.corp_secret,
            wecom_api_base_url=wx.base_url, jobs_immediate="true",
            load_sample_knowledge="false",
        )
        signer = CallbackSigner(token=WECOM_TOKEN_VALUE, aes_key=WECOM_AES, receive_id=wx.corp_id)
        app = create_app(settings, run_worker=False, warm_knowledge=False)
        with TestClient(app) as client:
            xml = text_xml(sender="zhangsan", to=wx.corp_id, content="帮助", msg_id="88001",
                           create_time=int(time.time()), agent_id="1000002")
            query, body = signer.encrypted(xml, int(time.time()), mp=False)
            for _ in range(2):  # the callback and one retry
                answer = client.post("/wechat/work", params=query, content=body)
                assert answer.status_code == 200
        sends = wx.sent(WECOM_SEND)
        assert len(sends) == 1
        assert sends[0]["touser"] == "zhangsan" and sends[0]["agentid"] in (1000002, "1000002")
        assert sends[0]["text"]["content"]
        assert len(wx.calls(WECOM_TOKEN)) == 1


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens here once the socket closes


def test_a_dead_llm_endpoint_falls_back_to_the_offline_engine(
    yishi_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _env(
        monkeypatch,
        llm_base_url=f"http://127.0.0.1:{_closed_port()}/v1", llm_model="qwen-test",
        llm_api_key="sk-test", llm_timeout="1", llm_max_retries="0",
        load_sample_knowledge="false",
    )
    init_db(settings)
    jobs.configure(settings, immediate=True)
    turn = pipeline.run_turn(
        msg=IncomingMessage(channel="web", sender="u1", content="帮助", create_time=1)
    )
    assert turn.status == "replied" and turn.reply
    assert turn.engine == "offline"
    assert any(a.get("type") == "llm_fallback" for a in turn.actions), turn.actions


def test_a_message_held_by_a_killed_worker_is_answered_after_its_lease(
    yishi_env: Settings,
) -> None:
    init_db(yishi_env)
    jobs.configure(yishi_env, immediate=False)  # stored and queued; no worker picks it up yet
    with session_scope(yishi_env) as session:
        accepted = pipeline.accept(
            session=session,
            msg=IncomingMessage(channel="wecom", sender="lisi", content="帮助", msg_id="91",
                                create_time=1),
        )
    with session_scope(yishi_env) as session:
        dead = pipeline._claim(session, accepted.inbound_id)  # then the process was killed
        assert dead is not None
    jobs.configure(yishi_env, immediate=True)  # a live worker from here on
    assert pipeline.sweep()["inbound"] == 0  # the lease is still running: nobody steals it
    real = time.time
    clock.set_clock(lambda: real() + pipeline.LEASE.total_seconds() + 5)
    assert pipeline.sweep()["inbound"] == 1
    with session_scope(yishi_env) as session:
        row = session.get(InboundMessage, accepted.inbound_id)
        assert row is not None and row.status is InboundStatus.replied and row.attempts == 2
        out = session.exec(select(OutboundMessage)).one()
        # WeCom is not configured in this test: the reply is recorded as undeliverable, visibly
        assert out.status is OutboundStatus.failed and "未配置" in (out.last_error or "")
