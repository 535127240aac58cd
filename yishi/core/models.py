"""Core tables: users with roles, their API tokens, and a small shared cache with leases."""

from __future__ import annotations

from enum import StrEnum

from pydantic import NaiveDatetime
from sqlmodel import Field, SQLModel

from yishi.core.clock import utcnow


class Role(StrEnum):
    resident = "resident"
    moderator = "moderator"
    staff = "staff"
    admin = "admin"


class UserBase(SQLModel):
    name: str = Field(max_length=100)
    role: Role = Field(default=Role.resident)
    # Channel identity: "wechat_mp:<OpenID>", "wecom:<UserID>", "web:<id>", "cli:<id>"
    external_id: str | None = Field(default=None, max_length=200, unique=True, index=True)
    unit: str | None = Field(default=None, max_length=100)  # e.g. 3栋2单元501, where known


class User(UserBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    created_at: NaiveDatetime = Field(default_factory=utcnow)
    active: bool = True
    # Personal data: shown only to staff, each view audited (never in UserRead or logs).
    phone: str | None = Field(default=None, max_length=30)


class UserRead(UserBase):
    id: int
    created_at: NaiveDatetime
    active: bool


class ApiToken(SQLModel, table=True):
    """A bearer token (only its SHA-256 is stored) bound to a user and so to a role."""

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    token_sha256: str = Field(max_length=64, unique=True, index=True)
    label: str = Field(default="", max_length=100)
    created_at: NaiveDatetime = Field(default_factory=utcnow)
    revoked: bool = False
    expires_at: NaiveDatetime | None = None  # None: never expires
    last_used_at: NaiveDatetime | None = None


class ConsoleSession(SQLModel, table=True):
    """A signed-in console browser: only the SHA-256 of its random id is stored; logout revokes."""

    __tablename__ = "console_session"

    id: int | None = Field(default=None, primary_key=True)
    session_sha256: str = Field(max_length=64, unique=True, index=True)
    user_id: int = Field(index=True)  # 0: the bootstrap admin token
    created_at: NaiveDatetime = Field(default_factory=utcnow)
    expires_at: NaiveDatetime
    last_used_at: NaiveDatetime | None = None
    revoked_at: NaiveDatetime | None = None


class CacheEntry(SQLModel, table=True):
    """Shared key/value with expiry and a lease: the access_token cache and its refresh lock."""

    key: str = Field(primary_key=True, max_length=200)
    value: str = Field(default="")
    expires_at: NaiveDatetime | None = None
    lease_owner: str | None = Field(default=None, max_length=100)
    lease_until: NaiveDatetime | None = None
