"""The AI bot's answers: one per message, in the callback's stream or through `response_url`.

The route stores an `AibotStream` for each message before accepting it. The pipeline answers as
for any channel and queues the reply; the channel's sender (`AibotSender`) hands it to the
stream while WeCom is still refreshing it, and otherwise posts it once through `response_url`.
Every hand-over is a conditional UPDATE on the stream's state, so retries of the callback,
several processes and the periodic flush never deliver an answer twice.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import timedelta
from typing import Protocol

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from yishi.bot.channel_models import AibotGroup, AibotStream, StreamState
from yishi.bot.models import InboundMessage, OutboundMessage, OutboundStatus
from yishi.bot.schemas import IncomingMessage
from yishi.core import jobs
from yishi.core.auth import Actor
from yishi.core.clock import utcnow
from yishi.core.config import Settings, get_settings
from yishi.core.db import session_scope
from yishi.core.errors import Invalid
from yishi.core.models import Role

log = logging.getLogger(__name__)

STREAM_WINDOW = timedelta(minutes=5, seconds=30)  # WeCom stops refreshing 6 min after the message
REFRESH_GAP = timedelta(seconds=10)  # no refresh for this long: WeCom has stopped listening
SEEN_EVERY = timedelta(seconds=1)
RESPONSE_URL_LIFETIME = timedelta(minutes=59)  # response_url works once, for an hour
ANSWERED_ELSEWHERE = "（答复已通过消息单独发出，请查看下一条消息。）"
EXPIRED = "抱歉，这条消息已过期，请重新发送。"
REPLY_WITHHELD = "抱歉，这条回复没有通过安全检查，已转交工作人员处理。"


class NoConversation(Exception):
    """The AI bot can only answer inside a conversation; `reason` says why this one cannot."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class ResponsePoster(Protocol):
    """Posts one answer to a message's `response_url` (the adapter checks the host)."""

    def post(self, *, response_url: str, text: str) -> None: ...


# ---------------------------------------------------------------- callback side


def open_stream(
    *, session: Session, msg: IncomingMessage, response_url: str | None
) -> AibotStream:
    """The message's stream, created on its first callback (a retry gets the same one)."""
    existing = session.exec(
        select(AibotStream).where(AibotStream.dedupe_key == msg.dedupe_key)
    ).first()
    if existing is not None:
        return existing
    row = AibotStream(
        dedupe_key=msg.dedupe_key,
        stream_id=secrets.token_hex(16),
        user_id=msg.user_id,
        chat_type=str(msg.raw.get("chattype") or "single"),
        chat_id=msg.raw.get("chatid"),
        response_url=response_url,
    )
    session.add(row)
    try:
        session.commit()
    except IntegrityError:  # a retry reached another process first
        session.rollback()
        found = session.exec(
            select(AibotStream).where(AibotStream.dedupe_key == msg.dedupe_key)
        ).first()
        assert found is not None
        return found
    session.refresh(row)
    return row


def refresh(*, session: Session, stream_id: str, user_id: str) -> tuple[str, bool]:
    """What a stream shows now: (content, finish). Marks the answer handed over when it is."""
    row = session.exec(select(AibotStream).where(AibotStream.stream_id == stream_id)).first()
    if row is None or row.user_id != user_id:
        return EXPIRED, True
    now = utcnow()
    if row.state == StreamState.ready:
        session.execute(
            update(AibotStream)
            .where(col(AibotStream.id) == row.id, col(AibotStream.state) == StreamState.ready)
            .values(state=StreamState.answered, done_at=now, refreshed_at=now)
        )
        session.commit()
        session.refresh(row)
    elif row.refreshed_at is None or now - row.refreshed_at >= SEEN_EVERY:
        # WeCom is listening: recorded at most once a second, not on every poll
        row.refreshed_at = now
        session.add(row)
        session.commit()
    if row.state == StreamState.answered:
        return row.reply_text or "", True
    if row.state in (StreamState.posted, StreamState.posting):
        return ANSWERED_ELSEWHERE, True
    if row.state == StreamState.failed:
        return row.reply_text or EXPIRED, True
    return "", False


async def wait_for_answer(
    *, settings: Settings, stream_id: str, user_id: str, wait_s: float, poll_s: float = 0.05
) -> tuple[str, bool]:
    """Poll the stream for up to `wait_s` seconds; (content, finish) as `refresh` gives it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        content, finish = await asyncio.to_thread(refresh_in_session, settings, stream_id, user_id)
        if finish or loop.time() >= deadline:
            return content, finish
        await asyncio.sleep(poll_s)


def refresh_in_session(settings: Settings, stream_id: str, user_id: str) -> tuple[str, bool]:
    """`refresh` in its own session (for the async route)."""
    with session_scope(settings) as session:
        return refresh(session=session, stream_id=stream_id, user_id=user_id)


# ---------------------------------------------------------------- delivery side


def _screened_for_group(text: str) -> str:
    """What may be shown to a whole group: personal data masked, blocked text withheld."""
    from yishi.moderation import service as moderation_service

    verdict = moderation_service.screen(text, context="reply")
    if verdict.action == "block":
        return REPLY_WITHHELD
    return verdict.redacted


def _stream_for(session: Session, user_id: str, text: str) -> AibotStream:
    """The stream of the conversation this pending outbound text answers.

    The sender is told only the user and the text; two pending answers with the same text (two
    "帮助" in a row) are matched oldest first to the streams still waiting for one.
    """
    rows = session.exec(
        select(OutboundMessage)
        .where(
            OutboundMessage.user_id == user_id,
            OutboundMessage.status == OutboundStatus.pending,
            OutboundMessage.text == text,
        )
        .order_by(col(OutboundMessage.id))
    ).all()
    streams: list[AibotStream] = []
    for out in rows:
        inbound = session.get(InboundMessage, out.inbound_id) if out.inbound_id else None
        stream = None
        if inbound is not None:
            stream = session.exec(
                select(AibotStream).where(AibotStream.dedupe_key == inbound.dedupe_key)
            ).first()
        if stream is not None:
            if stream.state == StreamState.open:
                return stream
            streams.append(stream)
    if streams:
        return streams[-1]
    if not rows or all(out.inbound_id is None for out in rows):
        raise NoConversation("智能机器人只能在居民发来的消息下答复，无法主动发送通知")
    raise NoConversation("找不到这条消息的会话记录，无法答复")


def _claim(session: Session, stream: AibotStream, *, frm: StreamState, to: StreamState,
           **values: object) -> bool:
    result = session.execute(
        update(AibotStream)
        .where(col(AibotStream.id) == stream.id, col(AibotStream.state) == frm)
        .values(state=to, **values)
    )
    session.commit()
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def hand_over(*, settings: Settings, to_user: str, text: str, poster: ResponsePoster) -> str:
    """Deliver one answer: into the live stream, else through `response_url`. Returns how.

    Raises `NoConversation` when neither is possible (the outbox then records it as failed,
    and staff see it in the undelivered list).
    """
    user_id = f"wecom_aibot:{to_user}"
    with session_scope(settings) as session:
        stream = _stream_for(session, user_id, text)
        if stream.chat_type == "group":
            text = _screened_for_group(text)
        now = utcnow()
        last_seen = stream.refreshed_at or stream.created_at
        live = now - stream.created_at < STREAM_WINDOW and now - last_seen < REFRESH_GAP
        if live and _claim(session, stream, frm=StreamState.open, to=StreamState.ready,
                           reply_text=text, ready_at=now):
            return "stream"
        if not _claim(session, stream, frm=StreamState.open, to=StreamState.posting,
                      reply_text=text):
            session.refresh(stream)
            if stream.state in (StreamState.ready, StreamState.answered, StreamState.posting,
                                StreamState.posted):
                return "already"  # a retry of the same delivery: it is on its way or there
            raise NoConversation(stream.error or "这条消息的答复无法送达")
        return _post(session, stream, text, poster)


def _post(session: Session, stream: AibotStream, text: str, poster: ResponsePoster) -> str:
    """Post a claimed (`posting`) answer once through `response_url`."""
    now = utcnow()
    reason = None
    if not stream.response_url:
        reason = "这条消息没有可用的回复地址"
    elif now - stream.created_at > RESPONSE_URL_LIFETIME:
        reason = "回复地址已超过一小时有效期"
    if reason is None:
        assert stream.response_url is not None
        try:
            poster.post(response_url=stream.response_url, text=text)
        except Exception as exc:  # the URL works once: do not retry blindly
            reason = f"通过回复地址发送失败：{type(exc).__name__}"
            log.warning("aibot stream %s: response_url post failed: %s", stream.id,
                        type(exc).__name__)
    if reason is not None:
        _claim(session, stream, frm=StreamState.posting, to=StreamState.failed,
               error=reason[:500], done_at=now)
        raise NoConversation(reason)
    _claim(session, stream, frm=StreamState.posting, to=StreamState.posted, done_at=now)
    return "response_url"


def _poster(settings: Settings) -> ResponsePoster:
    from yishi.bot.channel_adapters import ResponseUrlPoster

    return ResponseUrlPoster.from_settings(settings)


@jobs.job("bot.aibot_flush", periodic="*")
def flush(poster: ResponsePoster | None = None) -> int:
    """Periodic: answers that waited in a stream WeCom stopped refreshing go via response_url."""
    settings = get_settings()
    cutoff = utcnow() - REFRESH_GAP
    posted = 0
    with session_scope(settings) as session:
        rows = session.exec(
            select(AibotStream).where(
                AibotStream.state == StreamState.ready, col(AibotStream.ready_at) < cutoff
            )
        ).all()
        for stream in rows:
            if not _claim(session, stream, frm=StreamState.ready, to=StreamState.posting):
                continue
            try:
                _post(session, stream, stream.reply_text or "", poster or _poster(settings))
                posted += 1
            except NoConversation as exc:
                _mark_outbound_failed(session, stream, exc.reason)
    return posted


def _mark_outbound_failed(session: Session, stream: AibotStream, reason: str) -> None:
    """The reply the outbox counted as handed over did not arrive: list it for staff."""
    inbound = session.exec(
        select(InboundMessage).where(InboundMessage.dedupe_key == stream.dedupe_key)
    ).first()
    if inbound is None:
        return
    session.execute(
        update(OutboundMessage)
        .where(col(OutboundMessage.inbound_id) == inbound.id)
        .values(status=OutboundStatus.failed, last_error=reason[:2000])
    )
    session.commit()


# ---------------------------------------------------------------- group bindings


def bind_group(
    *,
    session: Session,
    actor: Actor,
    chat_id: str,
    community_id: int | None = None,
    thread_id: int | None = None,
    name: str = "",
) -> AibotGroup:
    """Bind a WeCom group chat to a community and optionally a discussion thread (staff)."""
    actor.require(Role.staff)
    chat_id = chat_id.strip()
    if not chat_id or len(chat_id) > 128:
        raise Invalid("群聊标识不正确", hint="请核对群聊标识（不超过128个字符）后再试。")
    row = session.get(AibotGroup, chat_id) or AibotGroup(chat_id=chat_id)
    row.community_id = community_id
    row.thread_id = thread_id
    row.name = name[:100]
    row.created_by = actor.user_id
    session.add(row)
    session.commit()
    session.refresh(row)
    return row


def get_group(*, session: Session, chat_id: str | None) -> AibotGroup | None:
    """The binding of a group chat, if any."""
    return session.get(AibotGroup, chat_id) if chat_id else None


def get_groups(*, session: Session) -> list[AibotGroup]:
    """Every bound group chat."""
    return list(session.exec(select(AibotGroup).order_by(col(AibotGroup.created_at))).all())
