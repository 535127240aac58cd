"""The Official Account (公众号) callback: URL check, plaintext / compatible / safe modes."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from yishi.bot.channels.crypto import MessageCrypto, SignatureInvalid, signature_matches
from yishi.bot.channels.crypto import timestamp_fresh as _fresh
from yishi.bot.channels.nonces import NonceCache, body_digest, build_nonce_cache
from yishi.bot.channels.xmlparse import open_encrypted, parse_xml, render_text_reply, to_incoming
from yishi.bot.schemas import IncomingMessage
from yishi.core.config import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Opened:
    """A verified, decrypted and parsed callback, with what its reply needs."""

    msg: IncomingMessage
    nonce: str
    timestamp: str
    key_index: int | None  # the AES key that opened it; None for plaintext


class OfficialAccount:
    """Verifies and opens Official Account callbacks; built once per configuration."""

    channel = "wechat_mp"

    def __init__(
        self, *, token: str, crypto: MessageCrypto | None, tolerance: int, passive: bool,
        mode: str | None = None, nonces: NonceCache | None = None,
    ) -> None:
        self.token = token
        self.crypto = crypto
        self.tolerance = tolerance
        self.passive = passive
        # plaintext | compatible | safe. With a key, WeChat encrypts in both compatible and safe
        # mode, so a plaintext body (its signature does not cover the body) is refused by default.
        self.mode = mode or ("safe" if crypto is not None else "plaintext")
        if self.mode not in {"plaintext", "compatible", "safe"}:
            raise ValueError("YISHI_WECHAT_MESSAGE_MODE must be plaintext, compatible or safe")
        self.nonces = nonces

    @classmethod
    def from_settings(cls, settings: Settings) -> OfficialAccount | None:
        """The channel for `settings`, or None when no WeChat token is configured."""
        if settings.wechat_token is None:
            return None
        token = settings.wechat_token.get_secret_value()
        keys = [
            k.get_secret_value()
            for k in (settings.wechat_aes_key, settings.wechat_aes_key_previous)
            if k is not None and k.get_secret_value()
        ]
        crypto = None
        if keys and settings.wechat_app_id:
            crypto = MessageCrypto(token=token, aes_keys=keys, receive_id=settings.wechat_app_id)
        elif keys:
            log.warning("YISHI_WECHAT_AES_KEY is set but YISHI_WECHAT_APP_ID is not: "
                        "encrypted messages will be refused until the AppID is set")
        return cls(
            token=token,
            crypto=crypto,
            tolerance=settings.wechat_timestamp_tolerance,
            passive=settings.wechat_reply_mode == "passive",
            mode=settings.wechat_message_mode,
            nonces=build_nonce_cache(settings),
        )

    def _check_time(self, timestamp: str, now: float) -> None:
        if not _fresh(timestamp, now=now, tolerance=self.tolerance):
            raise SignatureInvalid("timestamp missing or outside the replay window")

    def _check_replay(self, timestamp: str, nonce: str, body: bytes, signed: str = "") -> None:
        """Refuse a signed (timestamp, nonce) seen before with another body. (An encrypted
        body's signature covers it, so its key includes `msg_signature`: a re-encrypted retry
        is not a replay.)"""
        if self.nonces is None:
            return
        key = f"{self.channel}:{timestamp}:{nonce}:{signed}"
        if not self.nonces.first_use(key, body_digest(body), 2 * self.tolerance):
            raise SignatureInvalid("nonce already used with another body (replay)")

    def verify_url(self, *, signature: str, timestamp: str, nonce: str, echostr: str,
                   now: float) -> str:
        """The GET server-URL check: `echostr` back when the signature is right."""
        if not signature_matches(signature, self.token, timestamp, nonce):
            raise SignatureInvalid("signature does not match")
        self._check_time(timestamp, now)
        return echostr

    def open(self, *, query: Mapping[str, str], body: bytes, now: float) -> Opened:
        """Verify and parse a POSTed callback (encrypted when `encrypt_type=aes`)."""
        timestamp = query.get("timestamp", "")
        nonce = query.get("nonce", "")
        if query.get("encrypt_type", "raw").lower() == "aes":
            if self.crypto is None:
                raise SignatureInvalid("encrypted message but no EncodingAESKey / AppID set")
            if not query.get("msg_signature"):
                raise SignatureInvalid("msg_signature is missing")
            self._check_time(timestamp, now)
            fields, key_index = open_encrypted(
                self.crypto,
                body=body,
                msg_signature=query.get("msg_signature"),
                timestamp=timestamp,
                nonce=nonce,
            )
            self._check_replay(timestamp, nonce, body, query.get("msg_signature", ""))
            return Opened(to_incoming(fields, channel="wechat_mp"), nonce, timestamp, key_index)
        if self.mode == "safe":
            raise SignatureInvalid("safe mode accepts only encrypted messages")
        if not signature_matches(query.get("signature"), self.token, timestamp, nonce):
            raise SignatureInvalid("signature does not match")
        self._check_time(timestamp, now)
        self._check_replay(timestamp, nonce, body)
        fields = parse_xml(body)
        return Opened(to_incoming(fields, channel="wechat_mp"), nonce, timestamp, None)

    def reply(self, opened: Opened, text: str, *, now: float) -> str:
        """The passive reply body for `text` (encrypted when the message was)."""
        xml = render_text_reply(
            to_user=opened.msg.sender,
            from_user=opened.msg.to_user,
            text=text,
            create_time=int(now),
        )
        if opened.key_index is None or self.crypto is None:
            return xml
        return self.crypto.encrypt_reply(
            xml.encode(), nonce=opened.nonce, timestamp=str(int(now)), key_index=opened.key_index
        )
