"""access_token cache shared by every process: in the database (`CacheEntry`) or in Redis.

One refresher at a time: a process that finds the token missing, expiring or invalidated takes a
lease (a row lease in the database, `SET NX PX` in Redis), fetches and stores the new token and
lets go; the others keep using the old token while it is still valid, or wait for the new one.
WeChat keeps an old token working for 5 minutes after a new one is fetched, so refreshing
`refresh_margin` seconds early never leaves a process holding a dead token.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from yishi.core import clock
from yishi.core.config import Settings
from yishi.core.errors import UpstreamUnavailable
from yishi.core.models import CacheEntry

log = logging.getLogger(__name__)

# fetch() -> (access_token, expires_in seconds)
Fetch = Callable[[], tuple[str, int]]

REFRESH_MARGIN_S = 300.0
LEASE_S = 30.0
WAIT_S = 15.0
POLL_S = 0.05


@dataclass(frozen=True)
class CachedToken:
    token: str
    expires_at: float  # epoch seconds from `yishi.core.clock`


class TokenStore(Protocol):
    """Where tokens live and how the refresh lease is taken (database or Redis)."""

    def read(self, key: str) -> CachedToken | None: ...

    def try_lease(self, key: str, owner: str, seconds: float) -> bool: ...

    def write(self, key: str, owner: str, token: CachedToken) -> None: ...

    def release(self, key: str, owner: str) -> None: ...

    def invalidate(self, key: str, token: str) -> None: ...


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}:{uuid.uuid4().hex[:8]}"


class TokenCache:
    """Cached access tokens with single-refresher semantics over a `TokenStore`."""

    def __init__(
        self,
        store: TokenStore,
        *,
        refresh_margin: float = REFRESH_MARGIN_S,
        lease_s: float = LEASE_S,
        wait_s: float = WAIT_S,
    ) -> None:
        self.store = store
        self.refresh_margin = refresh_margin
        self.lease_s = lease_s
        self.wait_s = wait_s

    def get(self, key: str, fetch: Fetch) -> str:
        """A valid token for `key`, fetching one (by one process only) when needed."""
        deadline = time.monotonic() + self.wait_s
        while True:
            cached = self.store.read(key)
            now = clock.timestamp()
            if cached and cached.expires_at - now > self.refresh_margin:
                return cached.token
            owner = _owner()
            if self.store.try_lease(key, owner, self.lease_s):
                try:
                    cached = self.store.read(key)  # someone may have refreshed meanwhile
                    now = clock.timestamp()
                    if cached and cached.expires_at - now > self.refresh_margin:
                        return cached.token
                    token, expires_in = fetch()
                    fresh = CachedToken(token, clock.timestamp() + max(int(expires_in), 1))
                    self.store.write(key, owner, fresh)
                    log.info("access_token for %s refreshed (expires in %ss)", key, expires_in)
                    return token
                finally:
                    self.store.release(key, owner)
            # Another process is refreshing: the old token still works until it expires.
            if cached and cached.expires_at > now:
                return cached.token
            if time.monotonic() >= deadline:
                raise UpstreamUnavailable(
                    "微信接口凭证暂时获取不到", hint="稍后重试；若持续出现，检查 AppID / Secret"
                )
            time.sleep(POLL_S)

    def invalidate(self, key: str, token: str) -> None:
        """Mark `token` dead (WeChat said 40001/42001) unless another token already replaced it."""
        self.store.invalidate(key, token)


class DbTokenStore:
    """Tokens in the `CacheEntry` table; the lease is a conditional UPDATE (SQLite, PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.table: Any = cast(Any, CacheEntry).__table__

    @staticmethod
    def _dt(epoch: float) -> datetime:
        return datetime(1970, 1, 1) + timedelta(seconds=epoch)

    @staticmethod
    def _epoch(dt: datetime) -> float:
        return (dt - datetime(1970, 1, 1)).total_seconds()

    def read(self, key: str) -> CachedToken | None:
        """The cached token for `key`, or None."""
        t = self.table
        with self.engine.connect() as conn:
            row = conn.execute(select(t.c.value, t.c.expires_at).where(t.c.key == key)).first()
        if row is None or not row.value or row.expires_at is None:
            return None
        return CachedToken(row.value, self._epoch(row.expires_at))

    def try_lease(self, key: str, owner: str, seconds: float) -> bool:
        """Take the refresh lease unless another owner holds an unexpired one."""
        t = self.table
        now = clock.utcnow()
        until = now + timedelta(seconds=seconds)
        with self.engine.begin() as conn:
            result = conn.execute(
                update(t)
                .where(
                    and_(t.c.key == key, or_(t.c.lease_until.is_(None), t.c.lease_until < now))
                )
                .values(lease_owner=owner, lease_until=until)
            )
            if result.rowcount == 1:
                return True
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(t).values(
                        key=key, value="", expires_at=None, lease_owner=owner, lease_until=until
                    )
                )
            return True
        except IntegrityError:  # the row exists and someone else holds the lease
            return False

    def write(self, key: str, owner: str, token: CachedToken) -> None:
        """Store a fresh token (only the lease holder writes)."""
        t = self.table
        with self.engine.begin() as conn:
            conn.execute(
                update(t)
                .where(and_(t.c.key == key, t.c.lease_owner == owner))
                .values(value=token.token, expires_at=self._dt(token.expires_at))
            )

    def release(self, key: str, owner: str) -> None:
        """Give the lease back."""
        t = self.table
        with self.engine.begin() as conn:
            conn.execute(
                update(t)
                .where(and_(t.c.key == key, t.c.lease_owner == owner))
                .values(lease_owner=None, lease_until=None)
            )

    def invalidate(self, key: str, token: str) -> None:
        """Expire the entry if it still holds `token`."""
        t = self.table
        with self.engine.begin() as conn:
            conn.execute(
                update(t)
                .where(and_(t.c.key == key, t.c.value == token))
                .values(expires_at=datetime(1970, 1, 1))
            )


_RELEASE_LUA = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""

_INVALIDATE_LUA = """
local raw = redis.call('get', KEYS[1])
if raw and cjson.decode(raw)['token'] == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class RedisTokenStore:
    """Tokens in Redis (`yishi:token:<key>`), the lease a `SET NX PX` key released by owner."""

    def __init__(self, client: Any, *, prefix: str = "yishi:token:") -> None:
        self.client = client
        self.prefix = prefix
        self._release = client.register_script(_RELEASE_LUA)
        self._invalidate = client.register_script(_INVALIDATE_LUA)

    def read(self, key: str) -> CachedToken | None:
        """The cached token for `key`, or None."""
        raw = self.client.get(self.prefix + key)
        if not raw:
            return None
        data = json.loads(raw)
        return CachedToken(data["token"], float(data["expires_at"]))

    def try_lease(self, key: str, owner: str, seconds: float) -> bool:
        """Take the refresh lease unless another owner holds it."""
        lease_key = self.prefix + key + ":lease"
        return bool(self.client.set(lease_key, owner, nx=True, px=int(seconds * 1000)))

    def write(self, key: str, owner: str, token: CachedToken) -> None:
        """Store a fresh token, kept by Redis until it expires."""
        ttl = max(int(token.expires_at - clock.timestamp()), 1)
        value = json.dumps({"token": token.token, "expires_at": token.expires_at})
        self.client.set(self.prefix + key, value, ex=ttl)

    def release(self, key: str, owner: str) -> None:
        """Give the lease back (only if still ours)."""
        self._release(keys=[self.prefix + key + ":lease"], args=[owner])

    def invalidate(self, key: str, token: str) -> None:
        """Drop the entry if it still holds `token`."""
        self._invalidate(keys=[self.prefix + key], args=[token])


def build_token_cache(settings: Settings) -> TokenCache:
    """Redis when `settings.redis_url` is set, else the database."""
    if settings.redis_url:
        from yishi.core.adapters import redis_client

        return TokenCache(RedisTokenStore(redis_client(settings.redis_url)))
    from yishi.core.db import get_engine

    return TokenCache(DbTokenStore(get_engine(settings)))


@dataclass
class AccessTokens:
    """The token of one app: `get()` a valid one, `invalidate(token)` when WeChat refuses it."""

    cache: TokenCache
    key: str
    fetch: Fetch

    def get(self) -> str:
        """A valid access token."""
        return self.cache.get(self.key, self.fetch)

    def invalidate(self, token: str) -> None:
        """Forget `token` so the next `get()` fetches a new one."""
        self.cache.invalidate(self.key, token)
