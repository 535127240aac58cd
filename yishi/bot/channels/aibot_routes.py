"""WeCom 智能机器人 webhook (`/wechat/aibot`) and the staff's group bindings.

Thin: verify and decrypt, store the message's stream and the message itself (the one accept
path, deduplicated on `msgid`), then answer with a `stream` reply — finished when the answer
came within `wecom_aibot_wait_s`, otherwise refreshed by WeCom until it is.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, Field

from yishi.bot import aibot as aibot_service
from yishi.bot.acceptor import get_acceptor
from yishi.bot.channels.aibot import AiBot, AibotCallback, stream_message, to_incoming
from yishi.bot.channels.crypto import ChannelRejected
from yishi.bot.channels.routes import _settings, read_body_limited
from yishi.core import clock
from yishi.core.config import Settings
from yishi.core.db import session_scope
from yishi.core.deps import SessionDep, StaffActor

log = logging.getLogger(__name__)

router = APIRouter(tags=["wechat"])

WELCOME = "您好，我是社区议事助手。可以问我政策问题、报修报事、查进度；在群里请先 @ 我再说。"

_bots: dict[int, tuple[Settings, AiBot | None]] = {}
_lock = threading.Lock()


def _bot(settings: Settings) -> AiBot | None:
    cached = _bots.get(id(settings))
    if cached is not None and cached[0] is settings:
        return cached[1]
    with _lock:
        bot = AiBot.from_settings(settings)
        _bots[id(settings)] = (settings, bot)
        return bot


def _refused(exc: ChannelRejected) -> PlainTextResponse:
    log.warning("wecom_aibot webhook refused (%s): %s", exc.status_code, exc)
    text = {403: "forbidden", 413: "request body too large"}.get(exc.status_code, "bad request")
    return PlainTextResponse(text, status_code=exc.status_code)


def _not_configured() -> PlainTextResponse:
    log.warning("wecom_aibot webhook called but the AI bot is not configured")
    return PlainTextResponse("channel not configured", status_code=404)


def _answer(bot: AiBot, callback: AibotCallback, message: dict[str, Any]) -> Response:
    body = bot.reply(callback, message, now=clock.timestamp())
    return Response(body, media_type="application/json")


@router.get("/wechat/aibot", response_class=PlainTextResponse)
async def wechat_aibot_verify(
    request: Request,
    msg_signature: str = "",
    timestamp: str = "",
    nonce: str = "",
    echostr: str = "",
) -> Response:
    """AI bot callback-URL check: answers the decrypted `echostr`."""
    bot = _bot(_settings(request))
    if bot is None:
        return _not_configured()
    try:
        return PlainTextResponse(
            bot.verify_url(msg_signature=msg_signature, timestamp=timestamp, nonce=nonce,
                           echostr=echostr, now=clock.timestamp())
        )
    except ChannelRejected as exc:
        return _refused(exc)


def _open_stream(settings: Settings, callback: AibotCallback, msg: Any) -> tuple[str, str]:
    response_url = callback.payload.get("response_url")
    with session_scope(settings) as session:
        stream = aibot_service.open_stream(
            session=session,
            msg=msg,
            response_url=response_url if isinstance(response_url, str) else None,
        )
        return stream.stream_id, stream.user_id


@router.post("/wechat/aibot", response_class=PlainTextResponse)
async def wechat_aibot_receive(request: Request) -> Response:
    """AI bot messages (single chats and group @mentions) and stream refreshes."""
    settings = _settings(request)
    bot = _bot(settings)
    if bot is None:
        return _not_configured()
    try:
        body = await read_body_limited(request, settings.max_body_bytes)
        callback = bot.open(query=request.query_params, body=body, now=clock.timestamp())
        if callback.msgtype == "stream":
            content, finish = await asyncio.to_thread(
                aibot_service.refresh_in_session, settings, callback.stream_id,
                f"wecom_aibot:{callback.sender}",
            )
            return _answer(bot, callback, stream_message(callback.stream_id, content,
                                                         finish=finish))
        if callback.msgtype == "event":
            event = callback.payload.get("event")
            if isinstance(event, dict) and event.get("eventtype") == "enter_chat":
                return _answer(bot, callback, {"msgtype": "text", "text": {"content": WELCOME}})
            return PlainTextResponse("")
        msg = to_incoming(callback)
    except ChannelRejected as exc:
        return _refused(exc)
    if msg is None:  # a group message that does not @ the bot: not for us
        return PlainTextResponse("")
    stream_id, user_id = await asyncio.to_thread(_open_stream, settings, callback, msg)
    await get_acceptor(settings).accept(msg)
    content, finish = await aibot_service.wait_for_answer(
        settings=settings, stream_id=stream_id, user_id=user_id,
        wait_s=settings.wecom_aibot_wait_s,
    )
    return _answer(bot, callback, stream_message(stream_id, content, finish=finish))


class GroupBinding(BaseModel):
    chat_id: str = Field(min_length=1, max_length=128)
    community_id: int | None = None
    thread_id: int | None = None
    name: str = Field(default="", max_length=100)


class GroupRead(GroupBinding):
    created_by: str = ""


@router.post("/api/bot/aibot/groups", response_model=GroupRead)
def bind_group(body: GroupBinding, session: SessionDep, actor: StaffActor) -> GroupRead:
    """Bind a WeCom group chat (its `chatid`) to a community and optionally a thread (staff)."""
    row = aibot_service.bind_group(
        session=session, actor=actor, chat_id=body.chat_id, community_id=body.community_id,
        thread_id=body.thread_id, name=body.name,
    )
    return GroupRead.model_validate(row, from_attributes=True)


@router.get("/api/bot/aibot/groups", response_model=list[GroupRead])
def list_groups(session: SessionDep, actor: StaffActor) -> list[GroupRead]:
    """The bound group chats (staff)."""
    return [
        GroupRead.model_validate(r, from_attributes=True)
        for r in aibot_service.get_groups(session=session)
    ]
