"""Issues: recording (with redaction, routing and duplicate joining), the status machine,
the timeline, views for staff and residents, and overdue detection.

Notifications are not sent here; `flows.py` wraps the state changes that notify people.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import or_
from sqlmodel import Session, col, select

from yishi.core.auth import Actor
from yishi.core.clock import utcnow
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
from yishi.deliberation.schemas import STATUS_LABELS, IssueRecorded

# --- location normalisation -------------------------------------------------------------------

_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5,
              "六": 6, "七": 7, "八": 8, "九": 9}
_NUM = r"(\d+|[零〇一二两三四五六七八九十百]+)"
_BEFORE_UNIT = r"(?=\s*" + _NUM + r"\s*单元)"
_BUILDING_RE = re.compile(
    _NUM + r"\s*(?:号楼|号院|栋|幢|座|#楼?|＃楼?|号" + _BEFORE_UNIT + r"|楼" + _BEFORE_UNIT + ")"
)
_UNIT_RE = re.compile(_NUM + r"\s*单元")
_ROOM_RE = re.compile(r"(?:单元|栋|幢|号楼)\s*(\d{3,4})\s*(?:室|号|房)?")
_ROOM_ALONE_RE = re.compile(r"(\d{3,4})\s*(?:室|房间)")
_DASHED_RE = re.compile(r"(?<!\d)(\d{1,3})\s*[-－—]\s*(\d{1,2})\s*[-－—]\s*(\d{3,4})(?!\d)")

# Public places: (pattern, canonical name). Order matters: more specific first.
_PLACES: list[tuple[str, str]] = [
    (r"地下车库|地库|地下停车场", "地下车库"),
    (r"停车场", "停车场"),
    (r"(?:小区)?东(?:大)?门", "东门"),
    (r"(?:小区)?南(?:大)?门", "南门"),
    (r"(?:小区)?西(?:大)?门", "西门"),
    (r"(?:小区)?北(?:大)?门", "北门"),
    (r"(?:小区)?(?:正门|大门)", "大门"),
    (r"儿童游乐(?:区|场)|游乐场|滑梯", "儿童游乐区"),
    (r"健身(?:区|器材|场)", "健身区"),
    (r"(?:中心)?广场", "广场"),
    (r"垃圾(?:站|房|投放点|分类亭)", "垃圾站"),
    (r"快递柜|快递点|驿站", "快递点"),
    (r"充电桩|充电棚", "充电区"),
    (r"(?:中心)?花园|绿地|草坪", "花园"),
    (r"物业(?:办公室|服务中心|中心)", "物业服务中心"),
]


def _cn_int(token: str) -> int | None:
    """Arabic or Chinese numerals up to 999 (三 → 3, 十二 → 12, 二十三 → 23)."""
    if token.isdigit():
        return int(token)
    total, current = 0, 0
    for ch in token:
        if ch in _CN_DIGITS:
            current = _CN_DIGITS[ch]
        elif ch == "十":
            total += (current or 1) * 10
            current = 0
        elif ch == "百":
            total += (current or 1) * 100
            current = 0
        else:
            return None
    return total + current


@dataclass(frozen=True)
class Place:
    """A normalised place: building/unit/room, or a named public place."""

    key: str | None
    building: str | None = None
    unit: str | None = None
    room: str | None = None
    public: str | None = None

    @property
    def label(self) -> str:
        if self.public:
            return self.public
        parts = []
        if self.building:
            parts.append(f"{self.building}栋")
        if self.unit:
            parts.append(f"{self.unit}单元")
        if self.room:
            parts.append(f"{self.room}室")
        return "".join(parts)


def normalise_location(text: str | None) -> Place:
    """Find the place in free text: 3栋2单元 / 3号楼2单元 / 三幢二单元 / 3-2-301 all agree."""
    if not text:
        return Place(key=None)
    building = unit = room = None
    dashed = _DASHED_RE.search(text)
    if dashed:
        building, unit, room = dashed.group(1), dashed.group(2), dashed.group(3)
    else:
        b = _BUILDING_RE.search(text)
        if b:
            n = _cn_int(b.group(1))
            building = str(n) if n is not None else None
        u = _UNIT_RE.search(text)
        if u:
            n = _cn_int(u.group(1))
            unit = str(n) if n is not None else None
        r = _ROOM_RE.search(text) or _ROOM_ALONE_RE.search(text)
        if r and (building or unit):
            room = r.group(1)
    if building:
        key = f"b{building}"
        if unit:
            key += f"/u{unit}"
        if room:
            key += f"/r{room}"
        return Place(key=key, building=building, unit=unit, room=room)
    for pattern, name in _PLACES:
        if re.search(pattern, text):
            return Place(key=f"place:{name}", public=name)
    return Place(key=None)


def _strip_location(text: str) -> str:
    text = _DASHED_RE.sub(" ", text)
    text = _BUILDING_RE.sub(" ", text)
    text = _UNIT_RE.sub(" ", text)
    text = _ROOM_ALONE_RE.sub(" ", text)
    for pattern, _name in _PLACES:
        text = re.sub(pattern, " ", text)
    return text


# --- categories, urgency, similarity ------------------------------------------------------------

_CATEGORY_WORDS: dict[str, tuple[str, ...]] = {
    "fire_safety": ("消防", "灭火器", "消防通道", "火灾", "着火", "冒烟", "飞线充电", "楼道堆物",
                    "堆放杂物", "电动车进楼", "烟感"),
    "illegal_construction": ("违建", "违章", "私搭", "搭建", "乱搭", "加建", "封阳台"),
    "fees": ("物业费", "收费", "费用", "乱收费", "涨价", "维修资金", "账目"),
    "parking": ("停车", "车位", "乱停", "占用车位", "挡道", "堵车", "僵尸车"),
    "noise": ("噪音", "太吵", "吵闹", "扰民", "广场舞", "装修声", "半夜施工", "夜间施工"),
    "pets": ("狗", "猫", "宠物", "遛狗", "拴绳", "犬"),
    "garbage": ("垃圾", "清运", "垃圾桶", "分类"),
    "cleaning": ("保洁", "打扫", "脏", "卫生", "积水", "异味", "臭"),
    "greenery": ("绿化", "树枝", "树木", "草坪", "修剪", "花草", "枯树"),
    "security": ("监控", "门岗", "保安", "陌生人", "被盗", "小偷", "门禁失灵", "治安"),
    "neighbour_dispute": ("邻居", "纠纷", "吵架", "楼上", "楼下漏"),
    "elderly_care": ("老人", "独居", "助老", "养老", "老年", "摔倒"),
    "repairs": ("坏", "修", "漏水", "渗水", "不亮", "电梯", "水管", "下水道", "堵塞", "停电",
                "停水", "故障", "破损", "脱落", "门禁", "路灯", "楼道灯"),
}
_URGENT_WORDS = ("着火", "火灾", "冒烟", "燃气", "煤气", "漏电", "触电", "被困", "困在电梯",
                 "爆", "塌", "倒了人", "晕倒", "大量漏水")
_HIGH_WORDS = ("漏水", "停电", "停水", "电梯坏", "电梯停", "堵塞", "摔倒", "危险")
_FILLER = set("了的啊呢吧呀嘛吗哦哈是在有也都还又就很太我们你他她它这那个")


def infer_category(text: str) -> str | None:
    """The category whose keywords cover most of the text, or None."""
    best, best_score = None, 0
    for category, words in _CATEGORY_WORDS.items():
        score = sum(len(w) for w in words if w in text)
        if score > best_score:
            best, best_score = category, score
    return best


def infer_urgency(text: str) -> str:
    """A rough urgency from danger words (staff can change it)."""
    if any(w in text for w in _URGENT_WORDS):
        return Urgency.urgent.value
    if any(w in text for w in _HIGH_WORDS):
        return Urgency.high.value
    return Urgency.normal.value


def _bigrams(text: str) -> set[str]:
    chars = [c for c in _strip_location(text) if not c.isspace() and c not in _FILLER
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

_PHONE_RE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
_ID_RE = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")


def redact(text: str) -> str:
    """Personal data removed, by the moderation screen (a minimal local fallback if absent)."""
    try:
        from yishi.moderation import service as moderation_service
    except ImportError:  # the moderation domain is not installed yet
        moderation_service = None  # type: ignore[assignment]
    if moderation_service is not None and hasattr(moderation_service, "screen"):
        return str(moderation_service.screen(text).redacted)
    return _PHONE_RE.sub("[手机号]", _ID_RE.sub("[身份证号]", text))


# --- service --------------------------------------------------------------------------------

# China keeps UTC+8 all year; a fixed offset needs no tz database on the server.
_BEIJING = timezone(timedelta(hours=8), "CST")


def local_time(moment: datetime, fmt: str = "%m-%d %H:%M") -> str:
    """A stored naive-UTC time as residents read it (Beijing time)."""
    return moment.replace(tzinfo=UTC).astimezone(_BEIJING).strftime(fmt)


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
                     f" {local_time(issue.due_at, '%m月%d日 %H:%M')} 前处理。")
    if "location" in missing:
        parts.append("请补充具体位置（如 3栋2单元 或 东门），方便尽快处理。")
    parts.append("发送“我的报修”可以查看进度。")
    return "".join(parts)


def _can_see(session: Session, actor: Actor, issue: Issue) -> bool:
    if actor.has_role(Role.staff, Role.moderator) or issue.reporter_id == actor.user_id:
        return True
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


def get_timeline(*, session: Session, actor: Actor, issue_id: int) -> list[IssueEvent]:
    """The issue's events in order."""
    get_issue(session=session, actor=actor, issue_id=issue_id)
    return list(session.exec(
        select(IssueEvent).where(IssueEvent.issue_id == issue_id)
        .order_by(col(IssueEvent.at), col(IssueEvent.id))
    ).all())


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
    if not actor.has_role(Role.staff, Role.moderator):
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
