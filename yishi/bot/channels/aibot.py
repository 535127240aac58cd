"""The WeCom 智能机器人 (AI bot) callback: the WXBizMsgCrypt scheme around JSON bodies.

The bot signs and encrypts like a WeCom app, with an empty receive id. A POST carries
`{"encrypt": ...}`; the plaintext is a JSON message (`msgid`, `aibotid`, `chattype`, `chatid`,
`from.userid`, `msgtype`, `response_url`, ...) or a stream refresh (`msgtype` = "stream").
Replies are JSON too: `{"encrypt", "msgsignature", "timestamp", "nonce"}` around a `stream`
(or `text`) message.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from yishi.bot.channels.crypto import (
    MessageCrypto,
    MessageMalformed,
    SignatureInvalid,
    sha1_signature,
)
from yishi.bot.channels.crypto import timestamp_fresh as _fresh
from yishi.bot.schemas import IncomingMessage
from yishi.core.config import Settings

log = logging.getLogger(__name__)

CHANNEL: Final = "wecom_aibot"
# What the pipeline understands; other WeCom types are passed through and get a clear notice.
_MENTION = re.compile(r"^\s*(?:@\S+[\s\u2005\u00a0]*)+")


@dataclass(frozen=True)
class AibotCallback:
    """A verified and decrypted callback with what its reply needs."""

    payload: dict[str, Any]
    nonce: str
    timestamp: str
    key_index: int

    @property
    def msgtype(self) -> str:
        return str(self.payload.get("msgtype") or "").lower()

    @property
    def chat_type(self) -> str:
        return "group" if self.payload.get("chattype") == "group" else "single"

    @property
    def sender(self) -> str:
        sender = self.payload.get("from")
        userid = sender.get("userid") if isinstance(sender, dict) else None
        return userid if isinstance(userid, str) else ""

    @property
    def stream_id(self) -> str:
        stream = self.payload.get("stream")
        value = stream.get("id") if isinstance(stream, dict) else None
        return value if isinstance(value, str) else ""


class AiBot:
    """Verifies, opens and answers AI bot callbacks; built once per configuration."""

    channel = CHANNEL

    def __init__(self, *, crypto: MessageCrypto, tolerance: int) -> None:
        self.crypto = crypto
        self.tolerance = tolerance

    @classmethod
    def from_settings(cls, settings: Settings) -> AiBot | None:
        """The channel for `settings`, or None unless the bot's Token and EncodingAESKey are set."""
        if settings.wecom_aibot_token is None or settings.wecom_aibot_aes_key is None:
            return None
        crypto = MessageCrypto(
            token=settings.wecom_aibot_token.get_secret_value(),
            aes_keys=[settings.wecom_aibot_aes_key.get_secret_value()],
            receive_id="",  # an internal AI bot has no CorpID in its envelope
        )
        return cls(crypto=crypto, tolerance=settings.wechat_timestamp_tolerance)

    def _check(self, signature: str | None, timestamp: str, nonce: str, encrypt: str,
               now: float) -> None:
        if not signature:
            raise SignatureInvalid("msg_signature is missing")
        if not self.crypto.verify(signature, timestamp, nonce, encrypt):
            raise SignatureInvalid("msg_signature does not match")
        if not _fresh(timestamp, now=now, tolerance=self.tolerance):
            raise SignatureInvalid("timestamp missing or outside the replay window")

    def verify_url(self, *, msg_signature: str, timestamp: str, nonce: str, echostr: str,
                   now: float) -> str:
        """The GET URL check: the decrypted `echostr` when the signature is right."""
        echostr = echostr.replace(" ", "+")  # an unencoded "+" arrives as a space
        self._check(msg_signature, timestamp, nonce, echostr, now)
        plain, _ = self.crypto.decrypt(echostr)
        try:
            return plain.decode()
        except UnicodeDecodeError as exc:
            raise MessageMalformed("echostr is not text") from exc

    def open(self, *, query: Mapping[str, str], body: bytes, now: float) -> AibotCallback:
        """Verify and decrypt a POSTed callback."""
        timestamp = query.get("timestamp", "")
        nonce = query.get("nonce", "")
        try:
            envelope = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MessageMalformed("body is not JSON") from exc
        encrypt = envelope.get("encrypt") if isinstance(envelope, dict) else None
        if not isinstance(encrypt, str) or not encrypt:
            raise MessageMalformed("encrypt is missing")
        self._check(query.get("msg_signature"), timestamp, nonce, encrypt, now)
        plain, key_index = self.crypto.decrypt(encrypt)
        try:
            payload = json.loads(plain)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MessageMalformed("decrypted message is not JSON") from exc
        if not isinstance(payload, dict):
            raise MessageMalformed("decrypted message is not a JSON object")
        return AibotCallback(payload, nonce, timestamp, key_index)

    def reply(self, callback: AibotCallback, message: dict[str, Any], *, now: float) -> str:
        """The encrypted JSON envelope for a passive reply (`stream` or `text` message)."""
        timestamp = str(int(now))
        plain = json.dumps(message, ensure_ascii=False).encode()
        encrypt = self.crypto.encrypt(plain, key_index=callback.key_index)
        return json.dumps(
            {
                "encrypt": encrypt,
                "msgsignature": sha1_signature(self.crypto.token, timestamp, callback.nonce,
                                               encrypt),
                "timestamp": int(timestamp),
                "nonce": callback.nonce,
            }
        )


def stream_message(stream_id: str, content: str, *, finish: bool) -> dict[str, Any]:
    """A `stream` reply: WeCom refreshes it until `finish` is true."""
    return {"msgtype": "stream", "stream": {"id": stream_id, "finish": finish, "content": content}}


def _text_of(payload: dict[str, Any], key: str) -> str:
    part = payload.get(key)
    value = part.get("content") if isinstance(part, dict) else None
    return value if isinstance(value, str) else ""


def _mixed_text(payload: dict[str, Any]) -> tuple[str, list[str]]:
    """The text and image URLs of a `mixed` message (its `mixed` may arrive as a JSON string)."""
    mixed = payload.get("mixed")
    if isinstance(mixed, str):
        try:
            mixed = json.loads(mixed)
        except ValueError:
            mixed = {}
    items = mixed.get("msg_item") if isinstance(mixed, dict) else None
    texts: list[str] = []
    images: list[str] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        if item.get("msgtype") == "text":
            texts.append(_text_of(item, "text"))
        elif item.get("msgtype") == "image":
            image = item.get("image")
            url = image.get("url") if isinstance(image, dict) else None
            if isinstance(url, str):
                images.append(url)
    return "\n".join(t for t in texts if t), images


def strip_mention(text: str) -> tuple[str, bool]:
    """The text without the leading @mention(s), and whether there was one."""
    match = _MENTION.match(text)
    if not match:
        return text.strip(), False
    return text[match.end():].strip(), True


def to_incoming(callback: AibotCallback) -> IncomingMessage | None:
    """The pipeline's message for a user message; None when a group message does not @ the bot."""
    payload = callback.payload
    msgid = payload.get("msgid")
    if not isinstance(msgid, str) or not msgid or not callback.sender:
        raise MessageMalformed("msgid or from.userid is missing")
    msg_type = callback.msgtype or "unknown"
    content = ""
    if msg_type == "text":
        content = _text_of(payload, "text")
    elif msg_type == "voice":
        content = _text_of(payload, "voice")  # WeCom's own transcription
    elif msg_type == "mixed":
        content, images = _mixed_text(payload)
        msg_type = "text" if content else "image"
        if not content and images:
            content = json.dumps({"url": images[0]})
    elif msg_type == "image":
        image = payload.get("image")
        url = image.get("url") if isinstance(image, dict) else None
        content = json.dumps({"url": url}) if isinstance(url, str) else ""
    if msg_type in ("text", "voice"):
        content, mentioned = strip_mention(content)
        if callback.chat_type == "group" and not mentioned:
            return None
        if mentioned and not content:
            content = "帮助"  # a bare @mention asks what the assistant can do
    elif callback.chat_type == "group":
        return None  # in a group the bot speaks only when @-mentioned in words
    quote = payload.get("quote")
    if msg_type == "text" and isinstance(quote, dict) and quote.get("msgtype") == "text":
        quoted = _text_of(quote, "text")
        if quoted:  # the resident answers a quoted line: keep it as context
            content = f"{content}\n（引用：{quoted[:200]}）"
    return IncomingMessage(
        channel=CHANNEL,
        sender=callback.sender[:200],
        msg_type=msg_type[:20],
        content=content,
        msg_id=msgid[:64],
        create_time=int(callback.timestamp) if callback.timestamp.isdigit() else 0,
        to_user=str(payload.get("aibotid") or "")[:100],
        raw={
            "chattype": callback.chat_type,
            "chatid": payload.get("chatid") if callback.chat_type == "group" else None,
        },
    )
