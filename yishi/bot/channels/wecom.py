"""The WeCom (企业微信) app callback: always encrypted, CorpID checked inside."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from yishi.bot.channels.crypto import MessageCrypto, MessageMalformed, SignatureInvalid
from yishi.bot.channels.crypto import timestamp_fresh as _fresh
from yishi.bot.channels.wechat_mp import Opened
from yishi.bot.channels.xmlparse import open_encrypted, render_text_reply, to_incoming
from yishi.core.config import Settings

log = logging.getLogger(__name__)


class WeComApp:
    """Verifies and opens WeCom app callbacks; built once per configuration."""

    channel = "wecom"

    def __init__(self, *, crypto: MessageCrypto, tolerance: int, agent_id: str | None) -> None:
        self.crypto = crypto
        self.tolerance = tolerance
        self.agent_id = agent_id

    @classmethod
    def from_settings(cls, settings: Settings) -> WeComApp | None:
        """The channel for `settings`, or None unless token, EncodingAESKey and CorpID are set."""
        if settings.wecom_token is None or settings.wecom_aes_key is None:
            return None
        if not settings.wecom_corp_id:
            log.warning("YISHI_WECOM_TOKEN / AES_KEY are set but YISHI_WECOM_CORP_ID is not: "
                        "the WeCom callback stays off until the CorpID is set")
            return None
        keys = [
            k.get_secret_value()
            for k in (settings.wecom_aes_key, settings.wecom_aes_key_previous)
            if k is not None and k.get_secret_value()
        ]
        crypto = MessageCrypto(
            token=settings.wecom_token.get_secret_value(),
            aes_keys=keys,
            receive_id=settings.wecom_corp_id,
        )
        return cls(
            crypto=crypto,
            tolerance=settings.wechat_timestamp_tolerance,
            agent_id=settings.wecom_agent_id,
        )

    def _check_time(self, timestamp: str, now: float) -> None:
        if not _fresh(timestamp, now=now, tolerance=self.tolerance):
            raise SignatureInvalid("timestamp missing or outside the replay window")

    def verify_url(self, *, msg_signature: str, timestamp: str, nonce: str, echostr: str,
                   now: float) -> str:
        """The GET URL check: the decrypted `echostr` when signature and CorpID are right."""
        # base64 has no spaces: a "+" sent without URL-encoding arrives as " ".
        echostr = echostr.replace(" ", "+")
        if not self.crypto.verify(msg_signature, timestamp, nonce, echostr):
            raise SignatureInvalid("msg_signature does not match")
        self._check_time(timestamp, now)
        plain, _ = self.crypto.decrypt(echostr)
        try:
            return plain.decode()
        except UnicodeDecodeError as exc:
            raise MessageMalformed("echostr is not text") from exc

    def open(self, *, query: Mapping[str, str], body: bytes, now: float) -> Opened:
        """Verify, decrypt and parse a POSTed callback."""
        timestamp = query.get("timestamp", "")
        nonce = query.get("nonce", "")
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
        return Opened(to_incoming(fields, channel="wecom"), nonce, timestamp, key_index)

    def reply(self, opened: Opened, text: str, *, now: float) -> str:
        """An encrypted passive reply for `text`."""
        xml = render_text_reply(
            to_user=opened.msg.sender,
            from_user=opened.msg.to_user,
            text=text,
            create_time=int(now),
        )
        return self.crypto.encrypt_reply(
            xml.encode(),
            nonce=opened.nonce,
            timestamp=str(int(now)),
            key_index=opened.key_index or 0,
        )
