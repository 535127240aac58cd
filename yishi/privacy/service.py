"""Residents' personal data: what is held, export, erasure, retention, the notice.

Erasure deletes every text a resident sent or was sent, their conversation memory, review item
texts, notifications and queued job payloads; their statements and votes stay as anonymous counts
under a random pseudonym; issues they reported stay on the board, redacted and unlinked. Then the
bytes leave the files: SQLite runs with `secure_delete` (zeroing freed cells), and after an
erasure the database and the job queue are checkpointed and vacuumed.
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import String, cast, delete, func, or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from yishi.bot.memory_models import ConversationState, ConversationTurn, Handoff
from yishi.bot.models import InboundMessage, InboundStatus, OutboundMessage, OutboundStatus
from yishi.core import jobs
from yishi.core.clock import local_time, utcnow
from yishi.core.config import Settings, get_settings
from yishi.core.embedding import forget as forget_embeddings
from yishi.core.errors import Invalid, NotFound
from yishi.core.models import ApiToken, CacheEntry, ConsoleSession, User
from yishi.deliberation.models import (
    HELD_ISSUE_REF,
    HeldIssue,
    Issue,
    IssueEvent,
    IssueSupporter,
    OwnerUnit,
    Proposal,
    ProposalBallot,
    ProposalUpdate,
    Statement,
    SummaryRecord,
    Thread,
    ThreadMessage,
    Vote,
)
from yishi.moderation import audit as moderation_audit
from yishi.moderation.models import (
    Appeal,
    AuditSubject,
    ModerationDecision,
    Mute,
    ReviewItem,
    Strike,
)
from yishi.privacy.models import PrivacyEvent, PrivacyNotice
from yishi.privacy.notice import NOTICE as NOTICE

log = logging.getLogger(__name__)

ERASED = ""  # what an erased reporter id becomes: no link to anyone
CONFIRM_WINDOW = timedelta(minutes=5)
_CONFIRM_KEY = "privacy:erase-confirm:"
_TAIL_KEY = "privacy:erase-tail:"
SELF = "resident"  # the audit's actor when residents act on their own data

ERASE_ASK = (
    "您要求删除您在本服务的全部个人信息：消息、对话记录、审核记录和通知都会删除；"
    "您反映的问题会去掉个人信息后保留在问题看板上，以便继续处理；您的投票只保留为匿名统计。"
    "删除后无法恢复。如确认，请在 {minutes} 分钟内回复“确认删除”。"
)
ERASE_NOT_ASKED = "没有待确认的删除请求。如需删除您的个人信息，请先回复“删除我的信息”。"
ERASE_DONE = (
    "已删除您的个人信息：{summary}。您反映的问题已去掉个人信息并保留在看板上。"
    "今后您再发消息，我们会重新开始保存。"
)


# ---------------------------------------------------------------- what is held


@dataclass
class Holdings:
    """How many rows of each kind hold a resident's data."""

    counts: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """The counts in plain Chinese, e.g. "消息 3 条、对话记录 4 条"."""
        parts = [f"{LABELS[k]} {v} 条" for k, v in self.counts.items() if v and k in LABELS]
        return "、".join(parts) or "没有保存的信息"


LABELS = {
    "messages": "消息",
    "outbound": "答复和通知",
    "memory_turns": "对话记录",
    "handoffs": "转人工请求",
    "review_items": "审核记录",
    "issues_reported": "反映的问题",
    "issues_supported": "支持的问题",
    "thread_messages": "讨论发言",
    "statements": "观点",
    "votes": "投票",
    "ballots": "提案表决",
}


def _count(session: Session, stmt: Any) -> int:
    return int(session.exec(stmt).one() or 0)


# What `holdings` counts: a name and the column that names the resident, per kind of record.
_HELD: tuple[tuple[str, Any], ...] = (
    ("messages", InboundMessage.user_id),
    ("outbound", OutboundMessage.user_id),
    ("memory_turns", ConversationTurn.user_id),
    ("handoffs", Handoff.user_id),
    ("review_items", ReviewItem.sender_id),
    ("issues_reported", Issue.reporter_id),
    ("issues_supported", IssueSupporter.user_id),
    ("thread_messages", ThreadMessage.author_id),
    ("statements", Statement.author_id),
    ("votes", Vote.voter_id),
    ("ballots", ProposalBallot.voter_id),
)


def holdings(*, session: Session, user_id: str) -> Holdings:
    """How much is held about `user_id`, by kind."""
    return Holdings(counts={
        name: _count(session, select(func.count()).where(column == user_id))
        for name, column in _HELD
    })


# ---------------------------------------------------------------- export


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


def export(*, session: Session, user_id: str, actor: str = SELF) -> dict[str, Any]:
    """Everything held about `user_id` as a JSON-ready dict; the export itself is audited."""
    if not user_id.strip():
        raise Invalid("请指定居民身份", hint="例如 wechat_mp:<OpenID> 或 web:u1")
    inbound = session.exec(select(InboundMessage).where(InboundMessage.user_id == user_id)
                           .order_by(col(InboundMessage.id))).all()
    outbound = session.exec(select(OutboundMessage).where(OutboundMessage.user_id == user_id)
                            .order_by(col(OutboundMessage.id))).all()
    turns = session.exec(select(ConversationTurn).where(ConversationTurn.user_id == user_id)
                         .order_by(col(ConversationTurn.id))).all()
    state = session.get(ConversationState, user_id)
    handoffs = session.exec(select(Handoff).where(Handoff.user_id == user_id)).all()
    reported = session.exec(select(Issue).where(Issue.reporter_id == user_id)
                            .order_by(col(Issue.id))).all()
    supported = session.exec(select(IssueSupporter)
                             .where(IssueSupporter.user_id == user_id)).all()
    posts = session.exec(select(ThreadMessage).where(ThreadMessage.author_id == user_id)).all()
    statements = session.exec(select(Statement).where(Statement.author_id == user_id)).all()
    votes = session.exec(select(Vote).where(Vote.voter_id == user_id)).all()
    ballots = session.exec(select(ProposalBallot)
                           .where(ProposalBallot.voter_id == user_id)).all()
    items = session.exec(select(ReviewItem).where(ReviewItem.sender_id == user_id)
                         .order_by(col(ReviewItem.id))).all()
    item_ids = [i.id for i in items]
    decisions = session.exec(
        select(ModerationDecision).where(col(ModerationDecision.review_item_id).in_(item_ids))
        .order_by(col(ModerationDecision.id))
    ).all() if item_ids else []
    about = [d for d in _decisions_naming(session, user_id) if d.review_item_id not in item_ids]
    strikes = session.exec(select(Strike).where(Strike.sender_id == user_id)).all()
    mutes = session.exec(select(Mute).where(Mute.sender_id == user_id)).all()
    appeals = session.exec(select(Appeal).where(Appeal.sender_id == user_id)).all()
    user = session.exec(select(User).where(User.external_id == user_id)).first()
    data: dict[str, Any] = {
        "user_id": user_id,
        "generated_at": _iso(utcnow()),
        "retention_days": get_settings().retention_days,
        "account": None if user is None else {
            "name": user.name, "role": user.role.value, "active": user.active,
            "created_at": _iso(user.created_at),
        },
        "messages": [{"id": m.id, "at": _iso(m.created_at), "type": m.msg_type,
                      "event": m.event, "text": m.content, "reply": m.reply_text,
                      "status": m.status.value} for m in inbound],
        "sent_to_you": [{"at": _iso(o.created_at), "kind": o.kind, "text": o.text,
                         "status": o.status.value} for o in outbound],
        "conversation_memory": {
            "turns": [{"at": _iso(t.created_at), "speaker": t.speaker, "text": t.text}
                      for t in turns],
            "summary": state.summary if state else "",
        },
        "handoffs": [{"at": _iso(h.created_at), "reason": h.reason, "text": h.text,
                      "resolved": h.resolved} for h in handoffs],
        "issues_reported": [{"id": i.id, "text": i.text, "category": i.category,
                             "location": i.location, "status": i.status,
                             "created_at": _iso(i.created_at)} for i in reported],
        "issues_supported": [{"issue_id": s.issue_id, "text": s.text,
                              "at": _iso(s.created_at)} for s in supported],
        "thread_messages": [{"thread_id": p.thread_id, "text": p.text, "visible": p.visible,
                             "at": _iso(p.created_at)} for p in posts],
        "statements": [{"id": s.id, "thread_id": s.thread_id, "text": s.text,
                        "at": _iso(s.created_at)} for s in statements],
        "votes": [{"statement_id": v.statement_id, "thread_id": v.thread_id,
                   "value": {1: "agree", -1: "disagree", 0: "pass"}.get(v.value, v.value),
                   "at": _iso(v.updated_at)} for v in votes],
        "ballots": [{"proposal_id": b.proposal_id, "choice": b.choice, "at": _iso(b.at)}
                    for b in ballots],
        "moderation": {
            "review_items": [{"id": i.id, "at": _iso(i.created_at), "source": i.source,
                              "text": i.text, "action": i.action,
                              "categories": list(i.categories), "status": i.status,
                              "decision_reason": i.decision_reason,
                              "decided_at": _iso(i.decided_at)} for i in items],
            "decisions": [{"review_item_id": d.review_item_id, "action": d.action,
                           "reason": d.reason, "at": _iso(d.created_at)}
                          for d in [*decisions, *about]],
            "strikes": [{"at": _iso(s.created_at), "reason": s.reason, "voided": s.voided}
                        for s in strikes],
            "mutes": [{"at": _iso(m.created_at), "until": _iso(m.until), "reason": m.reason,
                       "lifted_at": _iso(m.lifted_at)} for m in mutes],
            "appeals": [{"review_item_id": a.review_item_id, "reason": a.reason,
                         "status": a.status, "at": _iso(a.created_at)} for a in appeals],
        },
    }
    session.add(PrivacyEvent(action="export", actor=actor, counts={}))
    session.commit()
    return data


def export_summary(*, session: Session, user_id: str) -> str:
    """A short chat answer: what is held, and how to get the full file (WeChat text is short)."""
    held = holdings(session=session, user_id=user_id)
    days = get_settings().retention_days
    oldest = session.exec(select(func.min(InboundMessage.created_at))
                          .where(InboundMessage.user_id == user_id)).one()
    since = f"，最早一条消息是 {local_time(oldest, '%Y-%m-%d')}" if oldest else ""
    session.add(PrivacyEvent(action="export", actor=SELF, counts={"summary": 1}))
    session.commit()
    return (f"我们保存的您的信息：{held.summary()}{since}。消息原文保存 {days} 天后自动删除。"
            "如需完整的导出文件，请联系社区工作人员，核实身份后提供。"
            "回复“删除我的信息”可删除这些信息。")


# ---------------------------------------------------------------- erasure


@dataclass
class Erasure:
    """What an erasure removed (counts by kind) and what was kept anonymously."""

    counts: dict[str, int]

    def summary(self) -> str:
        """The counts in plain Chinese."""
        return Holdings(counts=self.counts).summary()


def _decisions_naming(session: Session, user_id: str) -> list[ModerationDecision]:
    subject = session.exec(
        select(AuditSubject).where(AuditSubject.sender_id == user_id)
    ).first()
    if subject is None:
        return []
    rows = session.exec(
        select(ModerationDecision).where(
            cast(ModerationDecision.details, String).contains(subject.pseudonym)  # type: ignore[arg-type]
        )
    ).all()
    return [r for r in rows if r.details.get("subject") == subject.pseudonym]


def _rename(session: Session, column: Any, old: str, new: str) -> int:
    table = column.class_
    result = session.execute(update(table).where(column == old).values({column.key: new}))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def erase(*, session: Session, user_id: str, actor: str = SELF,
          settings: Settings | None = None, keep_inbound_id: int | None = None) -> Erasure:
    """Erase a resident's personal data (see the module docstring); audited without the subject.

    Commits, scrubs queued jobs and compacts the storage files before returning.
    `keep_inbound_id` is the chat message that confirmed the erasure: it and its answer must
    still be delivered, so they stay until the retention sweep finds them delivered.
    """
    from yishi.deliberation import issues as issue_service

    settings = settings or get_settings()
    if not user_id.strip() or ":" not in user_id:
        raise Invalid("请指定居民身份", hint="例如 wechat_mp:<OpenID> 或 web:u1")
    held = holdings(session=session, user_id=user_id)
    counts = dict(held.counts)
    pseudonym = "anon:" + secrets.token_hex(6)

    inbound_ids = [i for i in session.exec(
        select(InboundMessage.id).where(InboundMessage.user_id == user_id)).all()
        if i != keep_inbound_id]
    refs = [str(i) for i in inbound_ids]
    # Review items: the resident's own, and the bot's withheld replies to them.
    items = session.exec(select(ReviewItem).where(
        (col(ReviewItem.sender_id) == user_id)
        | ((col(ReviewItem.source) == "reply") & col(ReviewItem.source_ref).in_(refs))
    )).all()
    item_ids = [i.id for i in items]
    held_ids = [int(ref.removeprefix(HELD_ISSUE_REF)) for i in items
                if (ref := i.source_ref or "").startswith(HELD_ISSUE_REF)]
    if held_ids:  # a held report's fields (place, photos) wait in their own table
        session.execute(delete(HeldIssue).where(col(HeldIssue.id).in_(held_ids)))
    for item in items:
        item.sender_id, item.text, item.redacted, item.final_text = ERASED, "", "", None
        item.spans, item.source_ref = [], None
        session.add(item)
    session.flush()
    # The audit log is append-only: it names residents only by a pseudonym, and dropping the
    # pseudonym unlinks every entry without touching the log (edited texts live on the items).
    moderation_audit.forget_subject(session=session, sender_id=user_id)
    session.execute(delete(Appeal).where(
        (col(Appeal.sender_id) == user_id) | col(Appeal.review_item_id).in_(item_ids)))
    session.execute(delete(Strike).where(col(Strike.sender_id) == user_id))
    session.execute(delete(Mute).where(col(Mute.sender_id) == user_id))

    kept = [keep_inbound_id] if keep_inbound_id is not None else []
    session.execute(delete(OutboundMessage).where(
        ((col(OutboundMessage.user_id) == user_id)
         | col(OutboundMessage.inbound_id).in_(inbound_ids)),
        or_(col(OutboundMessage.inbound_id).is_(None),
            col(OutboundMessage.inbound_id).not_in(kept)),
    ))
    session.execute(delete(InboundMessage).where(col(InboundMessage.id).in_(inbound_ids)))
    session.execute(delete(ConversationTurn).where(col(ConversationTurn.user_id) == user_id))
    session.execute(delete(ConversationState).where(col(ConversationState.user_id) == user_id))
    session.execute(delete(Handoff).where(col(Handoff.user_id) == user_id))

    # Issues stay on the board (the light still needs fixing), redacted and unlinked.
    for issue in session.exec(select(Issue).where(Issue.reporter_id == user_id)).all():
        issue.reporter_id, issue.reporter_channel = ERASED, ""
        issue.text = issue_service.redact(issue.text)
        issue.location = issue_service.redact(issue.location) if issue.location else None
        session.add(issue)
    session.execute(update(IssueEvent).where(col(IssueEvent.actor_id) == user_id)
                    .values(actor_id=None, note=""))
    session.execute(delete(IssueSupporter).where(col(IssueSupporter.user_id) == user_id))

    # Deliberation: statements and votes stay as anonymous counts under a random pseudonym
    # (one per erasure, so the opinion-group math still sees one participant).
    for post in session.exec(select(ThreadMessage)
                             .where(ThreadMessage.author_id == user_id)).all():
        post.author_id, post.text, post.visible = pseudonym, "", False
        session.add(post)
    for st in session.exec(select(Statement).where(Statement.author_id == user_id)).all():
        st.author_id, st.text = pseudonym, issue_service.redact(st.text)
        session.add(st)
    for column in (Vote.voter_id, ProposalBallot.voter_id, OwnerUnit.owner_id,
                   Thread.created_by, Proposal.created_by, ProposalUpdate.actor_id,
                   SummaryRecord.created_by):
        _rename(session, column, user_id, pseudonym)
    needle = json.dumps(user_id)[1:-1]
    for record in session.exec(select(SummaryRecord).where(
            cast(SummaryRecord.content, String).contains(needle))).all():  # type: ignore[arg-type]
        record.content = json.loads(json.dumps(record.content, ensure_ascii=False)
                                    .replace(needle, pseudonym))
        session.add(record)

    # An account bound to this identity goes with it.
    user = session.exec(select(User).where(User.external_id == user_id)).first()
    if user is not None and user.id is not None:
        session.execute(delete(ApiToken).where(col(ApiToken.user_id) == user.id))
        session.execute(delete(ConsoleSession).where(col(ConsoleSession.user_id) == user.id))
        session.delete(user)
        counts["account"] = 1
    session.execute(delete(PrivacyNotice).where(col(PrivacyNotice.user_id) == user_id))
    session.execute(delete(CacheEntry).where(col(CacheEntry.key) == _CONFIRM_KEY + user_id))
    if keep_inbound_id is not None:
        # No identity in the key: the sweep deletes this message once its answer went out.
        session.add(CacheEntry(key=f"{_TAIL_KEY}{keep_inbound_id}", expires_at=utcnow()))
    session.add(PrivacyEvent(action="erase", actor=actor, counts=counts))
    session.commit()

    ids = {i for i in inbound_ids if i is not None}
    counts["queued_jobs"] = scrub_jobs(lambda name, args: _job_mentions(name, args, user_id, ids))
    forget_embeddings()
    _forget_rate_limit(settings, user_id)
    compact_storage(settings, engine=session.get_bind(), vacuum=True)
    return Erasure(counts=counts)


def _job_mentions(name: str, args: Iterable[Any], user_id: str, inbound_ids: set[int]) -> bool:
    """Whether a queued job carries this resident's data (their text or identity)."""
    args = list(args)
    if name.endswith("answer_released") and args and args[0] in inbound_ids:
        return True
    return any(isinstance(a, str) and user_id in a for a in args)


def _forget_rate_limit(settings: Settings, user_id: str) -> None:
    if not settings.redis_url:
        return
    try:
        from yishi.core.adapters import redis_client

        redis_client(settings.redis_url).delete(f"yishi:ratelimit:resident:{user_id}")
    except Exception:
        log.warning("could not drop a rate-limit key during erasure", exc_info=True)


# ---------------------------------------------------------------- the job queue


def scrub_jobs(predicate: Callable[[str, tuple[Any, ...]], bool]) -> int:
    """Remove queued and scheduled jobs whose (name, args) match `predicate`; how many."""
    try:
        huey = jobs.get_huey()
    except RuntimeError:
        return 0
    storage = huey.storage
    removed = 0
    for raw, scheduled in [*((r, False) for r in storage.enqueued_items()),
                           *((r, True) for r in storage.scheduled_items())]:
        try:
            task = huey.deserialize_task(raw)
        except Exception:
            continue
        if not predicate(task.name, tuple(task.args or ())):
            continue
        removed += _remove_raw(storage, bytes(raw), scheduled)
    return removed


def _remove_raw(storage: Any, raw: bytes, scheduled: bool) -> int:
    from huey.storage import RedisStorage, SqliteStorage

    if isinstance(storage, SqliteStorage):
        table = "schedule" if scheduled else "task"
        with storage.db(commit=True) as cursor:
            cursor.execute(f"delete from {table} where queue = ? and data = ?",
                           (storage.name, raw))
            return int(cursor.rowcount)
    if isinstance(storage, RedisStorage):
        if scheduled:
            return int(storage.conn.zrem(storage.schedule_key, raw))
        return int(storage.conn.lrem(storage.queue_key, 0, raw))
    return 0


# ---------------------------------------------------------------- the files


def _sqlite_path(url: str) -> Path | None:
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[-1]
    return Path(path) if path and path != ":memory:" else None


def _compact_file(path: Path, *, vacuum: bool) -> None:
    conn = sqlite3.connect(str(path), timeout=30, isolation_level=None)
    try:
        conn.execute("PRAGMA secure_delete=ON")
        if vacuum:
            conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def compact_storage(settings: Settings, *, engine: Any = None, vacuum: bool = False) -> list[str]:
    """Checkpoint (and with `vacuum`, rebuild) the SQLite database and job queue, so deleted
    bytes leave the main files and the write-ahead logs; the files compacted."""
    done: list[str] = []
    url = engine.url.render_as_string(hide_password=False) if isinstance(engine, Engine) else \
        settings.resolved_database_url
    targets = [p for p in (_sqlite_path(url), settings.data_dir / "jobs.db") if p is not None]
    for path in targets:
        if not path.exists():
            continue
        try:
            _compact_file(path, vacuum=vacuum)
            done.append(path.name)
        except sqlite3.Error:
            log.warning("could not compact %s; the next sweep retries", path.name, exc_info=True)
    return done


# ---------------------------------------------------------------- retention


def retention_sweep(*, session: Session, settings: Settings | None = None) -> dict[str, int]:
    """Purge message texts older than the retention period and decided review items whose
    appeal window has passed; audited with counts only."""
    from yishi.bot.channels import nonces
    from yishi.moderation.service import APPEAL_WINDOW

    settings = settings or get_settings()
    now = utcnow()
    cutoff = now - timedelta(days=settings.retention_days)
    done = (InboundStatus.replied, InboundStatus.held, InboundStatus.failed)
    old_inbound = list(session.exec(select(InboundMessage.id).where(
        col(InboundMessage.created_at) < cutoff, col(InboundMessage.status).in_(done))).all())
    counts = {"messages": 0, "outbound": 0, "handoffs": 0, "review_items": 0, "nonces": 0}
    for start in range(0, len(old_inbound), 500):
        chunk = old_inbound[start:start + 500]
        res = session.execute(delete(OutboundMessage).where(
            col(OutboundMessage.inbound_id).in_(chunk)))
        counts["outbound"] += int(res.rowcount or 0)  # type: ignore[attr-defined]
        res = session.execute(delete(InboundMessage).where(col(InboundMessage.id).in_(chunk)))
        counts["messages"] += int(res.rowcount or 0)  # type: ignore[attr-defined]
    res = session.execute(delete(OutboundMessage).where(
        col(OutboundMessage.created_at) < cutoff,
        col(OutboundMessage.status).in_([OutboundStatus.sent, OutboundStatus.failed])))
    counts["outbound"] += int(res.rowcount or 0)  # type: ignore[attr-defined]
    res = session.execute(delete(Handoff).where(col(Handoff.created_at) < cutoff,
                                                col(Handoff.resolved) == True))  # noqa: E712
    counts["handoffs"] = int(res.rowcount or 0)  # type: ignore[attr-defined]
    appealing = select(Appeal.review_item_id).where(Appeal.status == "open")
    decided = session.exec(select(ReviewItem).where(
        col(ReviewItem.status) != "pending",
        col(ReviewItem.decided_at) < now - APPEAL_WINDOW,
        col(ReviewItem.text) != "",
        col(ReviewItem.id).not_in(appealing),
    )).all()
    for item in decided:
        item.text, item.redacted, item.final_text, item.spans = "", "", None, []
        session.add(item)
    counts["review_items"] = len(decided)
    session.commit()
    counts["messages"] += _drop_delivered_tails(session)
    counts["nonces"] = nonces.purge_expired(session=session)
    purged = {k: v for k, v in counts.items() if v and k != "nonces"}
    if purged:
        session.add(PrivacyEvent(action="retention", actor="system", counts=purged))
        session.commit()
    return counts


def _drop_delivered_tails(session: Session) -> int:
    """Delete the messages that confirmed an erasure once their answers are delivered."""
    removed = 0
    for entry in session.exec(select(CacheEntry)
                              .where(col(CacheEntry.key).startswith(_TAIL_KEY))).all():
        inbound_id = int(entry.key.removeprefix(_TAIL_KEY))
        row = session.get(InboundMessage, inbound_id)
        waiting = session.exec(select(OutboundMessage.id).where(
            OutboundMessage.inbound_id == inbound_id,
            col(OutboundMessage.status).in_([OutboundStatus.pending, OutboundStatus.deferred]),
        )).first()
        if row is not None and (waiting is not None or row.status == InboundStatus.processing):
            continue
        user_id = row.user_id if row is not None else None
        session.execute(delete(OutboundMessage).where(
            col(OutboundMessage.inbound_id) == inbound_id))
        session.execute(delete(InboundMessage).where(col(InboundMessage.id) == inbound_id))
        if user_id is not None:
            # Nothing the resident sent since the erasure may be touched: only what precedes it.
            session.execute(delete(ConversationTurn).where(
                col(ConversationTurn.user_id) == user_id,
                col(ConversationTurn.message_ref) == str(inbound_id)))
        session.delete(entry)
        removed += 1
    session.commit()
    return removed


@jobs.job("privacy.retention", retries=1, periodic="*/10")
def retention_job() -> dict[str, int]:
    """Periodic (every 10 minutes): apply the retention period, then checkpoint the files."""
    from yishi.core.db import session_scope

    settings = get_settings()
    with session_scope(settings) as session:
        counts = retention_sweep(session=session, settings=settings)
    if any(counts.values()):
        compact_storage(settings)
    return counts


def figures(*, session: Session, settings: Settings | None = None) -> dict[str, Any]:
    """What personal data is held and how old (counts and ages in days, no content)."""
    settings = settings or get_settings()
    now = utcnow()

    def age(oldest: datetime | None) -> int | None:
        return (now - oldest).days if oldest is not None else None

    def row(model: Any, stamp: Any, *where: Any) -> dict[str, int | None]:
        count, oldest = session.exec(select(func.count(), func.min(stamp))
                                     .select_from(model).where(*where)).one()
        return {"count": int(count or 0), "oldest_days": age(oldest)}

    return {
        "retention_days": settings.retention_days,
        "messages": row(InboundMessage, InboundMessage.created_at),
        "outbound": row(OutboundMessage, OutboundMessage.created_at),
        "memory_turns": row(ConversationTurn, ConversationTurn.created_at),
        "review_items_with_text": row(ReviewItem, ReviewItem.created_at,
                                      col(ReviewItem.text) != ""),
        "residents": int(session.exec(select(func.count(func.distinct(InboundMessage.user_id)))
                                      ).one() or 0),
        "erasures": int(session.exec(select(func.count()).select_from(PrivacyEvent)
                                     .where(PrivacyEvent.action == "erase")).one() or 0),
    }


def get_events(*, session: Session, limit: int = 100) -> list[PrivacyEvent]:
    """The privacy audit, newest first."""
    return list(session.exec(select(PrivacyEvent).order_by(col(PrivacyEvent.id).desc())
                             .limit(limit)).all())


# ---------------------------------------------------------------- chat: notice and commands


def request_erasure(*, session: Session, user_id: str) -> str:
    """Step one of "删除我的信息": remember the request for a few minutes and ask to confirm."""
    key = _CONFIRM_KEY + user_id
    row = session.get(CacheEntry, key) or CacheEntry(key=key)
    row.expires_at = utcnow() + CONFIRM_WINDOW
    session.add(row)
    session.commit()
    return ERASE_ASK.format(minutes=int(CONFIRM_WINDOW.total_seconds() // 60))


def confirm_erasure(*, session: Session, user_id: str, message_ref: str | None = None
                    ) -> tuple[str, Erasure | None]:
    """Step two ("确认删除"): erase if a request is pending, else explain how to start."""
    row = session.get(CacheEntry, _CONFIRM_KEY + user_id)
    if row is None or row.expires_at is None or row.expires_at < utcnow():
        return ERASE_NOT_ASKED, None
    keep = int(message_ref) if message_ref and message_ref.isdigit() else None
    done = erase(session=session, user_id=user_id, actor=SELF, keep_inbound_id=keep)
    return ERASE_DONE.format(summary=done.summary()), done


def chat_command(*, session: Session, user_id: str, command: str,
                 message_ref: str | None = None) -> tuple[str, dict[str, Any]]:
    """The offline engine's hook for the privacy commands: (reply, action)."""
    if command == "export":
        return export_summary(session=session, user_id=user_id), {"type": "privacy_export"}
    if command == "erase":
        return request_erasure(session=session, user_id=user_id), {"type": "erase_requested"}
    if command == "erase_confirm":
        reply, done = confirm_erasure(session=session, user_id=user_id, message_ref=message_ref)
        action: dict[str, Any] = {"type": "erased" if done else "erase_not_requested"}
        return reply, action
    raise NotFound(f"未知命令：{command}")
