"""WeChat message crypto: constant-time signatures and the AES-CBC envelope (with key rotation).

Both the Official Account (safe / compatible mode) and WeCom use the same scheme:
key = base64(EncodingAESKey + "="), IV = key[:16], PKCS#7 padding to 32 bytes, and
plaintext = 16 random bytes + 4-byte big-endian length + message + receive id (AppID / CorpID).
`msg_signature` = SHA1 of the sorted token, timestamp, nonce and the Encrypt text.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
from collections.abc import Sequence

from yishi.bot.channels.adapters import build_cipher

_BLOCK = 32


class ChannelRejected(Exception):
    """A webhook request we refuse; `status_code` is what the HTTP edge answers."""

    status_code = 400


class SignatureInvalid(ChannelRejected):
    """Missing or wrong signature, stale timestamp, or a message for another receiver."""

    status_code = 403


class MessageMalformed(ChannelRejected):
    """A body we cannot decrypt or parse."""

    status_code = 400


class BodyTooLarge(ChannelRejected):
    """A body over `settings.max_body_bytes`."""

    status_code = 413


def sha1_signature(*parts: str) -> str:
    """WeChat's signature: SHA1 hex of the parts sorted and concatenated."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def signature_matches(signature: str | None, *parts: str) -> bool:
    """Whether `signature` is the signature of `parts` (constant-time comparison)."""
    if not signature:
        return False
    return hmac.compare_digest(sha1_signature(*parts).encode(), signature.lower().encode())


def timestamp_fresh(timestamp: str | None, *, now: float, tolerance: int) -> bool:
    """Whether a request's `timestamp` is within `tolerance` seconds of `now` (either side)."""
    if not timestamp or not timestamp.isdigit() or len(timestamp) > 12:
        return False
    return abs(now - int(timestamp)) <= tolerance


def aes_key_from_encoding_key(encoding_aes_key: str) -> bytes:
    """The 32-byte AES key of a 43-character EncodingAESKey."""
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("EncodingAESKey must be 43 base64 characters") from exc
    if len(key) != 32:
        raise ValueError("EncodingAESKey must be 43 base64 characters")
    return key


class MessageCrypto:
    """Verifies, decrypts and encrypts messages for one token, receive id and AES key(s).

    Built once per configuration: the ciphers are reused for every request. `aes_keys` holds
    the current EncodingAESKey first and, during rotation, the previous one after it.
    """

    def __init__(self, *, token: str, aes_keys: Sequence[str], receive_id: str) -> None:
        if not aes_keys:
            raise ValueError("at least one EncodingAESKey is needed")
        self.token = token
        self.receive_id = receive_id.encode()
        self._ciphers = [build_cipher(aes_key_from_encoding_key(k)) for k in aes_keys]

    def verify(self, signature: str | None, timestamp: str, nonce: str, encrypt: str) -> bool:
        """Whether `signature` is the `msg_signature` of this Encrypt text (constant time)."""
        return signature_matches(signature, self.token, timestamp, nonce, encrypt)

    def decrypt(self, encrypt: str) -> tuple[bytes, int]:
        """The plaintext message and the index of the key that opened it.

        Raises `SignatureInvalid` when it decrypts but names another receiver and
        `MessageMalformed` when no key opens it.
        """
        try:
            data = base64.b64decode(encrypt, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MessageMalformed("Encrypt is not base64") from exc
        if not data or len(data) % 16:
            raise MessageMalformed("Encrypt has a bad length")
        wrong_receiver = False
        for index, cipher in enumerate(self._ciphers):
            plain = cipher.decrypt(data)
            opened = _unframe(plain)
            if opened is None:
                continue
            message, receive_id = opened
            if hmac.compare_digest(receive_id, self.receive_id):
                return message, index
            wrong_receiver = True
        if wrong_receiver:
            raise SignatureInvalid("message is for another AppID / CorpID")
        raise MessageMalformed("no EncodingAESKey opens this message")

    def encrypt(self, message: bytes, *, key_index: int = 0, random: bytes | None = None) -> str:
        """The base64 Encrypt text for `message` (with `random` fixed only in tests)."""
        prefix = random if random is not None else secrets.token_bytes(16)
        if len(prefix) != 16:
            raise ValueError("the random prefix is 16 bytes")
        body = prefix + struct.pack(">I", len(message)) + message + self.receive_id
        pad = _BLOCK - len(body) % _BLOCK
        cipher = self._ciphers[key_index]
        return base64.b64encode(cipher.encrypt(body + bytes([pad]) * pad)).decode()

    def encrypt_reply(
        self,
        message: bytes,
        *,
        nonce: str,
        timestamp: str,
        key_index: int = 0,
        random: bytes | None = None,
    ) -> str:
        """The XML envelope WeChat expects for an encrypted passive reply."""
        encrypt = self.encrypt(message, key_index=key_index, random=random)
        signature = sha1_signature(self.token, timestamp, nonce, encrypt)
        return (
            "<xml>\n"
            f"<Encrypt><![CDATA[{encrypt}]]></Encrypt>\n"
            f"<MsgSignature><![CDATA[{signature}]]></MsgSignature>\n"
            f"<TimeStamp>{timestamp}</TimeStamp>\n"
            f"<Nonce><![CDATA[{nonce}]]></Nonce>\n"
            "</xml>"
        )


def _unframe(plain: bytes) -> tuple[bytes, bytes] | None:
    """Split a decrypted block into (message, receive id), or None when the framing is wrong."""
    pad = plain[-1]
    if pad < 1 or pad > _BLOCK or len(plain) < 20 + pad:
        return None
    if plain[-pad:] != bytes([pad]) * pad:
        return None
    content = plain[16:-pad]
    (length,) = struct.unpack(">I", content[:4])
    if length > len(content) - 4:
        return None
    return content[4 : 4 + length], content[4 + length :]
