"""A muted resident still reaches staff, their issues and the appeal, and an urgent report is
recorded whatever the mute; everything else waits with a notice that says why and how long."""

from __future__ import annotations

import pytest
from sqlmodel import select

from yishi.bot import pipeline
from yishi.bot.intents import allowed_while_muted
from yishi.bot.schemas import IncomingMessage
from yishi.core import jobs
from yishi.core.auth import Actor
from yishi.core.config import Settings
from yishi.core.db import init_db, session_scope
from yishi.core.models import Role
from yishi.deliberation.models import Issue
from yishi.moderation import service as moderation_service
from yishi.moderation.models import Appeal


@pytest.fixture
def muted(yishi_env: Settings) -> Settings:
    init_db(yishi_env)
    jobs.configure(yishi_env, immediate=True)
    pipeline.reset_caches()
    mod = Actor(user_id="web:mod", role=Role.moderator)
    with session_scope(yishi_env) as session:
        verdict = moderation_service.screen("你就是个傻逼")
        moderation_service.hold(session=session, text="你就是个傻逼", verdict=verdict,
                                sender_id="web:m1", source="inbound")
        moderation_service.mute(session=session, actor=mod, sender_id="web:m1", hours=24,
                                reason="多次辱骂")
    return yishi_env


def _say(text: str, n: int) -> str:
    msg = IncomingMessage(channel="web", sender="m1", content=text, create_time=n)
    return pipeline.run_turn(msg=msg).reply


@pytest.mark.parametrize("text", ["转人工", "我的问题", "申诉 我是在转述别人的话",
                                  "3栋2单元楼道里燃气泄漏了，味道很大"])
def test_what_a_muted_resident_may_still_send(text: str) -> None:
    assert allowed_while_muted(text)


def test_ordinary_messages_are_not_exempt() -> None:
    assert not allowed_while_muted("小区换物业要多少业主同意")
    assert not allowed_while_muted("3栋2单元楼道灯坏了")


def test_muted_resident_is_told_what_still_works(muted: Settings) -> None:
    reply = _say("小区换物业要多少业主同意", 1)
    assert "转人工" in reply and "我的问题" in reply and "申诉" in reply


def test_muted_resident_can_hand_off_appeal_and_report_an_emergency(muted: Settings) -> None:
    assert "工作人员" in _say("转人工", 1)
    assert "申诉" in _say("申诉 我是在转述别人的话", 2)
    _say("3栋2单元楼道里燃气泄漏了，味道很大", 3)
    with session_scope(muted) as session:
        appeal = session.exec(select(Appeal)).one()
        assert appeal.sender_id == "web:m1" and "转述" in appeal.reason
        issue = session.exec(select(Issue).where(Issue.reporter_id == "web:m1")).one()
        assert issue.urgency == "urgent"
