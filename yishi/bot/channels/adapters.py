"""wechatpy, seen from the channels: the AES-CBC cipher WeChat's message envelope uses."""

from __future__ import annotations

from typing import Any

from wechatpy.crypto.base import WeChatCipher


def build_cipher(key: bytes) -> Any:
    """wechatpy's `WeChatCipher` for a 32-byte AES key (`encrypt` / `decrypt` of bytes)."""
    return WeChatCipher(key)
