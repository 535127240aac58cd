"""Issues: recording (with redaction, routing and duplicate joining), the status machine,
the timeline, views for staff and residents, and overdue detection.

Notifications are not sent here; `flows.py` wraps the state changes that notify people.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import or_
from sqlmodel import Session, col, select

from yishi.core.auth import Actor
from yishi.core.clock import local_time, utcnow
from yishi.core.config import Settings
from yishi.core.errors import Forbidden, Invalid, NotFound
from yishi.core.models import Role
from yishi.deliberation import responsibility
from yishi.deliberation.models import (
    OPEN_ISSUE_STATUSES,
    Category,
    Issue,
    IssueEvent,
    IssueStatus,
    IssueSupporter,
    Urgency,
)
from yishi.deliberation.places import (
    Place,
    infer_category,
    infer_urgency,
    normalise_location,
    strip_location,
)
from yishi.deliberation.schemas import STATUS_LABELS, IssueRecorded

# --- similarity ---------------------------------------------------------------------------------

_FILLER = set("了的啊呢吧呀嘛吗哦哈是在有也都还又就很太我们你他她它这那个")


def _bigrams(text: str) -> set[str]:
    chars = [c for c in strip_location(text) if not c.isspace() and c not in _FILLER
             and (c.isalnum() or "\u4e00" <= c <= "\u9fff")]
    if len(chars) == 1:
        return {chars[0]}
    return {chars[i] + chars[i + 1] for i in range(len(chars) - 1)}


def text_similarity(a: str, b: str) -> float:
    """Overlap of character bigrams outside the location words (0..1); short texts count fully."""
    x, y = _bigrams(a), _bigrams(b)
    if not x or not y:
        return 0.0
    return len(x & y) / min(len(x), len(y))


DUPLICATE_THRESHOLD = 0.34

# Kept off the residents' public board: they are about particular people.
PRIVATE_CATEGORIES = (Category.neighbour_dispute.value, Category.elderly_care.value)


# --- redaction ---------------------------------------------------------------------------------



def redact(text: str) -> str:
    """Personal data removed, by the moderation screen."""
    from yishi.moderation import service as moderation_service

    return str(moderation_service.screen(text).redacted)


# --- service --------------------------------------------------------------------------------

ALLOWED_TRANSITIONS: dict[str, set[str]] = {
    IssueStatus.reported: {IssueStatus.assigned, IssueStatus.in_progress, IssueStatus.rejected},
    IssueStatus.assigned: {IssueStatus.in_progress, IssueStatus.resolved, IssueStatus.rejected},
    IssueStatus.in_progress: {IssueStatus.resolved, IssueStatus.rejected},
    IssueStatus.resolved: {IssueStatus.closed, IssueStatus.in_progress},
    IssueStatus.closed: set(),
    IssueStatus.rejected: set(),
}


def _event(session: Session, issue: Issue, kind: str, actor_id: str | None, *,
           from_status: str | None = None, to_status: str | None = None, note: str = "",
           at: datetime | None = None) -> None:
    assert issue.id is not None
    session.add(IssueEvent(issue_id=issue.id, kind=kind, actor_id=actor_id,
                           from_status=from_status, to_status=to_status, note=note,
                           at=at or utcnow()))


def find_open_duplicate(*, session: Session, text: str, category: str,
                        location_key: str | None) -> Issue | None:
    """An open issue at the same place about the same problem, if there is one."""
    if not location_key:
        return None
    candidates = session.exec(
        select(Issue).where(
            Issue.location_key == location_key,
            col(Issue.status).in_([s.value for s in OPEN_ISSUE_STATUSES]),
        ).order_by(col(Issue.created_at))
    ).all()
    best, best_score = None, 0.0
    for issue in candidates:
        if issue.category != category and Category.other.value not in (issue.category, category):
            continue
        score = text_similarity(text, issue.text)
        if score >= DUPLICATE_THRESHOLD and score > best_score:
            best, best_score = issue, score
    return best


def record_issue(
    *,
    session: Session,
    actor: Actor,
    text: str,
    category: str | None = None,
    location: str | None = None,
    urgency: str | None = None,
    media: Sequence[str] = (),
    settings: Settings | None = None,
) -> IssueRecorded:
    """Record a report: redact, classify, place, join an open duplicate or route a new issue."""
    text = (text or "").strip()
    if not text:
        raise Invalid("请描述一下遇到的问题", hint="例如：3栋2单元楼道灯坏了")
    if category is not None and category not in Category.__members__:
        raise Invalid(f"未知类别：{category}")
    if urgency is not None and urgency not in Urgency.__members__:
        raise Invalid(f"未知紧急程度：{urgency}", hint="可选 low、normal、high、urgent")
    clean = redact(text)
    missing: list[str] = []
    inferred = category or infer_category(text)
    if inferred is None:
        missing.append("category")
    cat = inferred or Category.other.value
    place = normalise_location(location) if location else Place(key=None)
    if place.key is None:
        place = normalise_location(text)
    if place.key is None and location and location.strip():
        # An unrecognised place ("后门小卖部旁") still dedupes against the same wording.
        place = Place(key="text:" + re.sub(r"[\s的]|小区", "", location)[:80])
    if place.key is None and not location:
        missing.append("location")
    now = utcnow()

    duplicate = find_open_duplicate(session=session, text=clean, category=cat,
                                    location_key=place.key)
    if duplicate is not None:
        return _join(session=session, actor=actor, issue=duplicate, text=clean, now=now)

    level = urgency or infer_urgency(text)
    issue = Issue(
        reporter_id=actor.user_id,
        reporter_channel=actor.channel,
        text=clean,
        category=cat,
        location=redact(location) if location else (place.label or None),
        location_key=place.key,
        building=place.building,
        urgency=level,
        media=list(media),
        created_at=now,
        updated_at=now,
    )
    session.add(issue)
    session.flush()
    _event(session, issue, "reported", actor.user_id, to_status=IssueStatus.reported, at=now)
    entry, due = responsibility.route_to_responsible_party(
        session=session, category=cat, urgency=level, now=now, settings=settings
    )
    if entry is not None:
        issue.responsible_party = entry.party
        issue.due_at = due
        issue.status = IssueStatus.assigned.value
        _event(session, issue, "routed", None, from_status=IssueStatus.reported,
               to_status=IssueStatus.assigned,
               note=f"{entry.party}，时限 {entry.sla_for(level)} 小时", at=now)
    session.add(issue)
    session.commit()
    session.refresh(issue)
    return IssueRecorded(issue=issue, joined_existing=False, missing=missing,
                         notice=_recorded_notice(issue, missing))


def _join(*, session: Session, actor: Actor, issue: Issue, text: str,
          now: datetime) -> IssueRecorded:
    assert issue.id is not None
    already = issue.reporter_id == actor.user_id or session.exec(
        select(IssueSupporter).where(IssueSupporter.issue_id == issue.id,
                                     IssueSupporter.user_id == actor.user_id)
    ).first() is not None
    if not already:
        session.add(IssueSupporter(issue_id=issue.id, user_id=actor.user_id,
                                   channel=actor.channel, text=text, created_at=now))
        issue.supporter_count += 1
        issue.updated_at = now
        session.add(issue)
        _event(session, issue, "supporter", actor.user_id, note=text[:200], at=now)
        session.commit()
    session.refresh(issue)
    status = STATUS_LABELS.get(issue.status, issue.status)
    party = f"，由{issue.responsible_party}处理" if issue.responsible_party else ""
    if already:
        notice = f"您已经报告过这个问题（编号 {issue.id}，当前{status}{party}），有进展会通知您。"
    else:
        notice = (f"同一地点的这个问题已有居民报告（编号 {issue.id}，当前{status}{party}）。"
                  f"已把您记为支持者（共 {issue.supporter_count + 1} 人反映），进展会一并通知您。")
    return IssueRecorded(issue=issue, joined_existing=True, missing=[], notice=notice)


def _recorded_notice(issue: Issue, missing: list[str]) -> str:
    parts = [f"已记录您反映的问题（编号 {issue.id}）。"]
    if issue.responsible_party and issue.due_at:
        parts.append(f"已转交{issue.responsible_party}，预计"
                     f" {local_time(issue.due_at)} 前处理。")
    if "location" in missing:
        parts.append("请补充具体位置（如 3栋2单元 或 东门），方便尽快处理。")
    parts.append("发送“我的报修”可以查看进度。")
    return "".join(parts)


def _can_see(session: Session, actor: Actor, issue: Issue) -> bool:
    if actor.has_role(Role.staff) or issue.reporter_id == actor.user_id:
        return True
    if actor.has_role(Role.moderator):  # moderators: the public board, no private categories
        return issue.category not in PRIVATE_CATEGORIES
    return session.exec(
        select(IssueSupporter).where(IssueSupporter.issue_id == issue.id,
                                     IssueSupporter.user_id == actor.user_id)
    ).first() is not None


def get_issue(*, session: Session, actor: Actor, issue_id: int) -> Issue:
    """One issue; residents see only issues they reported or support."""
    issue = session.get(Issue, issue_id)
    if issue is None:
        raise NotFound(f"没有编号为 {issue_id} 的问题", hint="发送“我的报修”查看您的问题编号")
    if not _can_see(session, actor, issue):
        raise Forbidden("只能查看自己反映或支持的问题")
    return issue


def get_issues_for_reporter(*, session: Session, actor: Actor) -> list[Issue]:
    """Issues the actor reported or joined as a supporter, newest first."""
    supported = select(IssueSupporter.issue_id).where(IssueSupporter.user_id == actor.user_id)
    return list(session.exec(
        select(Issue).where(or_(col(Issue.reporter_id) == actor.user_id,
                                col(Issue.id).in_(supported)))
        .order_by(col(Issue.created_at).desc(), col(Issue.id).desc())
    ).all())


def sees_reporter(actor: Actor, issue: Issue) -> bool:
    """Whether `actor` may see who reported `issue` and its staff timeline (staff, the reporter)."""
    return actor.has_role(Role.staff) or issue.reporter_id == actor.user_id


_PUBLIC_EVENTS = ("reported", "routed", "assigned", "status")


def get_timeline(*, session: Session, actor: Actor, issue_id: int) -> list[IssueEvent]:
    """The issue's events in order; others than staff and the reporter see only status steps,
    without who acted or staff notes."""
    issue = get_issue(session=session, actor=actor, issue_id=issue_id)
    events = list(session.exec(
        select(IssueEvent).where(IssueEvent.issue_id == issue_id)
        .order_by(col(IssueEvent.at), col(IssueEvent.id))
    ).all())
    if sees_reporter(actor, issue):
        return events
    return [IssueEvent(id=e.id, issue_id=e.issue_id, kind=e.kind, actor_id=None,
                       from_status=e.from_status, to_status=e.to_status, note="", at=e.at)
            for e in events if e.kind in _PUBLIC_EVENTS]


def get_supporters(*, session: Session, issue_id: int) -> list[str]:
    """User ids of an issue's supporters."""
    return list(session.exec(
        select(IssueSupporter.user_id).where(IssueSupporter.issue_id == issue_id)
    ).all())


def is_overdue(issue: Issue, now: datetime | None = None) -> bool:
    """Open and past its due time."""
    now = now or utcnow()
    return (issue.status in {s.value for s in OPEN_ISSUE_STATUSES}
            and issue.due_at is not None and issue.due_at < now)


def list_issues(
    *,
    session: Session,
    actor: Actor,
    party: str | None = None,
    status: str | None = None,
    building: str | None = None,
    category: str | None = None,
    overdue: bool | None = None,
    limit: int = 200,
) -> list[Issue]:
    """The issue board filtered by party, status, building, category and overdue; residents
    see the public board (no personal categories)."""
    query = select(Issue)
    if not actor.has_role(Role.staff):
        query = query.where(col(Issue.category).not_in(PRIVATE_CATEGORIES))
    if party:
        query = query.where(Issue.responsible_party == party)
    if status:
        query = query.where(Issue.status == status)
    if building:
        norm = normalise_location(building if not building.isdigit() else f"{building}栋")
        query = query.where(Issue.building == (norm.building or building))
    if category:
        query = query.where(Issue.category == category)
    now = utcnow()
    open_values = [s.value for s in OPEN_ISSUE_STATUSES]
    if overdue is True:
        query = query.where(col(Issue.status).in_(open_values), col(Issue.due_at).is_not(None),
                            col(Issue.due_at) < now)
    elif overdue is False:
        query = query.where(or_(col(Issue.status).not_in(open_values),
                                col(Issue.due_at).is_(None), col(Issue.due_at) >= now))
    query = query.order_by(col(Issue.due_at).is_(None), col(Issue.due_at), col(Issue.id))
    return list(session.exec(query.limit(limit)).all())


def transition(
    *,
    session: Session,
    actor: Actor,
    issue_id: int,
    to_status: str,
    note: str = "",
    reason: str | None = None,
) -> tuple[Issue, str]:
    """Staff: move an issue along the status machine; returns the issue and its old status."""
    actor.require(Role.staff)
    issue = get_issue(session=session, actor=actor, issue_id=issue_id)
    if to_status not in IssueStatus.__members__:
        raise Invalid(f"未知状态：{to_status}")
    old = issue.status
    if to_status not in ALLOWED_TRANSITIONS[IssueStatus(old)]:
        allowed = "、".join(sorted(ALLOWED_TRANSITIONS[IssueStatus(old)])) or "无"
        raise Invalid(f"问题当前为“{STATUS_LABELS[old]}”，不能改为“{STATUS_LABELS[to_status]}”",
                      hint=f"可改为：{allowed}")
    if to_status == IssueStatus.rejected and not (reason or "").strip():
        raise Invalid("不受理需要写明原因", hint="原因会告知反映问题的居民")
    now = utcnow()
    issue.status = to_status
    issue.updated_at = now
    if to_status == IssueStatus.rejected:
        issue.reject_reason = (reason or "").strip()
    if to_status == IssueStatus.resolved:
        issue.resolved_at = now
    if to_status == IssueStatus.in_progress and old == IssueStatus.resolved:
        issue.resolved_at = None
    session.add(issue)
    _event(session, issue, "status", actor.user_id, from_status=old, to_status=to_status,
           note=(reason or note or "").strip(), at=now)
    session.commit()
    session.refresh(issue)
    return issue, old


def assign(
    *,
    session: Session,
    actor: Actor,
    issue_id: int,
    party: str,
    due_at: datetime | None = None,
    note: str = "",
    settings: Settings | None = None,
) -> tuple[Issue, str]:
    """Staff: hand an issue to a party (due time from the list's SLA unless given)."""
    actor.require(Role.staff)
    issue = get_issue(session=session, actor=actor, issue_id=issue_id)
    if issue.status not in {s.value for s in OPEN_ISSUE_STATUSES}:
        raise Invalid(f"问题已{STATUS_LABELS[issue.status]}，不能再派单")
    now = utcnow()
    if due_at is None:
        _entry, due_at = responsibility.route_to_responsible_party(
            session=session, category=issue.category, urgency=issue.urgency, now=now,
            settings=settings)
    old = issue.status
    issue.responsible_party = party.strip()
    issue.due_at = due_at
    issue.overdue_flagged_at = None
    if issue.status == IssueStatus.reported:
        issue.status = IssueStatus.assigned.value
    issue.updated_at = now
    session.add(issue)
    _event(session, issue, "assigned", actor.user_id, from_status=old, to_status=issue.status,
           note=note or party, at=now)
    session.commit()
    session.refresh(issue)
    return issue, old


def merge(*, session: Session, actor: Actor, duplicate_id: int, into_id: int,
          note: str = "") -> Issue:
    """Staff: merge a duplicate issue into another: its reporter and supporters become the
    other's supporters, its timeline is copied over, and it is closed."""
    actor.require(Role.staff)
    if duplicate_id == into_id:
        raise Invalid("不能把问题合并到它自己")
    dup = get_issue(session=session, actor=actor, issue_id=duplicate_id)
    into = get_issue(session=session, actor=actor, issue_id=into_id)
    if dup.merged_into_id is not None:
        raise Invalid(f"问题 #{duplicate_id} 已经并入问题 #{dup.merged_into_id}")
    if into.merged_into_id is not None or into.status in (IssueStatus.closed,
                                                          IssueStatus.rejected):
        raise Invalid(f"问题 #{into_id} 已结束，不能作为合并目标", hint="请选择仍在处理的问题")
    now = utcnow()
    known = {into.reporter_id, *get_supporters(session=session, issue_id=into_id)}
    joining = [(dup.reporter_id, dup.reporter_channel, dup.text)]
    joining += [(s.user_id, s.channel, s.text) for s in session.exec(
        select(IssueSupporter).where(IssueSupporter.issue_id == duplicate_id))]
    for user_id, channel, text in joining:
        if user_id in known:
            continue
        known.add(user_id)
        session.add(IssueSupporter(issue_id=into_id, user_id=user_id, channel=channel,
                                   text=text, created_at=now))
        into.supporter_count += 1
    for e in get_timeline(session=session, actor=actor, issue_id=duplicate_id):
        session.add(IssueEvent(issue_id=into_id, kind=e.kind, actor_id=e.actor_id,
                               from_status=e.from_status, to_status=e.to_status,
                               note=f"（原问题 #{duplicate_id}）{e.note}".strip(), at=e.at))
    old = dup.status
    dup.status = IssueStatus.closed.value
    dup.merged_into_id = into_id
    dup.updated_at = into.updated_at = now
    session.add(dup)
    session.add(into)
    _event(session, dup, "merged", actor.user_id, from_status=old, to_status=dup.status,
           note=f"并入问题 #{into_id}" + (f"：{note}" if note else ""), at=now)
    _event(session, into, "merged", actor.user_id,
           note=f"问题 #{duplicate_id} 并入本问题" + (f"：{note}" if note else ""), at=now)
    session.commit()
    session.refresh(into)
    return into


def flag_overdue(*, session: Session, now: datetime | None = None) -> list[Issue]:
    """Mark open issues past their due time that were not flagged yet; returns those."""
    now = now or utcnow()
    rows = session.exec(
        select(Issue).where(
            col(Issue.status).in_([s.value for s in OPEN_ISSUE_STATUSES]),
            col(Issue.due_at).is_not(None),
            col(Issue.due_at) < now,
            col(Issue.overdue_flagged_at).is_(None),
        ).order_by(col(Issue.due_at))
    ).all()
    for issue in rows:
        issue.overdue_flagged_at = now
        session.add(issue)
        _event(session, issue, "overdue", None,
               note=f"已超过处理时限（{issue.responsible_party or '未派单'}）", at=now)
    session.commit()
    return list(rows)
