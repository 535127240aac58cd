"""The replay guard for signed callbacks: each (timestamp, nonce) is remembered for the replay
window, in Redis when configured (shared by every process) or else in the database.

A repeat with the same body is WeChat retrying (or a harmless replay, which the dedupe key then
absorbs); a repeat of a signed query with a different body is a forgery and is refused.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError

from yishi.core.clock import utcnow
from yishi.core.config import Settings
from yishi.core.models import CacheEntry

KEY_PREFIX = "nonce:"


class NonceCache(Protocol):
    """Remembers a callback's (timestamp, nonce) with the digest of its body."""

    def first_use(self, key: str, digest: str, ttl: int) -> bool:
        """True unless `key` was already used, within `ttl` seconds, with another digest."""
        ...


def body_digest(body: bytes) -> str:
    """The SHA-256 of a callback body."""
    return hashlib.sha256(body).hexdigest()


class RedisNonces:
    """Nonces in Redis (SET NX with expiry)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def first_use(self, key: str, digest: str, ttl: int) -> bool:
        full = f"yishi:{KEY_PREFIX}{key}"
        if self.client.set(full, digest, nx=True, ex=max(ttl, 1)):
            return True
        seen = self.client.get(full)
        return seen is None or (seen.decode() if isinstance(seen, bytes) else seen) == digest


class DatabaseNonces:
    """Nonces in the shared cache table (a unique key; expired rows are reused)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def first_use(self, key: str, digest: str, ttl: int) -> bool:
        from yishi.core.db import session_scope

        now = utcnow()
        with session_scope(self.settings) as session:
            row = session.get(CacheEntry, KEY_PREFIX + key)
            if row is not None:
                if row.expires_at is not None and row.expires_at < now:
                    row.value, row.expires_at = digest, now + timedelta(seconds=ttl)
                    session.add(row)
                    return True
                return row.value == digest
            session.add(CacheEntry(key=KEY_PREFIX + key, value=digest,
                                   expires_at=now + timedelta(seconds=ttl)))
            try:
                session.commit()
            except IntegrityError:  # another process stored it first
                session.rollback()
                other = session.get(CacheEntry, KEY_PREFIX + key)
                return other is not None and other.value == digest
        return True


def build_nonce_cache(settings: Settings) -> NonceCache:
    """Redis when `YISHI_REDIS_URL` is set, else the database."""
    if settings.redis_url:
        from yishi.core.adapters import redis_client

        return RedisNonces(redis_client(settings.redis_url))
    return DatabaseNonces(settings)


def purge_expired(*, session: Any) -> int:
    """Delete remembered nonces past their window (the database store); the number removed."""
    from sqlalchemy import delete
    from sqlmodel import col

    result = session.execute(
        delete(CacheEntry).where(
            col(CacheEntry.key).startswith(KEY_PREFIX), col(CacheEntry.expires_at) < utcnow()
        )
    )
    session.commit()
    return int(result.rowcount or 0)
