"""Export, retention, figures and the notice — on SQLite and PostgreSQL — and queued jobs in
Redis scrubbed on erasure."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from tests.privacy.conftest import USER_ID, say
from yishi.bot.memory_models import ConversationTurn
from yishi.bot.models import InboundMessage, OutboundMessage
from yishi.bot.schemas import IncomingMessage
from yishi.core import jobs
from yishi.core.auth import Actor
from yishi.core.clock import set_clock, timestamp, utcnow
from yishi.core.config import Settings
from yishi.core.db import session_scope
from yishi.deliberation import issues as issue_service
from yishi.moderation import service as moderation_service
from yishi.moderation.models import ReviewItem
from yishi.privacy import service as privacy_service
from yishi.privacy.models import PrivacyEvent, PrivacyNotice

RESIDENT = Actor(user_id=USER_ID, role="resident", channel="wechat_mp")  # type: ignore[arg-type]
MODERATOR = Actor(user_id="web:mod1", role="moderator", channel="web")  # type: ignore[arg-type]


def _history(settings: Settings) -> int:
    jobs.configure(settings, immediate=True)
    say("帮助")
    say("3栋2单元楼道灯坏了一周了")
    with session_scope(settings) as session:
        verdict = moderation_service.screen("你这个傻逼物业")
        item = moderation_service.hold(session=session, text="你这个傻逼物业", verdict=verdict,
                                       sender_id=USER_ID, source="inbound", source_ref=None)
        assert item.id is not None
        moderation_service.reject(session=session, actor=MODERATOR, item_id=item.id,
                                  reason="辱骂")
        return item.id


def test_export_has_messages_issues_votes_and_moderation(any_db_env: Settings) -> None:
    item_id = _history(any_db_env)
    with session_scope(any_db_env) as session:
        data = privacy_service.export(session=session, user_id=USER_ID, actor="web:staff1")
        assert [m["text"] for m in data["messages"]][:2] == ["帮助", "3栋2单元楼道灯坏了一周了"]
        assert data["issues_reported"] and "楼道灯" in data["issues_reported"][0]["text"]
        items = data["moderation"]["review_items"]
        assert [i["id"] for i in items] == [item_id] and items[0]["status"] == "rejected"
        assert any(d["action"] == "rejected" or d["review_item_id"] == item_id
                   for d in data["moderation"]["decisions"])
        assert data["moderation"]["strikes"]
        assert set(data) >= {"votes", "statements", "sent_to_you", "conversation_memory"}
        assert session.exec(select(PrivacyEvent).where(PrivacyEvent.action == "export")).first()
    summary = say("导出我的信息")
    assert "消息" in summary and "工作人员" in summary and "删除我的信息" in summary


def test_retention_purges_old_texts_and_decided_review_items(any_db_env: Settings) -> None:
    item_id = _history(any_db_env)
    start = utcnow()
    later = timestamp() + 181 * 86400
    try:
        # 181 days later the old texts go; the review item's appeal window has long passed.
        set_clock(lambda: later)
        say("5栋电梯坏了")  # a new message, which stays
        with session_scope(any_db_env) as session:
            counts = privacy_service.retention_sweep(session=session, settings=any_db_env)
            assert counts["messages"] >= 2 and counts["review_items"] == 1
            left = session.exec(select(InboundMessage.content)).all()
            assert left == ["5栋电梯坏了"]
            assert all(o.created_at >= start + timedelta(days=180)
                       for o in session.exec(select(OutboundMessage)).all())
            item = session.get(ReviewItem, item_id)
            assert item is not None and item.text == "" and item.status == "rejected"
            held = privacy_service.figures(session=session, settings=any_db_env)
            assert held["retention_days"] == 180 and held["messages"]["count"] == 1
            assert held["messages"]["oldest_days"] == 0
            audit = session.exec(select(PrivacyEvent).where(PrivacyEvent.action == "retention"))
            assert [e.actor for e in audit] == ["system"]
    finally:
        set_clock(None)


def test_notice_on_first_contact_and_subscribe_and_unsubscribe_forgets(
    any_db_env: Settings,
) -> None:
    jobs.configure(any_db_env, immediate=True)
    first = say("帮助")
    assert first.startswith("【个人信息说明】") and "180 天" in first and "删除我的信息" in first
    assert not say("帮助").startswith("【个人信息说明】")
    with session_scope(any_db_env) as session:
        assert session.get(PrivacyNotice, USER_ID) is not None
        assert session.exec(select(ConversationTurn).where(
            ConversationTurn.user_id == USER_ID)).first() is not None

    def event(name: str) -> str:
        from yishi.bot import pipeline

        msg = IncomingMessage(channel="wechat_mp", sender=USER_ID.split(":", 1)[1],
                              msg_type="event", event=name, content="",
                              create_time=int(timestamp()))
        return pipeline.run_turn(msg=msg).reply

    assert event("subscribe").startswith("【个人信息说明】")  # shown again on every subscribe
    event("unsubscribe")
    with session_scope(any_db_env) as session:
        assert session.exec(select(ConversationTurn).where(
            ConversationTurn.user_id == USER_ID)).first() is None
    # The web simulator and the CLI get no notice.
    assert not say("帮助", sender="u1", channel="web").startswith("【个人信息说明】")


def test_erasure_scrubs_queued_jobs_in_redis(yishi_env: Settings, redis_url: str) -> None:
    from yishi.core.db import init_db

    settings = yishi_env.model_copy(update={"redis_url": redis_url})
    init_db(settings)
    huey = jobs.configure(settings, immediate=False)
    with session_scope(settings) as session:
        issue_service.record_issue(session=session, actor=RESIDENT, text="3栋楼道灯坏了")
        session.add(InboundMessage(dedupe_key="k1", channel="wechat_mp", user_id=USER_ID,
                                   sender=USER_ID.split(":", 1)[1], content="我的电话13812345678"))
        session.commit()
        inbound_id = session.exec(select(InboundMessage.id)).one()
        assert inbound_id is not None
    jobs.enqueue("bot.answer_released", inbound_id, "我的电话13812345678")
    jobs.enqueue("bot.answer_released", inbound_id + 1, "别人的消息")
    jobs.enqueue("bot.answer_released", inbound_id, "稍后", delay=3600)
    later = jobs._tasks["bot.answer_released"].s(inbound_id, "再晚些")
    huey.storage.add_to_schedule(huey.serialize_task(later), utcnow() + timedelta(hours=1))
    assert len(huey.storage.enqueued_items()) == 3 and len(huey.storage.scheduled_items()) == 1
    with session_scope(settings) as session:
        done = privacy_service.erase(session=session, user_id=USER_ID, settings=settings)
    assert done.counts["queued_jobs"] == 3
    left = [huey.deserialize_task(raw).args for raw in huey.storage.enqueued_items()]
    assert left == [(inbound_id + 1, "别人的消息")] and huey.storage.scheduled_items() == []
