"""The message path: accept (store + enqueue) → screen → engine → screen reply → deliver.

Every step's state lives in `InboundMessage` / `OutboundMessage`, so a worker that dies mid-way
loses nothing: its lease expires and the periodic sweep hands the message to another worker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, insert, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from yishi.bot import outbox
from yishi.bot.acceptor import row_values
from yishi.bot.models import InboundMessage, InboundStatus, OutboundMessage, OutboundStatus
from yishi.bot.schemas import Accepted, ChatTurn, IncomingMessage
from yishi.bot.text import split_for_wechat
from yishi.core import auth as auth_service
from yishi.core import jobs
from yishi.core.clock import utcnow
from yishi.core.config import ReplyMode, Settings, get_settings
from yishi.core.db import session_scope

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
MAX_ATTEMPTS = 3
MAX_SEND_ATTEMPTS = 5
STALE_RECEIVED = timedelta(seconds=30)
PASSIVE_TRIES = 3  # WeChat tries a message three times, ~5 s apart
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"

FAILED_NOTICE = "抱歉，系统暂时无法处理您的消息，已转交社区工作人员，请稍候。"
UNSUPPORTED_NOTICE = (
    "抱歉，我目前只能看懂文字和语音消息。请用文字描述您的问题，或发送“帮助”查看我能做什么。"
)
EMPTY_VOICE_NOTICE = "抱歉，没有听清您的语音，请再说一遍，或者直接发文字给我。"
REPLY_WITHHELD = "抱歉，这条回复没有通过安全检查，已转交工作人员处理，请稍候。"
LATE_PREFIX = "【您之前的问题已有答复】\n"
STILL_WORKING = "您的消息已收到，正在处理中。稍后给我发送任意消息（如“1”），即可查看答复。"

MORE_TO_COME = "\n（内容较长，回复任意消息查看后续）"
PASSIVE_PART_BYTES = 1900  # WeChat's passive text limit is 2048 bytes; room for MORE_TO_COME
SLOW_DOWN_NOTICE = "您发送消息太频繁了，请稍等一分钟再试。"

_engine: Any = None
_senders: dict[str, Any] | None = None
_limiter: Any = None


# ---------------------------------------------------------------- accept


_INBOUND = InboundMessage.__table__  # type: ignore[attr-defined]


def _insert_new(session: Session, msg: IncomingMessage) -> int | None:
    """Insert one new message and return its id; None when its dedupe key is already stored."""
    values = row_values(msg)
    dialect = session.get_bind().dialect.name
    try:
        new_id = session.execute(_insert_stmt(dialect), values).scalar()
        session.commit()
    except IntegrityError:  # a repeat, on databases without INSERT OR IGNORE
        session.rollback()
        return None
    return int(new_id) if new_id is not None else None


_insert_stmts: dict[str, Any] = {}


def _insert_stmt(dialect: str) -> Any:
    """The insert that returns the new id, built once so SQLAlchemy's compiled cache applies.

    SQLite ignores a repeat of the dedupe key (OR IGNORE returns no row); elsewhere the unique
    constraint raises, which is cheap enough for the rare retry. (The dialects' ON CONFLICT
    constructs are not cacheable, and compiling per message was most of the ack's cost.)
    """
    if dialect not in _insert_stmts:
        stmt = insert(_INBOUND).returning(_INBOUND.c.id)
        if dialect == "sqlite":
            stmt = stmt.prefix_with("OR IGNORE", dialect="sqlite")
        _insert_stmts[dialect] = stmt
    return _insert_stmts[dialect]


def accept(*, session: Session, msg: IncomingMessage) -> Accepted:
    """Store the message under its dedupe key and enqueue it; a repeat returns the first one.

    The database's unique constraint decides what is a repeat, so it holds across processes.
    """
    new_id = _insert_new(session, msg)
    if new_id is None:
        existing = session.execute(
            select(_INBOUND.c.id).where(_INBOUND.c.dedupe_key == msg.dedupe_key)
        ).scalar_one()
        return Accepted(inbound_id=int(existing), duplicate=True)
    if msg.channel not in outbox.LOCAL_CHANNELS:
        try:
            jobs.enqueue("bot.process_inbound", new_id)
        except Exception:  # the broker is down: the sweep picks the stored message up
            log.exception("could not enqueue inbound %s; the sweep will retry", new_id)
    return Accepted(inbound_id=new_id, duplicate=False)


@jobs.job("bot.fan_out", retries=3, retry_delay=2)
def fan_out(inbound_ids: list[int]) -> None:
    """Job: one job per message of a webhook batch, so worker threads share the batch."""
    for inbound_id in inbound_ids:
        jobs.enqueue("bot.process_inbound", inbound_id)


# ---------------------------------------------------------------- processing


def _get_engine(settings: Settings) -> Any:
    global _engine
    if _engine is None:
        from yishi.bot.engine import build_engine

        _engine = build_engine(settings)
    return _engine


def _get_senders(settings: Settings) -> dict[str, Any]:
    global _senders
    if _senders is None:
        from yishi.bot.adapters import build_senders

        _senders = build_senders(settings)
    return _senders


def _get_limiter(settings: Settings) -> Any:
    global _limiter
    if _limiter is None:
        from yishi.bot.adapters import build_rate_limiter

        _limiter = build_rate_limiter(settings, per_minute=settings.resident_messages_per_minute)
    return _limiter


def reset_caches() -> None:
    """Forget the cached engine, senders and limiter (settings changed: tests, reloads)."""
    global _engine, _senders, _limiter
    _engine = None
    _senders = None
    _limiter = None


def _claim(session: Session, inbound_id: int) -> InboundMessage | None:
    """Take the lease on a message atomically; None if another worker has it or it is done."""
    now = utcnow()
    result = session.execute(
        update(InboundMessage)
        .where(
            col(InboundMessage.id) == inbound_id,
            or_(
                col(InboundMessage.status) == InboundStatus.received,
                and_(
                    col(InboundMessage.status) == InboundStatus.processing,
                    col(InboundMessage.lease_until) < now,
                ),
            ),
        )
        .values(
            status=InboundStatus.processing,
            lease_owner=WORKER_ID,
            lease_until=now + LEASE,
            attempts=InboundMessage.attempts + 1,
            updated_at=now,
        )
    )
    session.commit()
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    row = session.get(InboundMessage, inbound_id, populate_existing=True)
    return row


def _finish(
    session: Session, row: InboundMessage, status: InboundStatus, reply: str, kind: str = "reply"
) -> OutboundMessage:
    settings = get_settings()
    row.status = status
    row.reply_text = reply
    row.lease_owner = None
    row.lease_until = None
    row.updated_at = utcnow()
    session.add(row)
    out = outbox.queue(
        session=session, user_id=row.user_id, text=reply, kind=kind, inbound_id=row.id
    )
    passive = row.channel == "wechat_mp" and settings.wechat_reply_mode == ReplyMode.passive
    if passive and row.deliver_on_next and out.status == OutboundStatus.pending:
        out.status = OutboundStatus.deferred
    session.commit()
    if out.status == OutboundStatus.pending and not passive:
        try:
            jobs.enqueue("bot.deliver_outbound", out.id)
        except Exception:
            log.exception("could not enqueue outbound %s; the sweep will retry", out.id)
    return out


def _screen(text: str, context: str) -> Any:
    from yishi.moderation import service as moderation_service

    return moderation_service.screen(text, context=context)


def _respond(session: Session, settings: Settings, row: InboundMessage) -> None:
    """Screen, answer and screen the answer for one claimed message."""
    from yishi.moderation import service as moderation_service

    actor = auth_service.actor_for(session=session, external_id=row.user_id, channel=row.channel)

    if row.msg_type == "event":
        if (row.event or "").lower() in {"subscribe", "enter_agent"}:
            text = "帮助"  # greet new followers with what Yishi can do
        else:
            row.status = InboundStatus.replied
            row.lease_owner = None
            session.add(row)
            session.commit()
            return
    elif row.msg_type not in {"text", "voice"}:
        _finish(session, row, InboundStatus.replied, UNSUPPORTED_NOTICE, kind="notice")
        return
    else:
        text = row.content.strip()
        if not text:
            notice = EMPTY_VOICE_NOTICE if row.msg_type == "voice" else UNSUPPORTED_NOTICE
            _finish(session, row, InboundStatus.replied, notice, kind="notice")
            return

    if _get_limiter(settings).reserve(f"resident:{row.user_id}", 1) > 0:
        row.moderation_action = "rate_limited"
        _finish(session, row, InboundStatus.held, SLOW_DOWN_NOTICE, kind="notice")
        return

    if moderation_service.is_muted(session=session, sender_id=row.user_id):
        notice = "您的发言功能暂时受限，如有疑问可以申诉，或联系社区工作人员。"
        row.moderation_action = "muted"
        _finish(session, row, InboundStatus.held, notice, kind="notice")
        return

    verdict = _screen(text, "message")
    row.moderation_action = verdict.action
    row.moderation_categories = list(verdict.categories)
    if verdict.action != "allow":
        moderation_service.hold(
            session=session,
            text=text,
            verdict=verdict,
            sender_id=row.user_id,
            source="inbound",
            source_ref=str(row.id),
        )
        _finish(
            session, row, InboundStatus.held, moderation_service.notice_for(verdict), kind="notice"
        )
        return

    engine = _get_engine(settings)
    result = engine.respond(session=session, actor=actor, text=text, message_ref=str(row.id))
    reply = result.reply.strip() or "抱歉，我没能理解您的意思。发送“帮助”可以查看我能做什么。"
    row.intent = result.intent
    row.engine = result.engine
    row.actions = list(result.actions)
    row.citations = list(result.citations)

    reply_verdict = _screen(reply, "reply")
    if reply_verdict.action == "block":
        moderation_service.hold(
            session=session,
            text=reply,
            verdict=reply_verdict,
            sender_id="bot",
            source="reply",
            source_ref=str(row.id),
        )
        reply = REPLY_WITHHELD
    elif reply_verdict.action == "review":
        reply = reply_verdict.redacted
    _finish(session, row, InboundStatus.replied, reply)


@jobs.job("bot.process_inbound", retries=MAX_ATTEMPTS, retry_delay=2)
def process_inbound(inbound_id: int) -> None:
    """Job: handle one stored inbound message end to end."""
    settings = get_settings()
    with session_scope(settings) as session:
        row = _claim(session, inbound_id)
        if row is None:
            return
        # A new message reopens the customer-service window: resend what waited for it.
        _release_deferred(session, row.user_id, settings)
        try:
            _respond(session, settings, row)
        except Exception as exc:
            session.rollback()
            row = session.get(InboundMessage, inbound_id, populate_existing=True)
            assert row is not None
            row.error = f"{type(exc).__name__}: {exc}"[:2000]
            log.exception("inbound %s failed (attempt %s)", inbound_id, row.attempts)
            if row.attempts >= MAX_ATTEMPTS:
                _finish(session, row, InboundStatus.failed, FAILED_NOTICE, kind="notice")
                return
            row.status = InboundStatus.received  # let the retry claim it at once
            row.lease_owner = None
            row.lease_until = None
            session.add(row)
            session.commit()
            raise


def _release_deferred(session: Session, user_id: str, settings: Settings) -> None:
    if settings.wechat_reply_mode == ReplyMode.passive and user_id.startswith("wechat_mp:"):
        return  # passive mode hands deferred replies over in the next HTTP response
    rows = session.exec(
        select(OutboundMessage).where(
            OutboundMessage.user_id == user_id,
            OutboundMessage.status == OutboundStatus.deferred,
        )
    ).all()
    for out in rows:
        out.status = OutboundStatus.pending
        session.add(out)
    session.commit()
    for out in rows:
        jobs.enqueue("bot.deliver_outbound", out.id)


# ---------------------------------------------------------------- delivery


@jobs.job("bot.deliver_outbound", retries=MAX_SEND_ATTEMPTS, retry_delay=5)
def deliver_outbound(outbound_id: int) -> None:
    """Job: send one outbound message through its channel, recording what WeChat said."""
    from yishi.bot.adapters import WeChatApiError

    settings = get_settings()
    with session_scope(settings) as session:
        out = session.get(OutboundMessage, outbound_id)
        if out is None or out.status != OutboundStatus.pending:
            return
        sender = _get_senders(settings).get(out.channel)
        if sender is None:
            out.status = OutboundStatus.failed
            out.last_error = f"渠道 {out.channel} 未配置发送方式"
            session.add(out)
            return
        to_user = out.user_id.split(":", 1)[1]
        out.attempts += 1
        try:
            sender.send_text(to_user=to_user, text=out.text)
        except WeChatApiError as exc:
            out.errcode = exc.errcode
            out.last_error = str(exc)[:2000]
            if exc.errcode == 45047:  # quota of the window used up: wait for the next message
                out.status = OutboundStatus.deferred
            elif not exc.retryable or out.attempts >= MAX_SEND_ATTEMPTS:
                out.status = OutboundStatus.failed
            session.add(out)
            session.commit()
            if out.status == OutboundStatus.pending:
                raise  # huey retries with backoff
            log.warning("outbound %s not delivered: %s", out.id, exc)
            return
        except Exception as exc:
            out.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            if out.attempts >= MAX_SEND_ATTEMPTS:
                out.status = OutboundStatus.failed
            session.add(out)
            session.commit()
            if out.status == OutboundStatus.pending:
                raise
            return
        out.status = OutboundStatus.sent
        out.sent_at = utcnow()
        session.add(out)


# ---------------------------------------------------------------- moderators' approvals


def _after_commit(session: Session, fn: Any, *args: Any) -> None:
    """Run `fn(*args)` once `session` commits (a job must not read uncommitted rows)."""
    from sqlalchemy import event

    def run(_session: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("after-commit work failed; the sweep will retry")

    event.listen(session, "after_commit", run, once=True)


def _release_inbound(session: Session, item: Any) -> None:
    """A moderator approved a held resident message: answer it now."""
    if item.source_ref and item.source_ref.isdigit():
        text = item.final_text or item.redacted or item.text
        _after_commit(session, jobs.enqueue, "bot.answer_released", int(item.source_ref), text)


def _release_reply(session: Session, item: Any) -> None:
    """A moderator approved a withheld bot reply: send it after all."""
    if not (item.source_ref and item.source_ref.isdigit()):
        return
    row = session.get(InboundMessage, int(item.source_ref))
    if row is None:
        return
    out = outbox.queue(
        session=session,
        user_id=row.user_id,
        text=item.final_text or item.redacted or item.text,
        kind="reply",
        inbound_id=row.id,
    )
    if out.status == OutboundStatus.pending:
        _after_commit(session, jobs.enqueue, "bot.deliver_outbound", out.id)


def _release_group(session: Session, item: Any) -> None:
    """A moderator approved a held group notice: post it."""
    out = outbox.queue(
        session=session,
        user_id=outbox.GROUP_USER_ID,
        text=item.final_text or item.redacted or item.text,
        kind="group",
    )
    _after_commit(session, jobs.enqueue, "bot.deliver_outbound", out.id)


@jobs.job("bot.answer_released", retries=MAX_ATTEMPTS, retry_delay=5)
def answer_released(inbound_id: int, text: str) -> None:
    """Job: answer a resident message that a moderator approved after it was held."""
    settings = get_settings()
    with session_scope(settings) as session:
        row = session.get(InboundMessage, inbound_id)
        if row is None or row.status != InboundStatus.held:
            return
        actor = auth_service.actor_for(
            session=session, external_id=row.user_id, channel=row.channel
        )
        result = _get_engine(settings).respond(
            session=session, actor=actor, text=text, message_ref=str(row.id)
        )
        row.intent, row.engine = result.intent, result.engine
        row.actions, row.citations = list(result.actions), list(result.citations)
        reply = result.reply.strip()
        verdict = _screen(reply, "reply")
        if verdict.action == "block":
            reply = REPLY_WITHHELD
        elif verdict.action == "review":
            reply = verdict.redacted
        _finish(session, row, InboundStatus.replied, reply)


def register_release_handlers() -> None:
    """Tell moderation what to do when a moderator approves a held message of the bot's."""
    from yishi.moderation import service as moderation_service

    moderation_service.register_release_handler("inbound", _release_inbound)
    moderation_service.register_release_handler("reply", _release_reply)
    moderation_service.register_release_handler("group", _release_group)


# ---------------------------------------------------------------- recovery


@jobs.job("bot.sweep", periodic="*")
def sweep() -> dict[str, int]:
    """Periodic: re-enqueue what a dead process or a lost job left behind."""
    settings = get_settings()
    now = utcnow()
    counts = {"inbound": 0, "outbound": 0}
    with session_scope(settings) as session:
        stale = session.exec(
            select(InboundMessage.id).where(
                col(InboundMessage.channel).not_in(list(outbox.LOCAL_CHANNELS)),
                or_(
                    and_(
                        col(InboundMessage.status) == InboundStatus.received,
                        col(InboundMessage.updated_at) < now - STALE_RECEIVED,
                    ),
                    and_(
                        col(InboundMessage.status) == InboundStatus.processing,
                        col(InboundMessage.lease_until) < now,
                    ),
                ),
            )
        ).all()
        pending = session.exec(
            select(OutboundMessage.id).where(
                OutboundMessage.status == OutboundStatus.pending,
                col(OutboundMessage.created_at) < now - STALE_RECEIVED,
                col(OutboundMessage.channel).not_in(list(outbox.LOCAL_CHANNELS)),
            )
        ).all()
    passive = settings.wechat_reply_mode == ReplyMode.passive
    for inbound_id in stale:
        jobs.enqueue("bot.process_inbound", inbound_id)
        counts["inbound"] += 1
    for outbound_id in pending:
        if passive:
            continue  # handed over in HTTP responses
        jobs.enqueue("bot.deliver_outbound", outbound_id)
        counts["outbound"] += 1
    if stale or pending:
        log.info("sweep re-enqueued %s", counts)
    return counts


# ---------------------------------------------------------------- passive replies


def _take_passive(session: Session, inbound_id: int, user_id: str) -> str | None:
    """Hand over the reply of `inbound_id` plus any late replies for this user, atomically."""
    rows = session.exec(
        select(OutboundMessage)
        .where(
            OutboundMessage.user_id == user_id,
            col(OutboundMessage.status).in_([OutboundStatus.pending, OutboundStatus.deferred]),
        )
        .order_by(col(OutboundMessage.id))
    ).all()
    mine = [r for r in rows if r.inbound_id == inbound_id]
    if not mine:
        return None
    texts: list[str] = []
    now = utcnow()
    for out in rows:
        taken = session.execute(
            update(OutboundMessage)
            .where(col(OutboundMessage.id) == out.id, col(OutboundMessage.status) == out.status)
            .values(status=OutboundStatus.sent, sent_at=now, attempts=OutboundMessage.attempts + 1)
        )
        if taken.rowcount == 1:  # type: ignore[attr-defined]
            texts.append(out.text if out.inbound_id == inbound_id else LATE_PREFIX + out.text)
    if not texts:
        session.commit()
        return None
    # One passive reply carries one message: what does not fit waits for the next message.
    parts = split_for_wechat("\n\n".join(texts), PASSIVE_PART_BYTES)
    for rest in parts[1:]:
        session.add(
            OutboundMessage(
                channel="wechat_mp",
                user_id=user_id,
                kind="reply",
                text=rest,
                status=OutboundStatus.deferred,
            )
        )
    session.commit()
    if len(parts) > 1:
        return parts[0] + MORE_TO_COME
    return parts[0]


async def passive_reply(
    *, inbound_id: int, sender: str, wait_s: float = 4.5, poll_s: float = 0.05
) -> str | None:
    """Passive mode: wait for the reply within this try of WeChat's; None means answer `success`.

    On the first two tries an unready reply keeps the request open past WeChat's 5 s so that it
    retries (an answer that becomes ready then is left for the retry, since WeChat has stopped
    listening); on the last try Yishi says it is still working and delivers on the next message.
    """
    settings = get_settings()
    wait_s = min(wait_s, settings.wechat_passive_wait_s)
    user_id = f"wechat_mp:{sender}"
    tries = await asyncio.to_thread(_count_passive_try, settings, inbound_id)
    if tries is None:
        return None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        done, text = await asyncio.to_thread(_poll_passive, settings, inbound_id, user_id)
        if done:
            return text
        if loop.time() >= deadline:
            break
        await asyncio.sleep(poll_s)
    if tries < PASSIVE_TRIES:
        await asyncio.sleep(settings.wechat_passive_hold_s)
        return None
    await asyncio.to_thread(_defer_to_next_message, settings, inbound_id)
    return STILL_WORKING


def _count_passive_try(settings: Settings, inbound_id: int) -> int | None:
    with session_scope(settings) as session:
        row = session.get(InboundMessage, inbound_id)
        if row is None:
            return None
        row.passive_polls += 1
        session.add(row)
        return row.passive_polls


def _poll_passive(settings: Settings, inbound_id: int, user_id: str) -> tuple[bool, str | None]:
    """(done, text): the reply if it is ready; done without text when there is nothing to say."""
    with session_scope(settings) as session:
        text = _take_passive(session, inbound_id, user_id)
        if text is not None:
            return True, text
        row = session.get(InboundMessage, inbound_id)
        finished = row is not None and row.status in (InboundStatus.replied, InboundStatus.held)
        return bool(finished and row is not None and row.reply_text is None), None


def _defer_to_next_message(settings: Settings, inbound_id: int) -> None:
    with session_scope(settings) as session:
        row = session.get(InboundMessage, inbound_id)
        if row is None:
            return
        row.deliver_on_next = True
        session.add(row)
        session.execute(
            update(OutboundMessage)
            .where(
                col(OutboundMessage.inbound_id) == inbound_id,
                col(OutboundMessage.status) == OutboundStatus.pending,
            )
            .values(status=OutboundStatus.deferred)
        )


# ---------------------------------------------------------------- one turn, in process


def run_turn(*, msg: IncomingMessage, settings: Settings | None = None) -> ChatTurn:
    """Accept and process one message in this process (web simulator, `yishi chat`)."""
    settings = settings or get_settings()
    with session_scope(settings) as session:
        accepted = accept(session=session, msg=msg)
    if not accepted.duplicate:
        for _ in range(MAX_ATTEMPTS):
            try:
                process_inbound(accepted.inbound_id)
                break
            except Exception:  # recorded on the row; try again like the worker would
                continue
    with session_scope(settings) as session:
        row = session.get(InboundMessage, accepted.inbound_id)
        assert row is not None
        return ChatTurn(
            reply=row.reply_text or "",
            intent=row.intent or ("moderation" if row.status == InboundStatus.held else ""),
            actions=list(row.actions or []),
            citations=list(row.citations or []),
            engine=row.engine or "offline",
            status=row.status.value,
            inbound_id=row.id,
            moderation=(
                {"action": row.moderation_action, "categories": row.moderation_categories}
                if row.moderation_action
                else None
            ),
        )
