"""Flows: status changes notify reporter and supporters; the overdue sweep tells staff once."""

from __future__ import annotations

from sqlmodel import Session, col, select

from yishi.bot.models import OutboundMessage
from yishi.core.models import Role, User
from yishi.deliberation import flows, issues

from .factories import Actors, Clock, pk

resident = Actors.resident
staff = Actors.staff


def _outbox(session: Session) -> list[OutboundMessage]:
    return list(session.exec(select(OutboundMessage).order_by(col(OutboundMessage.id))).all())


def test_status_change_notifies_reporter_and_supporters(session: Session, clock: Clock) -> None:
    issue = issues.record_issue(session=session, actor=resident(1),
                                text="3栋2单元楼道灯坏了").issue
    issues.record_issue(session=session, actor=resident(2), text="3号楼2单元楼道灯不亮")
    assert _outbox(session) == []  # recording answers in the chat; nothing queued
    flows.change_issue_status(session=session, actor=staff(), issue_id=pk(issue),
                              to_status="in_progress", note="电工已出发")
    sent = _outbox(session)
    assert sorted(m.user_id for m in sent) == [resident(1).user_id, resident(2).user_id]
    assert all("处理中" in m.text and "电工已出发" in m.text for m in sent)
    assert {m.channel for m in sent} == {"wechat_mp"}
    flows.change_issue_status(session=session, actor=staff(), issue_id=pk(issue),
                              to_status="rejected", reason="已由供电公司处理")
    last = _outbox(session)[-1]
    assert "未受理" in last.text and "已由供电公司处理" in last.text


def test_assign_notifies_reporter(session: Session, clock: Clock) -> None:
    issue = issues.record_issue(session=session, actor=resident(1), text="东门的树枝挡路").issue
    flows.assign_issue(session=session, actor=staff(), issue_id=pk(issue), party="街道/城管")
    sent = _outbox(session)
    assert len(sent) == 1 and "街道/城管" in sent[0].text


def test_overdue_sweep_flags_once_and_tells_staff(session: Session, clock: Clock) -> None:
    session.add(User(name="王主任", role=Role.staff, external_id="wecom:wang"))
    session.add(User(name="居民", role=Role.resident, external_id="wechat_mp:o5"))
    session.commit()
    issue = issues.record_issue(session=session, actor=resident(1),
                                text="5栋垃圾桶满了没人清运").issue
    clock.advance(hours=23)
    assert flows.flag_overdue_and_notify(session=session) == []
    clock.advance(hours=2)
    flagged = flows.flag_overdue_and_notify(session=session)
    assert [pk(i) for i in flagged] == [issue.id]
    sent = _outbox(session)
    assert [m.user_id for m in sent] == ["wecom:wang"]
    assert f"编号 {issue.id}" in sent[0].text
    assert flows.flag_overdue_and_notify(session=session) == []
    assert len(_outbox(session)) == 1


def test_proposal_news_reaches_the_discussion(session: Session, clock: Clock) -> None:
    from yishi.deliberation import proposals, threads

    t = threads.create_thread(session=session, actor=staff(), title="健身区改造",
                              question="健身区要不要改造？", statements=["应当改造"])
    sid = pk(threads.get_statements(session=session, thread_id=pk(t))[0])
    threads.vote(session=session, actor=resident(1), statement_id=sid, value="agree")
    threads.post_to_thread(session=session, actor=resident(2), thread_id=pk(t), text="支持改造")
    p = proposals.draft_from_summary(session=session, actor=staff(), thread_id=pk(t))
    assert _outbox(session) == []  # a draft is not news yet
    flows.change_proposal_status(session=session, actor=staff(), proposal_id=pk(p),
                                 to_status="voting")
    sent = _outbox(session)
    assert sorted(m.user_id for m in sent) == [resident(1).user_id, resident(2).user_id]
    assert all("开始表决" in m.text for m in sent)
    proposals.cast_ballot(session=session, actor=resident(1), proposal_id=pk(p), choice="agree")
    flows.close_proposal_voting(session=session, actor=staff(), proposal_id=pk(p))
    assert all("通过" in m.text for m in _outbox(session)[2:]) and len(_outbox(session)) == 4


def test_a_held_report_keeps_all_its_fields_until_approved(session: Session) -> None:
    """Category, place, urgency and photos survive the hold (they no longer ride in a 200-char
    reference, which two photo addresses used to overflow)."""
    from yishi.deliberation.models import HeldIssue, Issue
    from yishi.moderation import service as moderation_service
    from yishi.moderation.models import ReviewItem

    flows.register_moderation_handlers()
    media = [f"https://files.example.org/photos/{i}/" + "a" * 120 + ".jpg" for i in range(2)]
    out = flows.record_screened_issue(
        session=session, actor=Actors.resident(1), text="楼上那个傻逼把垃圾堆在3栋楼道",
        category="garbage", location="3栋2单元楼道", urgency="high", media=media)
    session.commit()
    assert out.held and out.recorded is None
    item = session.exec(select(ReviewItem)).one()
    assert len(item.source_ref or "") <= 200
    moderation_service.edit_and_approve(session=session, actor=Actors.moderator(),
                                        item_id=pk(item), text="楼上邻居把垃圾堆在3栋楼道")
    issue = session.exec(select(Issue)).one()
    assert (issue.category, issue.urgency, list(issue.media or [])) == ("garbage", "high",
                                                                      media)
    assert "3栋" in (issue.location or "")
    assert session.exec(select(HeldIssue)).all() == []  # no second copy once released
