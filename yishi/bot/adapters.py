"""Outbound WeChat clients: Official Account customer-service text, WeCom app message, group robot.

The only module that talks to WeChat's HTTP APIs. Tokens come from `yishi.bot.token_cache`
(wechatpy's own token fetch is hard-wired to the real host, so ours uses the configured base URL);
API errors become `WeChatApiError` with `.retryable`, and long texts are split before sending.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import httpx
import requests
from wechatpy.client import WeChatClient as MpClient
from wechatpy.exceptions import WeChatClientException
from wechatpy.work.client import WeChatClient as WorkClient

from yishi.bot.text import split_for_wechat
from yishi.bot.token_cache import AccessTokens, TokenCache, build_token_cache
from yishi.core.adapters import redis_client
from yishi.core.config import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

TEXT_LIMIT_BYTES = 2048  # customer-service, WeCom app and robot text: the safe unit
INVALID_TOKEN_CODES = frozenset({40001, 40014, 42001})
RATE_LIMITED = 45009
SYSTEM_BUSY = -1
NETWORK_ERROR = -2  # ours: no HTTP answer at all (refused, reset, timed out)
ROBOT_PER_MINUTE = 20
CONTENT_TOO_LONG = 45002

_HINTS = {
    45015: "用户超过48小时未与公众号互动，无法主动发送；等用户下次发消息时再回复。",
    45047: "本次互动的客服消息条数已用完；等用户下次发消息时再回复。",
    45009: "接口调用过于频繁，稍后自动重试。",
    -1: "微信系统繁忙，稍后自动重试。",
    45002: "消息内容过长，请缩短后再发。",
    40001: "access_token 无效，已重新获取。",
    42001: "access_token 已过期，已重新获取。",
}


class WeChatApiError(Exception):
    """WeChat answered an API call with an error (errcode ≠ 0), a 5xx, or not at all.

    `retryable` says whether trying again later can succeed: rate limits (45009), system busy
    (-1), 5xx and network errors are; a closed 48 h window (45015) or a used-up quota (45047)
    are not, until the user writes again. HTTP failures carry the status code as `errcode`.
    """

    def __init__(self, errcode: int, errmsg: str, *, retry_after: float | None = None) -> None:
        self.errcode = errcode
        self.errmsg = errmsg
        self.retry_after = retry_after
        self.hint = _HINTS.get(errcode, "")
        super().__init__(f"WeChat API error {errcode}: {errmsg}" + (f"（{self.hint}）"
                                                                   if self.hint else ""))

    @property
    def retryable(self) -> bool:
        """Whether a later retry can succeed."""
        return (
            self.errcode in (RATE_LIMITED, SYSTEM_BUSY, NETWORK_ERROR)
            or self.errcode in INVALID_TOKEN_CODES
            or 500 <= self.errcode <= 599
        )


class Sender(Protocol):
    """Sends a text to one user of a channel."""

    def send_text(self, *, to_user: str, text: str) -> None: ...


def _check_result(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise WeChatApiError(SYSTEM_BUSY, "response is not a JSON object")
    errcode = int(data.get("errcode", 0) or 0)
    if errcode != 0:
        raise WeChatApiError(errcode, str(data.get("errmsg", "")))
    return data


_SECRET_PARAMS = re.compile(r"((?:secret|corpsecret|access_token|key)=)[^&\s\"']+")


class RedactSecrets(logging.Filter):
    """Masks secrets in logged URLs (httpx logs requests at INFO, urllib3 at DEBUG)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's arguments with secret query values masked."""
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(
                _SECRET_PARAMS.sub(r"\1***", str(a)) if "=" in str(a) else a for a in args
            )
        return True


def install_log_redaction() -> None:
    """Add `RedactSecrets` (once) to the loggers that print request URLs: httpx, urllib3."""
    for name in ("httpx", "urllib3.connectionpool"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())


def _http_get_json(http: httpx.Client, url: str, params: dict[str, str]) -> dict[str, Any]:
    try:
        response = http.get(url, params=params)
    except httpx.HTTPError as exc:
        raise WeChatApiError(NETWORK_ERROR, f"{type(exc).__name__}") from exc
    if response.status_code >= 400:
        raise WeChatApiError(response.status_code, f"HTTP {response.status_code}")
    try:
        return _check_result(response.json())
    except ValueError as exc:
        raise WeChatApiError(SYSTEM_BUSY, "response is not JSON") from exc


def token_fetcher(
    http: httpx.Client, url: str, params: dict[str, str]
) -> Callable[[], tuple[str, int]]:
    """A fetch function for `TokenCache`: GET `url` (the configured host) → (token, expires_in)."""
    install_log_redaction()

    def fetch() -> tuple[str, int]:
        data = _http_get_json(http, url, params)
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise WeChatApiError(SYSTEM_BUSY, "no access_token in the answer")
        return token, int(data.get("expires_in", 7200))

    return fetch


class _TokenFromCache:
    """Mixin for wechatpy clients: the token comes from our shared cache, never their fetch."""

    tokens: AccessTokens

    @property
    def access_token(self) -> str:
        return self.tokens.get()

    def fetch_access_token(self) -> dict[str, Any]:
        # wechatpy's own fetch talks to the real host; ours goes through the shared cache.
        return {"access_token": self.tokens.get()}


class _MpClient(_TokenFromCache, MpClient):  # type: ignore[misc]
    pass


class _WorkClient(_TokenFromCache, WorkClient):  # type: ignore[misc]
    pass


def _base(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def call_with_token(tokens: AccessTokens, call: Callable[[], T]) -> T:
    """Run a wechatpy call; on 40001/42001 invalidate the token and try once more."""
    for attempt in (1, 2):
        token = tokens.get()
        try:
            return call()
        except WeChatClientException as exc:
            error = _from_wechatpy(exc)
        except requests.RequestException as exc:
            raise WeChatApiError(NETWORK_ERROR, type(exc).__name__) from exc
        if error.errcode in INVALID_TOKEN_CODES and attempt == 1:
            log.info("WeChat refused the access_token (%s); refreshing", error.errcode)
            tokens.invalidate(token)
            continue
        raise error
    raise AssertionError("unreachable")


def _from_wechatpy(exc: WeChatClientException) -> WeChatApiError:
    if exc.errcode is None:
        status = getattr(exc.response, "status_code", None) or 500
        return WeChatApiError(int(status), f"HTTP {status}")
    return WeChatApiError(int(exc.errcode), str(exc.errmsg))


class MpCustomerServiceSender:
    """Official Account customer-service text (客服消息) through wechatpy's client."""

    channel = "wechat_mp"

    def __init__(
        self,
        *,
        app_id: str,
        secret: str,
        api_base_url: str,
        cache: TokenCache,
        timeout: float = 10.0,
    ) -> None:
        base = _base(api_base_url)
        self._http = httpx.Client(timeout=timeout)
        self.tokens = AccessTokens(
            cache,
            f"wechat_mp:{app_id}",
            token_fetcher(
                self._http,
                base + "token",
                {"grant_type": "client_credential", "appid": app_id, "secret": secret},
            ),
        )
        # The message record lives beside cgi-bin: https://api.weixin.qq.com/customservice/...
        self._record_url = base.removesuffix("cgi-bin/") + "customservice/msgrecord/getmsglist"
        self.client = _MpClient(app_id, secret, timeout=timeout, auto_retry=False)
        self.client.API_BASE_URL = base
        self.client.tokens = self.tokens

    def prepare(self) -> None:
        """Have an access token at hand (fetched now if need be) before a send starts."""
        self.tokens.get()

    def find_sent(self, *, to_user: str, text: str, since: float) -> bool | None:
        """Whether WeChat's customer-service message record (客服聊天记录, getmsglist) shows
        every part of `text` sent to `to_user` since `since`; None when it cannot be asked."""
        start = int(since) - 60
        body = {"starttime": start, "endtime": start + 86000, "msgid": 1, "number": 10000}
        try:
            response = self._http.post(
                self._record_url, params={"access_token": self.tokens.get()}, json=body
            )
            data = _check_result(response.json()) if response.status_code < 400 else None
        except (httpx.HTTPError, ValueError, WeChatApiError):
            return None
        if data is None or not isinstance(data.get("recordlist"), list):
            return None
        seen = {
            (r.get("openid"), r.get("text"))
            for r in data["recordlist"]
            if isinstance(r, dict) and r.get("opercode") == 2002
        }
        return all((to_user, part) in seen for part in split_for_wechat(text))

    def send_text(self, *, to_user: str, text: str) -> None:
        """Send `text` (split at sentence ends into parts under 2048 bytes) to an OpenID."""
        for part in split_for_wechat(text):
            self._send_part(to_user, part)

    def _send_part(self, to_user: str, part: str) -> None:
        call_with_token(self.tokens, lambda: self.client.message.send_text(to_user, part))


class WeComAppSender:
    """WeCom app message (应用消息) through wechatpy.work's client."""

    channel = "wecom"

    def __init__(
        self,
        *,
        corp_id: str,
        secret: str,
        agent_id: str,
        api_base_url: str,
        cache: TokenCache,
        timeout: float = 10.0,
    ) -> None:
        base = _base(api_base_url)
        self.agent_id = int(agent_id) if agent_id.isdigit() else agent_id
        self._http = httpx.Client(timeout=timeout)
        self.tokens = AccessTokens(
            cache,
            f"wecom:{corp_id}:{agent_id}",
            token_fetcher(self._http, base + "gettoken", {"corpid": corp_id, "corpsecret": secret}),
        )
        self.client = _WorkClient(corp_id, secret, timeout=timeout, auto_retry=False)
        self.client.API_BASE_URL = base
        self.client.tokens = self.tokens

    def prepare(self) -> None:
        """Have an access token at hand (fetched now if need be) before a send starts."""
        self.tokens.get()

    def send_text(self, *, to_user: str, text: str) -> None:
        """Send `text` (split into parts under 2048 bytes) to a WeCom UserID."""
        for part in split_for_wechat(text):
            self._send_part(to_user, part)

    def _send_part(self, to_user: str, part: str) -> None:
        call_with_token(
            self.tokens, lambda: self.client.message.send_text(self.agent_id, to_user, part)
        )


class RateLimiter(Protocol):
    """A sliding one-minute window: reserve `n` slots at once, or learn how long to wait."""

    def reserve(self, key: str, n: int) -> float: ...


class LocalRateLimiter:
    """In-process sliding window (one process only)."""

    def __init__(self, per_minute: int = ROBOT_PER_MINUTE, *, window_s: float = 60.0) -> None:
        self.per_minute = per_minute
        self.window_s = window_s
        self._sent: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def reserve(self, key: str, n: int) -> float:
        """0.0 when `n` slots were reserved; otherwise seconds until they could be."""
        if n > self.per_minute:
            raise ValueError("more parts than the per-minute limit")
        now = time.monotonic()
        with self._lock:
            sent = self._sent.setdefault(key, deque())
            while sent and sent[0] <= now - self.window_s:
                sent.popleft()
            if len(sent) + n <= self.per_minute:
                sent.extend([now] * n)
                return 0.0
            return max(sent[len(sent) + n - self.per_minute - 1] + self.window_s - now, 0.001)


_RESERVE_LUA = """
local key, now, window, limit, n = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]),
    tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('zremrangebyscore', key, '-inf', now - window)
local count = redis.call('zcard', key)
if count + n <= limit then
  for i = 1, n do redis.call('zadd', key, now, ARGV[5] .. ':' .. i) end
  redis.call('pexpire', key, math.ceil(window * 1000))
  return '0'
end
local oldest = redis.call('zrange', key, count + n - limit - 1, count + n - limit - 1, 'WITHSCORES')
return tostring(math.max(tonumber(oldest[2]) + window - now, 0.001))
"""


class RedisRateLimiter:
    """Sliding window in a Redis sorted set, shared by every process (atomic Lua script)."""

    def __init__(
        self, client: Any, per_minute: int = ROBOT_PER_MINUTE, *, window_s: float = 60.0
    ) -> None:
        self.client = client
        self.per_minute = per_minute
        self.window_s = window_s
        self._script = client.register_script(_RESERVE_LUA)

    def reserve(self, key: str, n: int) -> float:
        """0.0 when `n` slots were reserved; otherwise seconds until they could be."""
        if n > self.per_minute:
            raise ValueError("more parts than the per-minute limit")
        now = self.client.time()  # the server's clock: the same for every process
        now_s = now[0] + now[1] / 1e6
        result = self._script(
            keys=[f"yishi:ratelimit:{key}"],
            args=[now_s, self.window_s, self.per_minute, n, uuid.uuid4().hex],
        )
        return float(result)


class RobotWebhookSender:
    """WeCom group robot (群机器人) webhook: posts into one group, at most 20 messages a minute.

    All parts of one text are reserved at once, so a retry never repeats half a message; when the
    window is full it waits up to `max_wait_s`, then raises a retryable 45009 with `retry_after`.
    """

    channel = "wecom_robot"

    def __init__(
        self,
        *,
        webhook_url: str,
        limiter: RateLimiter,
        max_wait_s: float = 0.0,
        timeout: float = 10.0,
    ) -> None:
        install_log_redaction()
        self.webhook_url = webhook_url
        self.limiter = limiter
        self.max_wait_s = max_wait_s
        self._http = httpx.Client(timeout=timeout)
        # The limit is per robot: its key names it without exposing the secret key itself.
        self._limit_key = "robot:" + hashlib.sha256(webhook_url.encode()).hexdigest()[:16]

    def send_text(self, *, to_user: str = "", text: str) -> None:
        """Post `text` into the group (`to_user`, if given, is @-mentioned)."""
        parts = split_for_wechat(text)
        if not parts:
            return
        if len(parts) > ROBOT_PER_MINUTE:
            raise WeChatApiError(CONTENT_TOO_LONG, f"{len(parts)} 段超过群机器人每分钟上限")
        deadline = time.monotonic() + self.max_wait_s
        while True:
            wait = self.limiter.reserve(self._limit_key, len(parts))
            if wait <= 0:
                break
            if time.monotonic() + wait > deadline:
                raise WeChatApiError(RATE_LIMITED, "群机器人每分钟最多发送20条", retry_after=wait)
            time.sleep(wait)
        for part in parts:
            payload: dict[str, Any] = {"msgtype": "text", "text": {"content": part}}
            if to_user:
                payload["text"]["mentioned_list"] = [to_user]
            try:
                response = self._http.post(self.webhook_url, json=payload)
            except httpx.HTTPError as exc:
                raise WeChatApiError(NETWORK_ERROR, type(exc).__name__) from exc
            if response.status_code >= 400:
                raise WeChatApiError(response.status_code, f"HTTP {response.status_code}")
            try:
                _check_result(response.json())
            except ValueError as exc:
                raise WeChatApiError(SYSTEM_BUSY, "response is not JSON") from exc


def build_rate_limiter(settings: Settings, *, per_minute: int = ROBOT_PER_MINUTE) -> RateLimiter:
    """Shared in Redis when `settings.redis_url` is set, else in this process."""
    if settings.redis_url:
        return RedisRateLimiter(redis_client(settings.redis_url), per_minute)
    return LocalRateLimiter(per_minute)


def build_senders(settings: Settings) -> dict[str, Sender]:
    """A sender per configured channel: "wechat_mp", "wecom" and "wecom_robot"."""
    senders: dict[str, Sender] = {}
    cache: TokenCache | None = None
    if settings.wechat_app_id and settings.wechat_app_secret:
        cache = cache or build_token_cache(settings)
        senders["wechat_mp"] = MpCustomerServiceSender(
            app_id=settings.wechat_app_id,
            secret=settings.wechat_app_secret.get_secret_value(),
            api_base_url=settings.wechat_api_base_url,
            cache=cache,
        )
    if settings.wecom_corp_id and settings.wecom_secret and settings.wecom_agent_id:
        cache = cache or build_token_cache(settings)
        senders["wecom"] = WeComAppSender(
            corp_id=settings.wecom_corp_id,
            secret=settings.wecom_secret.get_secret_value(),
            agent_id=settings.wecom_agent_id,
            api_base_url=settings.wecom_api_base_url,
            cache=cache,
        )
    if settings.wecom_robot_webhook_url:
        senders["wecom_robot"] = RobotWebhookSender(
            webhook_url=settings.wecom_robot_webhook_url, limiter=build_rate_limiter(settings)
        )
    from yishi.bot.channel_adapters import build_channel_senders

    senders.update(build_channel_senders(settings))  # the WeCom AI bot
    return senders


# ---------------------------------------------------------------- shared state that fails open


class _ThrottledLog:
    """One warning per `interval_s` for a repeating failure (no log storm while Redis is gone)."""

    def __init__(self, interval_s: float = 60.0) -> None:
        self.interval_s = interval_s
        self._last = 0.0
        self._lock = threading.Lock()

    def warn(self, message: str, *args: Any) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last < self.interval_s:
                return
            self._last = now
        log.warning(message, *args)


class FailOpenRateLimiter:
    """The shared (Redis) limiter, or this process's own while Redis cannot be reached."""

    def __init__(self, shared: RateLimiter, local: RateLimiter) -> None:
        self.shared = shared
        self.local = local
        self._log = _ThrottledLog()

    def reserve(self, key: str, n: int) -> float:
        """Reserve in Redis; on a Redis error, in the local window (flood control stays on)."""
        try:
            return self.shared.reserve(key, n)
        except ValueError:
            raise
        except Exception as exc:
            self._log.warn("rate limiter: Redis unavailable (%s); using this process's own "
                           "limits", type(exc).__name__)
            return self.local.reserve(key, n)


def build_resident_limiter(settings: Settings, per_minute: int) -> RateLimiter:
    """A per-resident limiter: shared through Redis when configured, failing open to local."""
    local = LocalRateLimiter(per_minute)
    if not settings.redis_url:
        return local
    import redis

    client = redis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=1.0, socket_timeout=1.0
    )
    return FailOpenRateLimiter(RedisRateLimiter(client, per_minute), local)


class CircuitBreaker(Protocol):
    """Per-channel breaker: stop calling an API that keeps failing, probe it now and then."""

    def allow(self, channel: str) -> float: ...  # 0.0: call now; else seconds to wait

    def record_success(self, channel: str) -> bool: ...  # True when this closed an open breaker

    def record_failure(self, channel: str) -> bool: ...  # True when the breaker is (now) open


class LocalCircuitBreaker:
    """A breaker in this process's memory (one process, or Redis unreachable)."""

    def __init__(
        self,
        *,
        failures: int = 5,
        open_s: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures = failures
        self.open_s = open_s
        self.clock = clock
        self._state: dict[str, list[float]] = {}  # channel → [failures, open_until, probe_until]
        self._lock = threading.Lock()

    def allow(self, channel: str) -> float:
        """0.0 when a call may go out now (closed, or this caller is the half-open probe)."""
        now = self.clock()
        with self._lock:
            state = self._state.setdefault(channel, [0.0, 0.0, 0.0])
            if state[1] == 0.0:
                return 0.0
            if now < state[1]:
                return state[1] - now
            if now >= state[2]:
                state[2] = now + self.open_s  # this caller probes; the others wait
                return 0.0
            return state[2] - now

    def record_success(self, channel: str) -> bool:
        """Close the breaker; True when it was open."""
        with self._lock:
            state = self._state.pop(channel, [0.0, 0.0, 0.0])
        return state[1] != 0.0

    def record_failure(self, channel: str) -> bool:
        """Count a failure; open (or keep open) the breaker at the threshold or a failed probe."""
        now = self.clock()
        with self._lock:
            state = self._state.setdefault(channel, [0.0, 0.0, 0.0])
            state[0] += 1
            if state[1] != 0.0 or state[0] >= self.failures:
                state[1] = now + self.open_s
                state[2] = 0.0
                return True
            return False


_BREAKER_ALLOW = """
local open_until = tonumber(redis.call('hget', KEYS[1], 'open_until') or '0')
local now, open_ms = tonumber(ARGV[1]), tonumber(ARGV[2])
if open_until == 0 then return '0' end
if now < open_until then return tostring(open_until - now) end
if redis.call('set', KEYS[2], '1', 'NX', 'PX', open_ms) then return '0' end
return tostring(redis.call('pttl', KEYS[2]) / 1000)
"""

_BREAKER_FAIL = """
local failures = redis.call('hincrby', KEYS[1], 'failures', 1)
local open_until = tonumber(redis.call('hget', KEYS[1], 'open_until') or '0')
local now, open_s, threshold = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('expire', KEYS[1], 86400)
if open_until > 0 or failures >= threshold then
  redis.call('hset', KEYS[1], 'open_until', tostring(now + open_s))
  redis.call('del', KEYS[2])
  return 1
end
return 0
"""

_BREAKER_SUCCESS = """
local open_until = tonumber(redis.call('hget', KEYS[1], 'open_until') or '0')
redis.call('del', KEYS[1], KEYS[2])
if open_until > 0 then return 1 end
return 0
"""


class RedisCircuitBreaker:
    """The breaker in Redis, shared by every process (atomic Lua scripts, Redis's clock)."""

    def __init__(self, client: Any, *, failures: int = 5, open_s: float = 15.0) -> None:
        self.client = client
        self.failures = failures
        self.open_s = open_s
        self._allow = client.register_script(_BREAKER_ALLOW)
        self._fail = client.register_script(_BREAKER_FAIL)
        self._success = client.register_script(_BREAKER_SUCCESS)

    def _keys(self, channel: str) -> list[str]:
        return [f"yishi:breaker:{channel}", f"yishi:breaker:{channel}:probe"]

    def _now(self) -> float:
        now = self.client.time()
        return float(now[0] + now[1] / 1e6)

    def allow(self, channel: str) -> float:
        """0.0 when a call may go out now (closed, or this caller is the half-open probe)."""
        args = [self._now(), int(self.open_s * 1000)]
        return float(self._allow(keys=self._keys(channel), args=args))

    def record_success(self, channel: str) -> bool:
        """Close the breaker; True when it was open."""
        return bool(int(self._success(keys=self._keys(channel))))

    def record_failure(self, channel: str) -> bool:
        """Count a failure; open (or keep open) the breaker at the threshold or a failed probe."""
        args = [self._now(), self.open_s, self.failures]
        return bool(int(self._fail(keys=self._keys(channel), args=args)))


class FailOpenCircuitBreaker:
    """The shared breaker, or this process's own while Redis cannot be reached."""

    def __init__(self, shared: CircuitBreaker, local: CircuitBreaker) -> None:
        self.shared = shared
        self.local = local
        self._log = _ThrottledLog()

    def _call(self, name: str, channel: str) -> Any:
        try:
            return getattr(self.shared, name)(channel)
        except Exception as exc:
            self._log.warn("circuit breaker: Redis unavailable (%s); using this process's own",
                           type(exc).__name__)
            return getattr(self.local, name)(channel)

    def allow(self, channel: str) -> float:
        """See `CircuitBreaker.allow`."""
        return float(self._call("allow", channel))

    def record_success(self, channel: str) -> bool:
        """See `CircuitBreaker.record_success`."""
        return bool(self._call("record_success", channel))

    def record_failure(self, channel: str) -> bool:
        """See `CircuitBreaker.record_failure`."""
        return bool(self._call("record_failure", channel))


def build_circuit_breaker(settings: Settings) -> CircuitBreaker:
    """Shared through Redis when configured (failing open to local), else process-local."""
    local = LocalCircuitBreaker(failures=settings.breaker_failures, open_s=settings.breaker_open_s)
    if not settings.redis_url:
        return local
    import redis

    client = redis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=1.0, socket_timeout=1.0
    )
    shared = RedisCircuitBreaker(
        client, failures=settings.breaker_failures, open_s=settings.breaker_open_s
    )
    return FailOpenCircuitBreaker(shared, local)


def counts_against_channel(exc: WeChatApiError) -> bool:
    """Whether an error says the channel's API is down (not this message or this user)."""
    return exc.errcode in (SYSTEM_BUSY, NETWORK_ERROR) or 500 <= exc.errcode <= 599
