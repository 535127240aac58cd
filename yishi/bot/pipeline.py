"""The message path: accept (store + enqueue) → screen → engine → screen reply → deliver.

Every step's state lives in `InboundMessage` / `OutboundMessage`, so a worker that dies mid-way
loses nothing: its lease expires and the periodic sweep hands the message to another worker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
from datetime import UTC, timedelta
from typing import Any, cast

from sqlalchemy import and_, func, insert, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from yishi.bot import intents, outbox
from yishi.bot.acceptor import row_values
from yishi.bot.models import InboundMessage, InboundStatus, OutboundMessage, OutboundStatus
from yishi.bot.schemas import Accepted, ChatTurn, IncomingMessage
from yishi.bot.text import split_for_wechat
from yishi.core import auth as auth_service
from yishi.core import jobs
from yishi.core.clock import utcnow
from yishi.core.config import ReplyMode, Settings, get_settings
from yishi.core.db import session_scope
from yishi.privacy import notice as privacy_service

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)  # the default of `inbound_lease_s`
MAX_ATTEMPTS = 3
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
MUTED_NOTICE = (
    "您的发言暂时受限，这条消息没有发布。期间仍可回复“转人工”联系工作人员、“我的问题”查看进度，"
    "或回复“申诉 加上理由”申请复核；燃气泄漏、火情、有人被困或受伤等紧急情况照常受理。"
)

_engine: Any = None
_senders: dict[str, Any] | None = None
_limiter: Any = None
_notice_limiter: Any = None
_breaker: Any = None


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
        except Exception as exc:  # the broker is down: the sweep picks the stored message up
            log.warning(
                "could not enqueue inbound %s (%s); the sweep will retry",
                new_id,
                type(exc).__name__,
            )
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
        from yishi.bot.adapters import build_resident_limiter

        _limiter = build_resident_limiter(settings, settings.resident_messages_per_minute)
    return _limiter


def _get_notice_limiter(settings: Settings) -> Any:
    """One "slow down" notice per resident per window, however many messages it covers."""
    global _notice_limiter
    if _notice_limiter is None:
        from yishi.bot.adapters import build_resident_limiter

        _notice_limiter = build_resident_limiter(settings, 1)
    return _notice_limiter


def reset_caches() -> None:
    """Forget the cached engine, senders, limiters and breaker (settings changed: tests)."""
    global _engine, _senders, _limiter, _notice_limiter, _breaker
    _engine = None
    _senders = None
    _limiter = None
    _notice_limiter = None
    _breaker = None


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
            lease_until=now + timedelta(seconds=get_settings().inbound_lease_s),
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
        except Exception as exc:
            log.warning(
                "could not enqueue outbound %s (%s); the sweep will retry",
                out.id,
                type(exc).__name__,
            )
    return out


def _hold_silently(session: Session, row: InboundMessage) -> None:
    row.status = InboundStatus.held
    row.lease_owner = None
    row.lease_until = None
    row.updated_at = utcnow()
    session.add(row)
    session.commit()


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
            if (row.event or "").lower() == "unsubscribe":
                privacy_service.on_unsubscribe(session=session, user_id=row.user_id)
            row.status = InboundStatus.replied
            row.lease_owner = None
            session.add(row)
            session.commit()
            return
    elif row.msg_type not in {"text", "voice"}:
        from yishi.bot import media  # photos and locations join reports; other types explained

        notice = media.answer_non_text(
            session=session, settings=settings, row=row, senders=_get_senders(settings)
        )
        _finish(session, row, InboundStatus.replied, notice, kind="notice")
        return
    else:
        text = row.content.strip()
        if not text:
            notice = EMPTY_VOICE_NOTICE if row.msg_type == "voice" else UNSUPPORTED_NOTICE
            _finish(session, row, InboundStatus.replied, notice, kind="notice")
            return

    if _get_limiter(settings).reserve(f"resident:{row.user_id}", 1) > 0:
        row.moderation_action = "rate_limited"
        # A pushed notice costs one of the window's sends: tell a resident once per window.
        # (The simulator and the CLI read the reply back, so they always show it.)
        told = row.channel not in outbox.LOCAL_CHANNELS and (
            _get_notice_limiter(settings).reserve(f"slow-down-notice:{row.user_id}", 1) > 0
        )
        if told:
            _hold_silently(session, row)
        else:
            _finish(session, row, InboundStatus.held, SLOW_DOWN_NOTICE, kind="notice")
        return

    if moderation_service.is_muted(
        session=session, sender_id=row.user_id
    ) and not intents.allowed_while_muted(text):
        notice = MUTED_NOTICE
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

    first_notice = privacy_service.first_contact_notice(
        session=session, user_id=row.user_id, subscribe=(row.event or "").lower() == "subscribe"
    )
    engine = _get_engine(settings)
    result = engine.respond(session=session, actor=actor, text=text, message_ref=str(row.id))
    reply = result.reply.strip() or "抱歉，我没能理解您的意思。发送“帮助”可以查看我能做什么。"
    row.intent = (result.intent or "")[:30] or None
    row.engine = result.engine
    row.actions = list(result.actions)
    row.citations = list(result.citations)
    from yishi.bot import media

    reply += media.attach_pending(
        session=session, settings=settings, user_id=row.user_id, actions=row.actions
    )

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
    _finish(session, row, InboundStatus.replied,
            f"{first_notice}\n\n{reply}" if first_notice else reply)


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


EXPIRED_REASON = "超过微信客服消息的48小时回复期限，未能送达，请工作人员另行联系该居民。"
UNCERTAIN_REASON = (
    "发送结果未知：发送途中处理进程中断，微信可能已收到。为免重复未自动重发，请核实后处理。"
)
NO_SENDER_REASON = "该渠道未配置发送方式"
SEND_LEASE = timedelta(seconds=60)  # longer than a send's HTTP timeouts


def _get_breaker(settings: Settings) -> Any:
    global _breaker
    if _breaker is None:
        from yishi.bot.adapters import build_circuit_breaker

        _breaker = build_circuit_breaker(settings)
    return _breaker


def retry_delay_s(attempts: int, settings: Settings) -> float:
    """Exponential backoff with jitter: half the step fixed, half random (never a lock-step)."""
    step = min(settings.send_retry_base_s * 2 ** max(attempts - 1, 0), settings.send_retry_max_s)
    return step / 2 + random.uniform(0, step / 2)


def _claim_outbound(session: Session, outbound_id: int) -> OutboundMessage | None:
    """Take the send lease on a pending message; None if another worker holds it, it is done,
    or a previous send's outcome is unknown (that one is reconciled, never blindly resent)."""
    now = utcnow()
    result = session.execute(
        update(OutboundMessage)
        .where(
            col(OutboundMessage.id) == outbound_id,
            col(OutboundMessage.status) == OutboundStatus.pending,
            col(OutboundMessage.send_started_at).is_(None),
            or_(col(OutboundMessage.lease_until).is_(None), col(OutboundMessage.lease_until) < now),
        )
        .values(lease_owner=WORKER_ID, lease_until=now + SEND_LEASE)
    )
    session.commit()
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return session.get(OutboundMessage, outbound_id, populate_existing=True)


def _release_outbound(session: Session, out: OutboundMessage, **values: Any) -> bool:
    """Record the outcome and drop the lease, only if this worker still holds it (idempotent)."""
    result = session.execute(
        update(OutboundMessage)
        .where(col(OutboundMessage.id) == out.id, col(OutboundMessage.lease_owner) == WORKER_ID)
        .values(lease_owner=None, lease_until=None, send_started_at=None, **values)
    )
    session.commit()
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def _is_oldest_pending(session: Session, out: OutboundMessage) -> bool:
    oldest = session.execute(
        select(func.min(OutboundMessage.id)).where(
            OutboundMessage.channel == out.channel,
            OutboundMessage.status == OutboundStatus.pending,
        )
    ).scalar()
    return oldest == out.id


@jobs.job("bot.deliver_outbound", retries=0)
def deliver_outbound(outbound_id: int) -> None:
    """Job: send one outbound message under a lease, recording what WeChat said.

    Failures retry with backoff until the message's deadline; while the channel's circuit
    breaker is open no attempt is spent, and the oldest waiting message probes the API.
    """
    from yishi.bot.adapters import WeChatApiError, counts_against_channel

    settings = get_settings()
    with session_scope(settings) as session:
        out = _claim_outbound(session, outbound_id)
        if out is None:
            return
        now = utcnow()
        if out.deadline_at is not None and now > out.deadline_at:
            _release_outbound(session, out, status=OutboundStatus.failed, last_error=EXPIRED_REASON)
            log.warning("outbound %s expired unsent", out.id)
            return
        sender = _get_senders(settings).get(out.channel)
        if sender is None:
            _release_outbound(
                session, out, status=OutboundStatus.failed, last_error=NO_SENDER_REASON
            )
            return
        breaker = _get_breaker(settings)
        wait = breaker.allow(out.channel)
        if wait > 0:  # the channel is down: spend no attempt; the oldest message probes
            wait += random.uniform(0, 1)
            _release_outbound(session, out, next_attempt_at=now + timedelta(seconds=wait))
            if _is_oldest_pending(session, out):
                _enqueue_quietly("bot.deliver_outbound", out.id, delay=wait)
            return
        prepare = getattr(sender, "prepare", None)
        if prepare is not None:  # the access token, before the uncertain window opens
            try:
                prepare()
            except Exception as exc:
                _after_send_error(
                    session,
                    settings,
                    out,
                    exc,
                    getattr(exc, "retryable", True),
                    counts_against_channel(exc) if isinstance(exc, WeChatApiError) else True,
                    breaker,
                )
                return
        # Durable before the call: if this process dies now, the sweep knows the send may
        # have happened and reconciles instead of sending again.
        out.attempts += 1
        out.send_started_at = now
        session.add(out)
        session.commit()
        to_user = out.user_id.split(":", 1)[1]
        try:
            sender.send_text(to_user=to_user, text=out.text)
        except WeChatApiError as exc:
            _after_send_error(
                session, settings, out, exc, exc.retryable, counts_against_channel(exc), breaker
            )
            return
        except Exception as exc:
            _after_send_error(session, settings, out, exc, True, True, breaker)
            return
        _release_outbound(
            session, out, status=OutboundStatus.sent, sent_at=utcnow(), errcode=0, last_error=None
        )
        if breaker.record_success(out.channel):
            log.info("%s API answers again; draining its backlog", out.channel)
            drain(channel=out.channel, settings=settings)


def _after_send_error(
    session: Session,
    settings: Settings,
    out: OutboundMessage,
    exc: Exception,
    retryable: bool,
    channel_down: bool,
    breaker: Any,
) -> None:
    errcode = getattr(exc, "errcode", None)
    error = (str(exc) if errcode is not None else f"{type(exc).__name__}: {exc}")[:2000]
    now = utcnow()
    if errcode in (45015, 45047):  # window closed or quota used: wait for the next message
        _release_outbound(
            session, out, status=OutboundStatus.deferred, errcode=errcode, last_error=error
        )
        return
    if not retryable:
        _release_outbound(
            session, out, status=OutboundStatus.failed, errcode=errcode, last_error=error
        )
        log.warning("outbound %s not delivered: %s", out.id, error.splitlines()[0][:200])
        return
    delay = retry_delay_s(out.attempts, settings)
    if channel_down and breaker.record_failure(out.channel):
        # The channel is down: probe again when the breaker half-opens, not after a long
        # backoff, so that the backlog moves within seconds of the API's return.
        delay = settings.breaker_open_s + random.uniform(0, 1)
    next_at = now + timedelta(seconds=delay)
    if out.deadline_at is not None and next_at > out.deadline_at:
        _release_outbound(
            session,
            out,
            status=OutboundStatus.failed,
            errcode=errcode,
            last_error=f"{EXPIRED_REASON}（{error[:200]}）",
        )
        return
    _release_outbound(session, out, errcode=errcode, last_error=error, next_attempt_at=next_at)
    log.info(
        "outbound %s attempt %s failed (%s); next in %.0f s",
        out.id,
        out.attempts,
        error.splitlines()[0][:120],
        delay,
    )
    _enqueue_quietly("bot.deliver_outbound", out.id, delay=delay)


def _enqueue_quietly(name: str, *args: Any, delay: float | None = None) -> None:
    try:
        jobs.enqueue(name, *args, delay=delay)
    except Exception as exc:  # the broker is down: the sweep finds the row by its state
        log.warning("could not enqueue %s (%s); the sweep will retry", name, type(exc).__name__)


def drain(*, channel: str, settings: Settings | None = None, limit: int = 10000) -> int:
    """Enqueue a channel's waiting messages in order, spaced to the drain rate; how many."""
    settings = settings or get_settings()
    now = utcnow()
    with session_scope(settings) as session:
        ids = session.exec(
            select(OutboundMessage.id)
            .where(
                OutboundMessage.channel == channel,
                OutboundMessage.status == OutboundStatus.pending,
                col(OutboundMessage.send_started_at).is_(None),
                or_(
                    col(OutboundMessage.lease_until).is_(None),
                    col(OutboundMessage.lease_until) < now,
                ),
            )
            .order_by(col(OutboundMessage.id))
            .limit(limit)
        ).all()
    rate = max(settings.drain_per_second, 0.1)
    for n, outbound_id in enumerate(ids):
        _enqueue_quietly("bot.deliver_outbound", outbound_id, delay=n / rate or None)
    return len(ids)


def reconcile_outbound(*, settings: Settings | None = None) -> dict[str, int]:
    """Settle sends whose worker died mid-call (lease run out, outcome never recorded).

    Where the channel can be asked (the Official Account's customer-service message record),
    the record decides: found → sent; not found → sent again. Where it cannot, the policy does:
    `send_uncertain=flag` lists the message for staff (never a duplicate), `resend` sends it
    again (never lost). Also expires pending messages past their deadline.
    """
    settings = settings or get_settings()
    now = utcnow()
    counts = {"uncertain": 0, "confirmed": 0, "resent": 0, "expired": 0}
    with session_scope(settings) as session:
        rows = session.exec(
            select(OutboundMessage).where(
                OutboundMessage.status == OutboundStatus.pending,
                col(OutboundMessage.send_started_at).is_not(None),
                col(OutboundMessage.lease_until) < now,
            )
        ).all()
        resend: list[int] = []
        for out in rows:
            found = _ask_channel(settings, out)
            values: dict[str, Any] = {"lease_owner": None, "lease_until": None}
            if found is True:
                values.update(status=OutboundStatus.sent, sent_at=now, send_started_at=None)
                counts["confirmed"] += 1
            elif found is False or settings.send_uncertain == "resend":
                values.update(send_started_at=None)
                counts["resent"] += 1
                resend.append(int(out.id or 0))
            else:
                values.update(status=OutboundStatus.failed, last_error=UNCERTAIN_REASON)
                counts["uncertain"] += 1
            session.execute(
                update(OutboundMessage)
                .where(
                    col(OutboundMessage.id) == out.id,
                    col(OutboundMessage.send_started_at).is_not(None),
                    col(OutboundMessage.lease_until) < now,
                )
                .values(**values)
            )
        result = session.execute(
            update(OutboundMessage)
            .where(
                col(OutboundMessage.status) == OutboundStatus.pending,
                col(OutboundMessage.send_started_at).is_(None),
                col(OutboundMessage.deadline_at) < now,
                or_(
                    col(OutboundMessage.lease_until).is_(None),
                    col(OutboundMessage.lease_until) < now,
                ),
            )
            .values(
                status=OutboundStatus.failed,
                last_error=EXPIRED_REASON,
                lease_owner=None,
                lease_until=None,
            )
        )
        counts["expired"] = int(result.rowcount or 0)  # type: ignore[attr-defined]
    for outbound_id in resend:
        _enqueue_quietly("bot.deliver_outbound", outbound_id)
    if any(counts.values()):
        log.warning("outbound reconciled: %s", counts)
    return counts


def _ask_channel(settings: Settings, out: OutboundMessage) -> bool | None:
    """Ask the channel whether an uncertain send arrived (None: it cannot be asked)."""
    sender = _get_senders(settings).get(out.channel)
    find_sent = getattr(sender, "find_sent", None)
    if find_sent is None or out.send_started_at is None:
        return None
    try:
        return cast(
            "bool | None",
            find_sent(
                to_user=out.user_id.split(":", 1)[1],
                text=out.text,
                since=out.send_started_at.replace(tzinfo=UTC).timestamp(),
            ),
        )
    except Exception as exc:
        log.warning("could not ask %s about outbound %s: %s", out.channel, out.id, exc)
        return None


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
            select(OutboundMessage.id)
            .where(
                OutboundMessage.status == OutboundStatus.pending,
                col(OutboundMessage.created_at) < now - STALE_RECEIVED,
                col(OutboundMessage.channel).not_in(list(outbox.LOCAL_CHANNELS)),
                col(OutboundMessage.send_started_at).is_(None),
                or_(
                    col(OutboundMessage.lease_until).is_(None),
                    col(OutboundMessage.lease_until) < now,
                ),
                or_(
                    col(OutboundMessage.next_attempt_at).is_(None),
                    col(OutboundMessage.next_attempt_at) <= now,
                ),
            )
            .order_by(col(OutboundMessage.id))
            .limit(10000)
        ).all()
    reconcile_outbound(settings=settings)
    passive = settings.wechat_reply_mode == ReplyMode.passive
    for inbound_id in stale:
        jobs.enqueue("bot.process_inbound", inbound_id)
        counts["inbound"] += 1
    rate = max(settings.drain_per_second, 0.1)
    for outbound_id in pending:
        if passive:
            continue  # handed over in HTTP responses
        # In order and spaced to the drain rate: a backlog does not hit the API all at once.
        jobs.enqueue("bot.deliver_outbound", outbound_id, delay=counts["outbound"] / rate or None)
        counts["outbound"] += 1
    if stale or pending:
        log.info("sweep re-enqueued %s", counts)
    return counts


def backlog_ages(*, settings: Settings | None = None) -> dict[str, float | None]:
    """Seconds since the oldest message still waiting for an answer, and for delivery."""
    settings = settings or get_settings()
    now = utcnow()
    with session_scope(settings) as session:
        inbound = session.execute(
            select(func.min(InboundMessage.created_at)).where(
                col(InboundMessage.status).in_([InboundStatus.received, InboundStatus.processing]),
                col(InboundMessage.channel).not_in(list(outbox.LOCAL_CHANNELS)),
            )
        ).scalar()
        outbound = session.execute(
            select(func.min(OutboundMessage.created_at)).where(
                OutboundMessage.status == OutboundStatus.pending,
            )
        ).scalar()
    return {
        "oldest_unanswered_s": (now - inbound).total_seconds() if inbound else None,
        "oldest_undelivered_s": (now - outbound).total_seconds() if outbound else None,
    }


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
