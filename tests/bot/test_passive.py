"""Passive reply mode: hold WeChat's request across its tries; deliver late answers next time."""

from __future__ import annotations

import asyncio

import pytest
from sqlmodel import select

from yishi.bot import pipeline
from yishi.bot.models import InboundMessage, OutboundMessage, OutboundStatus
from yishi.bot.schemas import IncomingMessage
from yishi.core import jobs
from yishi.core.config import Settings, get_settings
from yishi.core.db import init_db, session_scope


@pytest.fixture
def passive(yishi_env: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("YISHI_WECHAT_REPLY_MODE", "passive")
    monkeypatch.setenv("YISHI_WECHAT_PASSIVE_HOLD_S", "0.05")
    get_settings.cache_clear()
    settings = get_settings()
    init_db(settings)
    jobs.configure(settings, immediate=False)  # nothing consumes: the test drives the worker
    return settings


def _accept(settings: Settings, msg_id: str, text: str = "帮助") -> int:
    msg = IncomingMessage(
        channel="wechat_mp", sender="oPassive", content=text, msg_id=msg_id, create_time=1700000000
    )
    with session_scope(settings) as session:
        return pipeline.accept(session=session, msg=msg).inbound_id


def test_ready_reply_is_answered_in_the_http_response(passive: Settings) -> None:
    inbound_id = _accept(passive, "p1")
    pipeline.process_inbound(inbound_id)
    text = asyncio.run(pipeline.passive_reply(inbound_id=inbound_id, sender="oPassive", wait_s=0.5))
    assert text
    with session_scope(passive) as session:
        out = session.exec(select(OutboundMessage)).one()
        assert out.status is OutboundStatus.sent and out.text == text
    # WeChat retrying the same message afterwards gets no second copy
    again = asyncio.run(
        pipeline.passive_reply(inbound_id=inbound_id, sender="oPassive", wait_s=0.1)
    )
    assert again is None


def test_slow_answer_is_held_across_tries_then_delivered_on_the_next_message(
    passive: Settings,
) -> None:
    inbound_id = _accept(passive, "p2")
    # tries 1 and 2: not ready, keep WeChat retrying (None → the route's request times out)
    for _ in range(pipeline.PASSIVE_TRIES - 1):
        assert (
            asyncio.run(
                pipeline.passive_reply(inbound_id=inbound_id, sender="oPassive", wait_s=0.05)
            )
            is None
        )
    last = asyncio.run(
        pipeline.passive_reply(inbound_id=inbound_id, sender="oPassive", wait_s=0.05)
    )
    assert last == pipeline.STILL_WORKING
    pipeline.process_inbound(inbound_id)  # the answer is ready only now
    with session_scope(passive) as session:
        row = session.get(InboundMessage, inbound_id)
        assert row is not None and row.deliver_on_next
        out = session.exec(select(OutboundMessage)).one()
        assert out.status is OutboundStatus.deferred
        first_reply = out.text
    second_id = _accept(passive, "p3", text="你好")
    pipeline.process_inbound(second_id)
    combined = asyncio.run(
        pipeline.passive_reply(inbound_id=second_id, sender="oPassive", wait_s=0.5)
    )
    assert combined is not None
    assert pipeline.LATE_PREFIX + first_reply in combined
    with session_scope(passive) as session:
        statuses = {o.status for o in session.exec(select(OutboundMessage)).all()}
        assert statuses == {OutboundStatus.sent}


def test_answer_ready_after_wechat_gave_up_is_kept_for_the_retry(
    passive: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("YISHI_WECHAT_PASSIVE_HOLD_S", "0.5")
    get_settings.cache_clear()
    inbound_id = _accept(passive, "p4")

    async def first_try_while_the_worker_finishes() -> str | None:
        task = asyncio.create_task(
            pipeline.passive_reply(inbound_id=inbound_id, sender="oPassive", wait_s=0.05)
        )
        await asyncio.sleep(0.2)  # past this try's wait, inside its hold
        await asyncio.to_thread(pipeline.process_inbound, inbound_id)
        return await task

    assert asyncio.run(first_try_while_the_worker_finishes()) is None
    with session_scope(passive) as session:
        assert session.exec(select(OutboundMessage)).one().status is OutboundStatus.pending
    retry = asyncio.run(
        pipeline.passive_reply(inbound_id=inbound_id, sender="oPassive", wait_s=0.2)
    )
    assert retry  # WeChat's second try gets the answer


def test_a_long_passive_reply_is_split_and_the_rest_follows(passive: Settings) -> None:
    from tests.bot.test_pipeline import ScriptedEngine

    long_reply = "。".join(f"第{i}段说明，内容较长需要分开发送" for i in range(200)) + "。"
    pipeline._engine = ScriptedEngine(reply=long_reply)
    inbound_id = _accept(passive, "p5")
    pipeline.process_inbound(inbound_id)
    first = asyncio.run(
        pipeline.passive_reply(inbound_id=inbound_id, sender="oPassive", wait_s=0.5)
    )
    assert first is not None and first.endswith(pipeline.MORE_TO_COME)
    assert len(first.encode()) <= 2048
    received = [first.removesuffix(pipeline.MORE_TO_COME)]
    for n in range(10):  # the resident keeps writing; each answer carries the next part
        next_id = _accept(passive, f"p6-{n}", text="1")
        pipeline._engine = ScriptedEngine(reply="好的")
        pipeline.process_inbound(next_id)
        more = asyncio.run(
            pipeline.passive_reply(inbound_id=next_id, sender="oPassive", wait_s=0.5)
        )
        assert more is not None and len(more.encode()) <= 2048
        received.append(more)
        if not more.endswith(pipeline.MORE_TO_COME):
            break
    joined = "".join(received)
    for i in (0, 57, 199):
        assert f"第{i}段说明" in joined
