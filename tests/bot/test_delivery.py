"""Push-mode delivery through a real huey consumer to a local WeChat API server (real HTTP)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlmodel import col, select

from tests.fakes.wechat_server import CUSTOM_SEND, TOKEN, FakeWeChatServer
from yishi.bot import pipeline
from yishi.bot.models import InboundMessage, InboundStatus, OutboundMessage, OutboundStatus
from yishi.bot.schemas import IncomingMessage
from yishi.core import jobs
from yishi.core.config import Settings, get_settings
from yishi.core.db import init_db, session_scope


def _configure(monkeypatch: pytest.MonkeyPatch, wx: FakeWeChatServer) -> Settings:
    monkeypatch.setenv("YISHI_WECHAT_TOKEN", "tok")
    monkeypatch.setenv("YISHI_WECHAT_APP_ID", wx.app_id)
    monkeypatch.setenv("YISHI_WECHAT_APP_SECRET", wx.app_secret)
    monkeypatch.setenv("YISHI_WECHAT_API_BASE_URL", wx.base_url)
    get_settings.cache_clear()
    pipeline.reset_caches()
    settings = get_settings()
    init_db(settings)
    return settings


def _wait(predicate: Any, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _msg(msg_id: str, text: str = "帮助") -> IncomingMessage:
    return IncomingMessage(
        channel="wechat_mp",
        sender="oResident1",
        content=text,
        msg_id=msg_id,
        create_time=1700000000,
    )


def test_reply_arrives_once_through_the_customer_service_api(
    yishi_env: Settings, monkeypatch: pytest.MonkeyPatch, wx: FakeWeChatServer
) -> None:
    settings = _configure(monkeypatch, wx)
    huey = jobs.configure(settings, immediate=False)
    consumer = jobs.start_consumer(huey, workers=2)
    try:
        with session_scope(settings) as session:
            first = pipeline.accept(session=session, msg=_msg("5001"))
            # WeChat's retries of the same message
            again = pipeline.accept(session=session, msg=_msg("5001"))
            third = pipeline.accept(session=session, msg=_msg("5001"))
        assert again.duplicate and third.duplicate
        assert _wait(lambda: len(wx.sent(CUSTOM_SEND)) >= 1)
        time.sleep(0.5)  # give any duplicate a chance to show up
    finally:
        consumer.stop(graceful=True)
    sends = wx.sent(CUSTOM_SEND)
    assert len(sends) == 1
    assert sends[0]["touser"] == "oResident1" and sends[0]["msgtype"] == "text"
    assert len(wx.calls(TOKEN)) == 1  # one token fetch, cached for the rest
    with session_scope(settings) as session:
        row = session.get(InboundMessage, first.inbound_id)
        assert row is not None and row.status is InboundStatus.replied
        out = session.exec(select(OutboundMessage)).one()
        assert out.status is OutboundStatus.sent


def test_window_expired_waits_for_the_next_message_and_is_listed_for_staff(
    yishi_env: Settings, monkeypatch: pytest.MonkeyPatch, wx: FakeWeChatServer
) -> None:
    from yishi.bot import service as bot_service

    settings = _configure(monkeypatch, wx)
    jobs.configure(settings, immediate=True)
    wx.script(CUSTOM_SEND, 45015)
    pipeline.run_turn(msg=_msg("6001"))
    pipeline.deliver_outbound(1)
    with session_scope(settings) as session:
        out = session.exec(select(OutboundMessage)).one()
        # not "failed" while its error text says it goes out on the resident's next message
        assert out.status is OutboundStatus.deferred and out.errcode == 45015
        assert "下次" in (out.last_error or "")
        assert [o.id for o in bot_service.get_flagged(session=session).outbound] == [out.id]
    pipeline.run_turn(msg=_msg("6002"))  # the resident writes again: the window reopens
    with session_scope(settings) as session:
        first = session.get(OutboundMessage, 1)
        assert first is not None and first.status is OutboundStatus.sent
        assert bot_service.get_flagged(session=session).outbound == []
    assert len(wx.sent(CUSTOM_SEND)) == 2


def test_rate_limited_send_is_retried_and_then_delivered(
    yishi_env: Settings, monkeypatch: pytest.MonkeyPatch, wx: FakeWeChatServer
) -> None:
    settings = _configure(monkeypatch, wx)
    jobs.configure(settings, immediate=False)
    with session_scope(settings) as session:
        accepted = pipeline.accept(session=session, msg=_msg("7001"))
    wx.script(CUSTOM_SEND, 45009)
    pipeline.process_inbound(accepted.inbound_id)
    with session_scope(settings) as session:
        out_id = session.exec(select(OutboundMessage)).one().id
        assert out_id is not None
    pipeline.deliver_outbound(out_id)  # refused: scheduled again with backoff
    with session_scope(settings) as session:
        pending = session.get(OutboundMessage, out_id)
        assert pending is not None and pending.status is OutboundStatus.pending
        assert pending.errcode == 45009
        assert pending.next_attempt_at is not None and pending.lease_owner is None
    assert any(task.eta for task in jobs.get_huey().pending())  # the retry, with its delay
    pipeline.deliver_outbound(out_id)
    with session_scope(settings) as session:
        sent = session.get(OutboundMessage, out_id)
        assert sent is not None and sent.status is OutboundStatus.sent
    assert len(wx.sent(CUSTOM_SEND)) == 1


def test_quota_exhausted_waits_for_the_residents_next_message(
    yishi_env: Settings, monkeypatch: pytest.MonkeyPatch, wx: FakeWeChatServer
) -> None:
    settings = _configure(monkeypatch, wx)
    jobs.configure(settings, immediate=True)
    wx.script(CUSTOM_SEND, 45047)
    pipeline.run_turn(msg=_msg("8001"))
    with session_scope(settings) as session:
        out = session.exec(select(OutboundMessage)).one()
        assert out.status is OutboundStatus.deferred
    pipeline.run_turn(msg=_msg("8002", text="你好"))  # reopens the window
    with session_scope(settings) as session:
        rows = session.exec(select(OutboundMessage).order_by(col(OutboundMessage.id))).all()
        assert [r.status for r in rows] == [OutboundStatus.sent, OutboundStatus.sent]
    assert len(wx.sent(CUSTOM_SEND)) == 2


def test_sweep_recovers_a_message_whose_worker_died(
    yishi_env: Settings, monkeypatch: pytest.MonkeyPatch, wx: FakeWeChatServer
) -> None:
    settings = _configure(monkeypatch, wx)
    jobs.configure(settings, immediate=True)
    from yishi.core import clock

    with session_scope(settings) as session:
        # stored, but the process died before the job ran (nothing consumed the queue)
        row = InboundMessage(
            dedupe_key="wechat_mp:msg:9001",
            channel="wechat_mp",
            user_id="wechat_mp:oResident1",
            sender="oResident1",
            content="帮助",
        )
        session.add(row)
    real = time.time
    clock.set_clock(lambda: real() + 120)  # two minutes later
    counts = pipeline.sweep()
    assert counts["inbound"] == 1
    assert len(wx.sent(CUSTOM_SEND)) == 1
