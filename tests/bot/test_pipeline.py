"""The message path end to end in one process: screen → engine → screen the reply → record."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import select

from yishi.bot import media, pipeline
from yishi.bot.engine import EngineReply
from yishi.bot.models import InboundMessage, InboundStatus, OutboundMessage, OutboundStatus
from yishi.bot.schemas import IncomingMessage
from yishi.core import jobs
from yishi.core.config import Settings
from yishi.core.db import init_db, session_scope


@pytest.fixture
def env(yishi_env: Settings) -> Settings:
    init_db(yishi_env)
    jobs.configure(yishi_env, immediate=True)
    return yishi_env


class ScriptedEngine:
    """A deterministic engine for the pipeline's own logic (the real engines have their tests)."""

    def __init__(self, reply: str = "好的", fail_times: int = 0) -> None:
        self.reply = reply
        self.fail_times = fail_times
        self.calls: list[str] = []

    def respond(
        self, *, session: Any, actor: Any, text: str, message_ref: str | None = None
    ) -> EngineReply:
        self.calls.append(text)
        if self.fail_times > 0:
            self.fail_times -= 1
            raise RuntimeError("engine crashed")
        return EngineReply(reply=self.reply, intent="chat", engine="offline")


def _web(text: str, user: str = "u1", n: int = 1) -> IncomingMessage:
    return IncomingMessage(channel="web", sender=user, content=text, create_time=n)


def test_help_goes_through_the_real_offline_engine(env: Settings) -> None:
    turn = pipeline.run_turn(msg=_web("帮助"))
    assert turn.status == "replied"
    assert turn.engine == "offline"
    assert turn.reply  # the offline engine always answers
    with session_scope(env) as session:
        row = session.exec(select(InboundMessage)).one()
        assert row.status is InboundStatus.replied and row.reply_text == turn.reply


def test_abusive_message_is_held_with_a_polite_notice(env: Settings) -> None:
    engine = ScriptedEngine()
    pipeline._engine = engine
    turn = pipeline.run_turn(msg=_web("你这个傻逼，滚出小区"))
    assert turn.status == "held"
    assert engine.calls == []  # the engine never saw it
    assert "傻逼" not in turn.reply
    from yishi.moderation.models import ReviewItem

    with session_scope(env) as session:
        items = session.exec(select(ReviewItem)).all()
        assert len(items) == 1


def test_a_reply_that_fails_screening_is_withheld(env: Settings) -> None:
    pipeline._engine = ScriptedEngine(reply="王五的身份证号是110101199003074514，电话13812345678")
    turn = pipeline.run_turn(msg=_web("请问王五住哪"))
    assert "110101199003074514" not in turn.reply
    assert "13812345678" not in turn.reply


def test_engine_crash_is_retried_then_visibly_flagged(env: Settings) -> None:
    pipeline._engine = ScriptedEngine(fail_times=10)
    turn = pipeline.run_turn(msg=_web("你好"))
    assert turn.status == "failed"
    assert turn.reply == pipeline.FAILED_NOTICE
    with session_scope(env) as session:
        row = session.exec(select(InboundMessage)).one()
        assert row.attempts == pipeline.MAX_ATTEMPTS
        assert "engine crashed" in (row.error or "")


def test_engine_crash_once_still_answers(env: Settings) -> None:
    pipeline._engine = ScriptedEngine(reply="第二次成功", fail_times=1)
    turn = pipeline.run_turn(msg=_web("你好"))
    assert turn.status == "replied" and turn.reply == "第二次成功"


def test_unsupported_types_and_empty_voice_get_polite_answers(env: Settings) -> None:
    img = pipeline.run_turn(
        msg=IncomingMessage(channel="web", sender="u2", msg_type="image", msg_id="9", create_time=5)
    )
    assert img.reply == media.PHOTO_UNAVAILABLE  # no media API behind the web simulator
    video = pipeline.run_turn(
        msg=IncomingMessage(
            channel="web", sender="u2", msg_type="video", msg_id="11", create_time=7
        )
    )
    assert video.reply == media.notice_for_type("video") and "视频" in video.reply
    voice = pipeline.run_turn(
        msg=IncomingMessage(
            channel="web", sender="u2", msg_type="voice", content="", msg_id="10", create_time=6
        )
    )
    assert voice.reply == pipeline.EMPTY_VOICE_NOTICE


def test_duplicate_delivery_is_answered_once(env: Settings) -> None:
    engine = ScriptedEngine()
    pipeline._engine = engine
    msg = IncomingMessage(channel="web", sender="u3", content="你好", msg_id="77", create_time=1)
    first = pipeline.run_turn(msg=msg)
    second = pipeline.run_turn(msg=msg)
    assert first.inbound_id == second.inbound_id
    assert len(engine.calls) == 1
    with session_scope(env) as session:
        assert len(session.exec(select(OutboundMessage)).all()) == 1


def test_outbound_to_web_is_delivered_by_being_read(env: Settings) -> None:
    pipeline.run_turn(msg=_web("帮助", user="u4"))
    with session_scope(env) as session:
        out = session.exec(select(OutboundMessage)).one()
        assert out.status is OutboundStatus.sent and out.user_id == "web:u4"


def test_a_flood_is_slowed_down_without_losing_messages(
    env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from yishi.core.config import get_settings

    monkeypatch.setenv("YISHI_RESIDENT_MESSAGES_PER_MINUTE", "3")
    get_settings.cache_clear()
    pipeline.reset_caches()
    engine = ScriptedEngine()
    pipeline._engine = engine
    turns = [pipeline.run_turn(msg=_web(f"第{i}条", user="flood", n=i)) for i in range(5)]
    assert [t.status for t in turns] == ["replied"] * 3 + ["held"] * 2
    assert turns[-1].reply == pipeline.SLOW_DOWN_NOTICE
    assert len(engine.calls) == 3
    other = pipeline.run_turn(msg=_web("你好", user="calm", n=99))
    assert other.status == "replied"  # the limit is per resident
    with session_scope(env) as session:
        assert len(session.exec(select(InboundMessage)).all()) == 6


def test_moderator_approval_answers_the_held_message(env: Settings) -> None:
    from yishi.core.auth import Actor
    from yishi.core.models import Role
    from yishi.moderation import service as moderation_service
    from yishi.moderation.models import ReviewItem

    pipeline.register_release_handlers()
    engine = ScriptedEngine(reply="已为您处理")
    pipeline._engine = engine
    held = pipeline.run_turn(msg=_web("你这个傻逼，滚出小区", user="u5"))
    assert held.status == "held" and engine.calls == []
    moderator = Actor(user_id="web:mod", role=Role.moderator)
    with session_scope(env) as session:
        item = session.exec(select(ReviewItem)).one()
        assert item.source == "inbound" and item.source_ref == str(held.inbound_id)
        assert item.id is not None
        moderation_service.approve(session=session, actor=moderator, item_id=item.id, reason="误判")
    with session_scope(env) as session:
        row = session.get(InboundMessage, held.inbound_id)
        assert row is not None and row.status is InboundStatus.replied
        assert row.reply_text == "已为您处理"
        replies = session.exec(
            select(OutboundMessage).where(OutboundMessage.inbound_id == held.inbound_id)
        ).all()
        assert [r.kind for r in replies] == ["notice", "reply"]
    assert len(engine.calls) == 1
