"""WeChat webhooks: `/wechat/mp` (Official Account) and `/wechat/work` (WeCom app).

Thin: read the body within the size limit, let the channel verify / decrypt / parse, hand the
message to the pipeline (stored before we answer), then answer `success` or a passive reply.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from yishi.bot.acceptor import get_acceptor
from yishi.bot.channels.crypto import BodyTooLarge, ChannelRejected
from yishi.bot.channels.wechat_mp import OfficialAccount, Opened
from yishi.bot.channels.wecom import WeComApp
from yishi.bot.schemas import Accepted, IncomingMessage
from yishi.core import clock
from yishi.core.config import Settings, get_settings

log = logging.getLogger(__name__)

router = APIRouter(tags=["wechat"])

PASSIVE_WAIT_S = 4.5  # WeChat gives up after 5 s and retries; answer before that


@dataclass(frozen=True)
class Channels:
    """The channel objects (with their ciphers) built once for one Settings object."""

    settings: Settings
    loop: asyncio.AbstractEventLoop
    mp: OfficialAccount | None
    wecom: WeComApp | None


_cache: Channels | None = None
_cache_lock = threading.Lock()


def channels_for(settings: Settings) -> Channels:
    """The channels for `settings`, rebuilt only when the Settings object (or loop) changes."""
    global _cache
    cached = _cache
    loop = asyncio.get_running_loop()
    if cached is not None and cached.settings is settings and cached.loop is loop:
        return cached
    with _cache_lock:
        built = Channels(
            settings=settings,
            loop=loop,
            mp=OfficialAccount.from_settings(settings),
            wecom=WeComApp.from_settings(settings),
        )
        _cache = built
        return built


def _settings(request: Request) -> Settings:
    # The app may carry its own Settings (tests, embedded runs); otherwise the process-wide one.
    settings = getattr(request.app.state, "settings", None)
    return settings if isinstance(settings, Settings) else get_settings()


def _text(body: str, status_code: int = 200) -> PlainTextResponse:
    return PlainTextResponse(body, status_code=status_code)


def _rejected(exc: ChannelRejected, channel: str) -> PlainTextResponse:
    log.warning("%s webhook refused (%s): %s", channel, exc.status_code, exc)
    return _text(
        {403: "forbidden", 408: "request timeout", 413: "request body too large"}.get(
            exc.status_code, "bad request"
        ),
        exc.status_code,
    )


def _not_configured(channel: str) -> PlainTextResponse:
    log.warning("%s webhook called but the channel is not configured", channel)
    return _text("channel not configured", 404)


class BodyTimeout(ChannelRejected):
    """The body did not arrive in time (a slow or stalled client)."""

    status_code = 408


async def read_body_limited(request: Request, limit: int, *, timeout_s: float = 10.0) -> bytes:
    """The request body, refusing (without reading it all) anything over `limit` bytes or not
    complete within `timeout_s` (a body shorter than its Content-Length must not hold the
    connection for good)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise BodyTooLarge(f"Content-Length {declared} over {limit}")
    chunks: list[bytes] = []

    async def read() -> None:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(f"body over {limit} bytes")
            chunks.append(chunk)

    try:
        await asyncio.wait_for(read(), timeout=timeout_s)
    except TimeoutError as exc:
        raise BodyTimeout(f"body not complete within {timeout_s:g} s") from exc
    return b"".join(chunks)


async def _passive_reply(accepted: Accepted, msg: IncomingMessage) -> str | None:
    from yishi.bot import pipeline

    return await pipeline.passive_reply(
        inbound_id=accepted.inbound_id, sender=msg.sender, wait_s=PASSIVE_WAIT_S
    )


async def _receive(
    request: Request,
    channel: OfficialAccount | WeComApp,
    channels: Channels,
    *,
    passive: bool,
    empty_ack: str,
) -> Response:
    settings = channels.settings
    try:
        body = await read_body_limited(
            request, settings.max_body_bytes, timeout_s=settings.request_body_timeout_s
        )
        opened: Opened = channel.open(
            query=request.query_params, body=body, now=clock.timestamp()
        )
    except ChannelRejected as exc:
        return _rejected(exc, channel.channel)
    try:
        accepted = await get_acceptor(settings).accept(opened.msg)
    except ChannelRejected as exc:  # this message's fields do not fit; its batch was stored
        return _rejected(exc, channel.channel)
    except Exception:  # storage is down: WeChat retries; the reason is logged by the acceptor
        return _text("service unavailable", 503)
    if not passive:
        return _text(empty_ack)
    reply = await _passive_reply(accepted, opened.msg)
    if not reply:
        return _text(empty_ack)
    return Response(
        channel.reply(opened, reply, now=clock.timestamp()), media_type="application/xml"
    )


@router.get("/wechat/mp", response_class=PlainTextResponse)
async def wechat_mp_verify(
    request: Request,
    signature: str = "",
    timestamp: str = "",
    nonce: str = "",
    echostr: str = "",
) -> Response:
    """Official Account server-URL check: echoes `echostr` when the signature is right."""
    mp = channels_for(_settings(request)).mp
    if mp is None:
        return _not_configured("wechat_mp")
    try:
        return _text(
            mp.verify_url(
                signature=signature,
                timestamp=timestamp,
                nonce=nonce,
                echostr=echostr,
                now=clock.timestamp(),
            )
        )
    except ChannelRejected as exc:
        return _rejected(exc, "wechat_mp")


@router.post("/wechat/mp", response_class=PlainTextResponse)
async def wechat_mp_receive(request: Request) -> Response:
    """Official Account messages and events (plaintext, compatible or safe mode)."""
    channels = channels_for(_settings(request))
    if channels.mp is None:
        return _not_configured("wechat_mp")
    return await _receive(
        request, channels.mp, channels, passive=channels.mp.passive, empty_ack="success"
    )


@router.get("/wechat/work", response_class=PlainTextResponse)
async def wechat_work_verify(
    request: Request,
    msg_signature: str = "",
    timestamp: str = "",
    nonce: str = "",
    echostr: str = "",
) -> Response:
    """WeCom callback-URL check: answers the decrypted `echostr`."""
    wecom = channels_for(_settings(request)).wecom
    if wecom is None:
        return _not_configured("wecom")
    try:
        return _text(
            wecom.verify_url(
                msg_signature=msg_signature,
                timestamp=timestamp,
                nonce=nonce,
                echostr=echostr,
                now=clock.timestamp(),
            )
        )
    except ChannelRejected as exc:
        return _rejected(exc, "wecom")


@router.post("/wechat/work", response_class=PlainTextResponse)
async def wechat_work_receive(request: Request) -> Response:
    """WeCom app messages and events (always encrypted); replies go out through the app API."""
    channels = channels_for(_settings(request))
    if channels.wecom is None:
        return _not_configured("wecom")
    return await _receive(request, channels.wecom, channels, passive=False, empty_ack="")
