"""Threads (议题): questions, residents' messages, statements and agree/disagree/pass votes."""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from yishi.core.auth import Actor
from yishi.core.clock import utcnow
from yishi.core.errors import Invalid, NotFound
from yishi.core.models import Role
from yishi.deliberation.models import Statement, Thread, ThreadMessage, ThreadStatus, Vote
from yishi.deliberation.schemas import VOTE_NAMES, VOTE_VALUES

STATEMENT_MAX_CHARS = 140

_VOTE_WORDS = {
    "同意": "agree", "赞成": "agree", "支持": "agree", "agree": "agree", "+1": "agree",
    "反对": "disagree", "不同意": "disagree", "disagree": "disagree", "-1": "disagree",
    "跳过": "pass", "弃权": "pass", "不确定": "pass", "pass": "pass",
}
_VOTE_RE = re.compile(
    r"^\s*(不同意|同意|赞成|支持|反对|跳过|弃权|不确定|agree|disagree|pass|\+1|-1)"
    r"\s*(?:观点|第)?\s*[#＃sS]?\s*(\d+)\s*(?:条|号)?\s*$",
    re.IGNORECASE,
)


def parse_vote_command(text: str) -> tuple[int, str] | None:
    """A WeChat vote command ("同意 12", "反对#12", "跳过 s12") as (statement_id, value)."""
    m = _VOTE_RE.match(text or "")
    if not m:
        return None
    return int(m.group(2)), _VOTE_WORDS[m.group(1).lower()]


def create_thread(
    *, session: Session, actor: Actor, title: str, question: str, statements: Sequence[str] = ()
) -> Thread:
    """Staff: open a thread with a question and optional seed statements."""
    actor.require(Role.staff)
    if not title.strip() or not question.strip():
        raise Invalid("议题需要标题和问题")
    thread = Thread(title=title.strip(), question=question.strip(), created_by=actor.user_id)
    session.add(thread)
    session.flush()
    assert thread.id is not None
    for text in statements:
        if text.strip():
            session.add(Statement(thread_id=thread.id, author_id=actor.user_id,
                                  text=_statement_text(text)))
    session.commit()
    session.refresh(thread)
    return thread


def close_thread(*, session: Session, actor: Actor, thread_id: int) -> Thread:
    """Staff: close a thread to new messages and votes."""
    actor.require(Role.staff)
    thread = get_thread(session=session, thread_id=thread_id)
    thread.status = ThreadStatus.closed.value
    thread.closed_at = utcnow()
    session.add(thread)
    session.commit()
    session.refresh(thread)
    return thread


def get_thread(*, session: Session, thread_id: int) -> Thread:
    """One thread or NotFound."""
    thread = session.get(Thread, thread_id)
    if thread is None:
        raise NotFound(f"没有编号为 {thread_id} 的议题", hint="发送“议题”查看正在讨论的议题")
    return thread


def get_open_threads(*, session: Session) -> list[Thread]:
    """Threads open for discussion, newest first."""
    return list(session.exec(
        select(Thread).where(Thread.status == ThreadStatus.open.value)
        .order_by(col(Thread.created_at).desc(), col(Thread.id).desc())
    ).all())


def get_all_threads(*, session: Session) -> list[Thread]:
    """Every thread, newest first."""
    return list(session.exec(
        select(Thread).order_by(col(Thread.created_at).desc(), col(Thread.id).desc())
    ).all())


def _open_thread(session: Session, thread_id: int) -> Thread:
    thread = get_thread(session=session, thread_id=thread_id)
    if thread.status != ThreadStatus.open:
        raise Invalid(f"议题“{thread.title}”已结束讨论", hint="可以查看其总结或参与其他议题")
    return thread


def _statement_text(text: str) -> str:
    text = " ".join(text.split())
    if not text:
        raise Invalid("观点内容不能为空")
    if len(text) > STATEMENT_MAX_CHARS:
        raise Invalid(f"观点请控制在 {STATEMENT_MAX_CHARS} 字以内",
                      hint="较长的意见可以作为留言发布")
    return text


def post_to_thread(
    *,
    session: Session,
    actor: Actor,
    thread_id: int,
    text: str,
    visible: bool = True,
    as_statement: bool = False,
) -> ThreadMessage:
    """Add a message (already screened and redacted by the caller); optionally as a statement."""
    _open_thread(session, thread_id)
    text = text.strip()
    if not text:
        raise Invalid("留言内容不能为空")
    if as_statement:
        _statement_text(text)
    message = ThreadMessage(thread_id=thread_id, author_id=actor.user_id, text=text,
                            visible=visible)
    session.add(message)
    session.flush()
    if as_statement:
        session.add(Statement(thread_id=thread_id, author_id=actor.user_id,
                              text=_statement_text(text), message_id=message.id,
                              visible=visible))
    session.commit()
    session.refresh(message)
    return message


def add_statement(*, session: Session, actor: Actor, thread_id: int, text: str) -> Statement:
    """Add a short statement to vote on (text already screened by the caller)."""
    _open_thread(session, thread_id)
    statement = Statement(thread_id=thread_id, author_id=actor.user_id,
                          text=_statement_text(text))
    session.add(statement)
    session.commit()
    session.refresh(statement)
    return statement


def statement_for_message(*, session: Session, message_id: int) -> Statement | None:
    """The statement created from a message, if any."""
    return session.exec(select(Statement).where(Statement.message_id == message_id)).first()


def get_messages(*, session: Session, thread_id: int, include_hidden: bool = False
                 ) -> list[ThreadMessage]:
    """A thread's messages in order (visible ones unless asked)."""
    query = select(ThreadMessage).where(ThreadMessage.thread_id == thread_id)
    if not include_hidden:
        query = query.where(ThreadMessage.visible == True)  # noqa: E712
    return list(session.exec(query.order_by(col(ThreadMessage.id))).all())


def get_statements(*, session: Session, thread_id: int, include_hidden: bool = False
                   ) -> list[Statement]:
    """A thread's statements in order (visible ones unless asked)."""
    query = select(Statement).where(Statement.thread_id == thread_id)
    if not include_hidden:
        query = query.where(Statement.visible == True)  # noqa: E712
    return list(session.exec(query.order_by(col(Statement.id))).all())


def set_message_visible(*, session: Session, message_id: int, visible: bool) -> ThreadMessage:
    """Show or hide a message and its statement (moderators' decisions land here)."""
    message = session.get(ThreadMessage, message_id)
    if message is None:
        raise NotFound(f"没有编号为 {message_id} 的留言")
    message.visible = visible
    session.add(message)
    statement = statement_for_message(session=session, message_id=message_id)
    if statement is not None:
        statement.visible = visible
        session.add(statement)
    session.commit()
    session.refresh(message)
    return message


def hide_statement(*, session: Session, actor: Actor, statement_id: int, reason: str
                   ) -> Statement:
    """Staff: hide a statement from voting and summaries, with a reason kept on record."""
    actor.require(Role.staff, Role.moderator)
    statement = session.get(Statement, statement_id)
    if statement is None:
        raise NotFound(f"没有编号为 {statement_id} 的观点")
    if not reason.strip():
        raise Invalid("请写明隐藏的原因", hint="原因会留档，便于日后核查")
    statement.visible = False
    statement.hidden_reason = reason.strip()[:500]
    session.add(statement)
    session.commit()
    session.refresh(statement)
    return statement


def show_statement(*, session: Session, actor: Actor, statement_id: int) -> Statement:
    """Staff: show a hidden statement again."""
    actor.require(Role.staff, Role.moderator)
    statement = session.get(Statement, statement_id)
    if statement is None:
        raise NotFound(f"没有编号为 {statement_id} 的观点")
    statement.visible = True
    statement.hidden_reason = None
    session.add(statement)
    session.commit()
    session.refresh(statement)
    return statement


def vote(*, session: Session, actor: Actor, statement_id: int, value: str) -> Vote:
    """Record the actor's vote on a statement; a second vote replaces the first."""
    if value not in VOTE_VALUES:
        raise Invalid(f"未知的投票：{value}", hint="请用 同意 / 反对 / 跳过")
    statement = session.get(Statement, statement_id)
    if statement is None or not statement.visible:
        raise NotFound(f"没有编号为 {statement_id} 的观点", hint="发送“议题”查看可投票的观点")
    _open_thread(session, statement.thread_id)
    thread_id = statement.thread_id
    for attempt in range(2):
        now = utcnow()
        existing = session.exec(
            select(Vote).where(Vote.statement_id == statement_id, Vote.voter_id == actor.user_id)
        ).first()
        if existing is None:
            existing = Vote(statement_id=statement_id, thread_id=thread_id,
                            voter_id=actor.user_id, value=VOTE_VALUES[value], created_at=now,
                            updated_at=now)
        else:
            existing.value = VOTE_VALUES[value]
            existing.updated_at = now
        session.add(existing)
        try:
            session.commit()
        except IntegrityError:
            # The same person's vote arrived twice at once (WeChat retries, two workers):
            # the other insert won, so update that row instead.
            session.rollback()
            if attempt:
                raise
            continue
        break
    assert existing is not None
    session.refresh(existing)
    return existing


def get_votes(*, session: Session, thread_id: int) -> list[Vote]:
    """Every current vote in a thread on visible statements."""
    return list(session.exec(
        select(Vote).join(Statement, col(Statement.id) == col(Vote.statement_id))
        .where(Vote.thread_id == thread_id, Statement.visible == True)  # noqa: E712
        .order_by(col(Vote.id))
    ).all())


def get_vote_rows(*, session: Session, thread_id: int) -> list[tuple[str, int, int]]:
    """(voter, statement, value) of every current vote on visible statements; no ORM objects,
    so a thread with tens of thousands of votes loads quickly."""
    rows = session.exec(
        select(Vote.voter_id, Vote.statement_id, Vote.value)
        .join(Statement, col(Statement.id) == col(Vote.statement_id))
        .where(Vote.thread_id == thread_id, Statement.visible == True)  # noqa: E712
        .order_by(col(Vote.id))
    ).all()
    return [(str(v), int(s), int(x)) for v, s, x in rows]


def tally(*, session: Session, thread_id: int) -> dict[int, dict[str, int]]:
    """Per statement: counts of agree, disagree and pass."""
    rows = session.exec(
        select(Vote.statement_id, Vote.value, func.count())
        .where(Vote.thread_id == thread_id)
        .group_by(col(Vote.statement_id), col(Vote.value))
    ).all()
    out: dict[int, dict[str, int]] = {}
    for statement_id, value, count in rows:
        out.setdefault(statement_id, {"agree": 0, "disagree": 0, "pass": 0})[
            VOTE_NAMES[value]] = count
    return out


def find_thread_by_topic(*, session: Session, topic: str) -> Thread:
    """The thread whose title and question best match a topic ("总结一下停车收费的讨论")."""
    cleaned = re.sub(r"总结(一下)?|概括(一下)?|汇总(一下)?|帮我|请|关于|的?讨论|的?议题|情况|"
                     r"[，。？！,.?!\s]", "", topic or "")
    if not cleaned:
        raise Invalid("请说明要总结哪个议题", hint="例如：总结一下停车收费的讨论")
    wanted = _grams(cleaned)
    best: Thread | None = None
    best_score = 0.0
    for thread in get_all_threads(session=session):
        have = _grams(thread.title + thread.question)
        score = len(wanted & have) / len(wanted)
        if thread.status == ThreadStatus.open:
            score += 1e-6  # prefer the live discussion on ties
        if score > best_score:
            best, best_score = thread, score
    if best is None or best_score < 0.34:
        raise NotFound(f"没有找到与“{cleaned}”相关的议题", hint="发送“议题”查看全部议题")
    return best


def _grams(text: str) -> set[str]:
    chars = [c for c in text if "\u4e00" <= c <= "\u9fff" or c.isalnum()]
    grams = {chars[i] + chars[i + 1] for i in range(len(chars) - 1)}
    return grams or set(chars)
