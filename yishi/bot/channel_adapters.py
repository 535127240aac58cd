"""Outside calls of the newer channels: the AI bot's `response_url` and the media download API.

Like `yishi.bot.adapters`, the only place these talk HTTP. Nothing is fetched from or posted
to a host other than the configured WeCom / WeChat API base: a `response_url` or media request
pointing anywhere else is refused before any connection is made.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import urlsplit

import httpx

from yishi.bot.adapters import (
    INVALID_TOKEN_CODES,
    NETWORK_ERROR,
    SYSTEM_BUSY,
    WeChatApiError,
    install_log_redaction,
)
from yishi.bot.token_cache import AccessTokens
from yishi.core.config import Settings

log = logging.getLogger(__name__)

NOT_ALLOWED_HOST = 40070  # ours: a URL outside the configured API host
MEDIA_TOO_LARGE = 40006  # WeChat's own "invalid media size"
MEDIA_BAD_TYPE = 40005  # WeChat's own "invalid file type"
IMAGE_TYPES = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}


def same_origin(url: str, base_url: str) -> bool:
    """Whether `url` has the scheme and host of `base_url` and lies under its path."""
    target, base = urlsplit(url), urlsplit(base_url)
    base_path = base.path if base.path.endswith("/") else base.path + "/"
    return (
        target.scheme == base.scheme
        and target.netloc == base.netloc
        and target.path.startswith(base_path)
        and not target.username
        and not target.password
    )


class ResponseUrlPoster:
    """Posts one markdown answer to an AI bot `response_url` on the configured WeCom host."""

    def __init__(self, *, api_base_url: str, timeout: float = 10.0) -> None:
        install_log_redaction()
        self.api_base_url = api_base_url
        self._http = httpx.Client(timeout=timeout, follow_redirects=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> ResponseUrlPoster:
        """A poster limited to `settings.wecom_api_base_url`."""
        return cls(api_base_url=settings.wecom_api_base_url)

    def post(self, *, response_url: str, text: str) -> None:
        """Post `text`; raises `WeChatApiError` (never retried by us: the URL works once)."""
        if not same_origin(response_url, self.api_base_url):
            raise WeChatApiError(NOT_ALLOWED_HOST, "response_url is not on the WeCom API host")
        payload = {"msgtype": "markdown", "markdown": {"content": text}}
        try:
            response = self._http.post(response_url, json=payload)
        except httpx.HTTPError as exc:
            raise WeChatApiError(NETWORK_ERROR, type(exc).__name__) from exc
        if response.status_code >= 400:
            raise WeChatApiError(response.status_code, f"HTTP {response.status_code}")
        try:
            data: Any = response.json()
        except ValueError as exc:
            raise WeChatApiError(SYSTEM_BUSY, "response is not JSON") from exc
        errcode = int(data.get("errcode", 0) or 0) if isinstance(data, dict) else SYSTEM_BUSY
        if errcode:
            raise WeChatApiError(errcode, str(data.get("errmsg", "")))


class AibotSender:
    """The outbox's sender for "wecom_aibot": hands answers to the stream or `response_url`."""

    channel = "wecom_aibot"

    def __init__(self, *, settings: Settings, poster: ResponseUrlPoster) -> None:
        self.settings = settings
        self.poster = poster

    def send_text(self, *, to_user: str, text: str) -> None:
        """Deliver an answer to a message of `to_user`; an undeliverable one raises (no retry)."""
        from yishi.bot import aibot

        try:
            aibot.hand_over(settings=self.settings, to_user=to_user, text=text,
                            poster=self.poster)
        except aibot.NoConversation as exc:
            raise WeChatApiError(NO_CONVERSATION, exc.reason) from exc


NO_CONVERSATION = 48002  # WeChat's "api forbidden": the AI bot cannot push outside a conversation


def build_channel_senders(settings: Settings) -> dict[str, Any]:
    """Senders of the newer channels, keyed by channel (only those configured)."""
    senders: dict[str, Any] = {}
    if settings.wecom_aibot_token is not None and settings.wecom_aibot_aes_key is not None:
        senders["wecom_aibot"] = AibotSender(
            settings=settings, poster=ResponseUrlPoster.from_settings(settings)
        )
    return senders


class MediaFetcher:
    """Downloads an image by MediaId through the configured API's `media/get` (MP or WeCom app)."""

    def __init__(self, *, api_base_url: str, tokens: AccessTokens, max_bytes: int,
                 timeout: float = 15.0) -> None:
        install_log_redaction()
        self.base = api_base_url if api_base_url.endswith("/") else api_base_url + "/"
        self.tokens = tokens
        self.max_bytes = max_bytes
        self._http = httpx.Client(timeout=timeout, follow_redirects=False)

    def fetch(self, *, media_id: str) -> tuple[bytes, str]:
        """(bytes, content type) of an image; raises `WeChatApiError` on errors and limits."""
        for attempt in (1, 2):
            token = self.tokens.get()
            try:
                return self._fetch_once(media_id, token)
            except WeChatApiError as exc:
                if exc.errcode in INVALID_TOKEN_CODES and attempt == 1:
                    self.tokens.invalidate(token)
                    continue
                raise
        raise AssertionError("unreachable")

    def _fetch_once(self, media_id: str, token: str) -> tuple[bytes, str]:
        params = {"access_token": token, "media_id": media_id}
        try:
            with self._http.stream("GET", self.base + "media/get", params=params) as response:
                if response.status_code >= 400:
                    raise WeChatApiError(response.status_code, f"HTTP {response.status_code}")
                content_type = response.headers.get("content-type", "").split(";")[0].strip()
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self.max_bytes:
                    raise WeChatApiError(MEDIA_TOO_LARGE, "image over the size limit")
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise WeChatApiError(MEDIA_TOO_LARGE, "image over the size limit")
                    chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise WeChatApiError(NETWORK_ERROR, type(exc).__name__) from exc
        body = b"".join(chunks)
        if content_type in ("application/json", "text/plain"):
            try:  # WeChat answers errors as JSON
                data = json.loads(body)
            except ValueError:
                data = {}
            errcode = int(data.get("errcode", SYSTEM_BUSY)) if isinstance(data, dict) else -1
            raise WeChatApiError(errcode or SYSTEM_BUSY, str(data.get("errmsg", "")))
        if content_type not in IMAGE_TYPES:
            raise WeChatApiError(MEDIA_BAD_TYPE, "not a jpeg, png or webp image")
        return body, content_type


def build_media_fetchers(settings: Settings, senders: dict[str, Any]) -> dict[str, MediaFetcher]:
    """A media fetcher per channel whose sender holds an access token (MP, WeCom app)."""
    fetchers: dict[str, MediaFetcher] = {}
    bases = {"wechat_mp": settings.wechat_api_base_url, "wecom": settings.wecom_api_base_url}
    for channel, base in bases.items():
        tokens = getattr(senders.get(channel), "tokens", None)
        if isinstance(tokens, AccessTokens):
            fetchers[channel] = MediaFetcher(
                api_base_url=base, tokens=tokens, max_bytes=settings.media_max_bytes
            )
    return fetchers
