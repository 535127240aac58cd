"""Who is asking: users, roles and bearer tokens; `Actor` is what services check roles against."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from yishi.core.clock import utcnow
from yishi.core.errors import Forbidden, Invalid, NotFound, Unauthorized
from yishi.core.models import ApiToken, ConsoleSession, Role, User

# last_used_at is written at most this often per token, so reads do not all become writes.
LAST_USED_RESOLUTION = timedelta(minutes=5)
BOOTSTRAP_ADMIN_ID = 0


@dataclass(frozen=True)
class Actor:
    """The caller of a service: a user id, a role and the channel it came through."""

    user_id: str  # stable external id, e.g. "wechat_mp:oABC..." or "web:u1"
    role: Role = Role.resident
    channel: str = "web"
    display_name: str = ""

    def has_role(self, *roles: Role) -> bool:
        return self.role == Role.admin or self.role in roles

    def require(self, *roles: Role) -> None:
        """Raise Forbidden unless the actor has one of `roles` (admin always passes)."""
        if not self.has_role(*roles):
            wanted = "、".join(r.value for r in roles)
            raise Forbidden(f"此操作需要以下角色之一：{wanted}", hint="请联系社区管理员开通权限")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(*, session: Session, name: str, role: Role, external_id: str | None = None) -> User:
    """Create a user; `external_id` binds a WeChat OpenID or WeCom UserID to the role."""
    if not name.strip():
        raise Invalid("用户名不能为空")
    if external_id:
        existing = session.exec(select(User).where(User.external_id == external_id)).first()
        if existing:
            raise Invalid(f"外部身份 {external_id} 已绑定用户 {existing.name}")
    user = User(name=name.strip(), role=role, external_id=external_id)
    session.add(user)
    session.commit()
    session.refresh(user)
    return user


def get_all(*, session: Session) -> list[User]:
    return list(session.exec(select(User).order_by(User.id)))  # type: ignore[arg-type]


def get_by_external_id(*, session: Session, external_id: str) -> User | None:
    return session.exec(select(User).where(User.external_id == external_id)).first()


def get_or_raise(*, session: Session, user_id: int) -> User:
    """The user with this id, or NotFound."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"没有编号为 {user_id} 的用户")
    return user


def set_role(*, session: Session, user_id: int, role: Role) -> User:
    user = get_or_raise(session=session, user_id=user_id)
    user.role = role
    session.add(user)
    session.commit()
    session.refresh(user)
    return user


def update_profile(
    *, session: Session, user_id: int, name: str | None = None, unit: str | None = None,
    phone: str | None = None,
) -> User:
    """Change a user's display name, unit or phone (None leaves a field as it is)."""
    user = get_or_raise(session=session, user_id=user_id)
    if name is not None:
        if not name.strip():
            raise Invalid("姓名不能为空")
        user.name = name.strip()
    if unit is not None:
        user.unit = unit.strip() or None
    if phone is not None:
        phone = phone.strip().replace(" ", "").replace("-", "")
        if phone and not (phone.isdigit() and 7 <= len(phone) <= 15):
            raise Invalid("电话号码格式不对", hint="只填数字，例如 13912345678")
        user.phone = phone or None
    session.add(user)
    session.commit()
    session.refresh(user)
    return user


def count_tokens(*, session: Session) -> dict[int, int]:
    """Active tokens per user id."""
    counts: dict[int, int] = {}
    for row in session.exec(select(ApiToken).where(ApiToken.revoked == False)):  # noqa: E712
        counts[row.user_id] = counts.get(row.user_id, 0) + 1
    return counts


def issue_token(
    *, session: Session, user_id: int, label: str = "", ttl_days: int | None = None
) -> str:
    """Create a new bearer token for a user; the plain token is returned once and never stored.

    It expires after `ttl_days` (default: the `token_ttl_days` setting; 0 means never).
    """
    from yishi.core.config import get_settings

    user = get_or_raise(session=session, user_id=user_id)
    if not user.active:
        raise Invalid("该用户已停用，不能签发令牌", hint="先重新启用该用户")
    days = get_settings().token_ttl_days if ttl_days is None else ttl_days
    expires = utcnow() + timedelta(days=days) if days > 0 else None
    token = "ys_" + secrets.token_urlsafe(32)
    session.add(
        ApiToken(user_id=user_id, token_sha256=_hash(token), label=label, expires_at=expires)
    )
    session.commit()
    return token


def _bootstrap_admin() -> User:
    return User(
        id=BOOTSTRAP_ADMIN_ID, name="bootstrap-admin", role=Role.admin,
        external_id="admin:bootstrap",
    )


def _touch(session: Session, table: type[ApiToken] | type[ConsoleSession], row_id: int) -> None:
    """Record the last use without racing other requests (one UPDATE, committed at once)."""
    now = utcnow()
    session.execute(
        update(table).where(col(table.id) == row_id).values(last_used_at=now)  # type: ignore[arg-type]
    )
    session.commit()


def authenticate(*, session: Session, token: str, admin_token: str | None = None) -> User:
    """The active user that owns `token`, or Unauthorized (revoked, expired or deactivated)."""
    if admin_token and hmac.compare_digest(token.encode(), admin_token.encode()):
        return _bootstrap_admin()
    row = session.exec(
        select(ApiToken).where(ApiToken.token_sha256 == _hash(token), ApiToken.revoked == False)  # noqa: E712
    ).first()
    if row is None:
        raise Unauthorized(
            "令牌无效或已吊销", hint="请向管理员索取新令牌（命令：yishi users token 用户编号）"
        )
    now = utcnow()
    if row.expires_at is not None and row.expires_at <= now:
        raise Unauthorized(
            "令牌已过期", hint="请向管理员索取新令牌（命令：yishi users token 用户编号）"
        )
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        raise Unauthorized("该用户已停用")
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        assert row.id is not None
        _touch(session, ApiToken, row.id)
    return user


def get_tokens(*, session: Session, user_id: int) -> list[ApiToken]:
    """A user's tokens (hashes only), newest first."""
    return list(session.exec(
        select(ApiToken).where(ApiToken.user_id == user_id).order_by(col(ApiToken.id).desc())
    ))


def revoke_token(*, session: Session, token_id: int | None = None, token: str | None = None
                 ) -> ApiToken:
    """Revoke one token, by its id or by the plain token; it stops working at once."""
    row = None
    if token_id is not None:
        row = session.get(ApiToken, token_id)
    elif token:
        row = session.exec(select(ApiToken).where(ApiToken.token_sha256 == _hash(token))).first()
    if row is None:
        raise NotFound("没有这个令牌", hint="可用命令 yishi users tokens 用户编号 查看令牌编号")
    row.revoked = True
    session.add(row)
    session.commit()
    session.refresh(row)
    return row


def revoke_all_tokens(*, session: Session, user_id: int) -> int:
    """Revoke every token and console session of a user; the number of tokens revoked."""
    result = session.execute(
        update(ApiToken)
        .where(col(ApiToken.user_id) == user_id, col(ApiToken.revoked) == False)  # noqa: E712
        .values(revoked=True)
    )
    session.execute(
        update(ConsoleSession)
        .where(col(ConsoleSession.user_id) == user_id, col(ConsoleSession.revoked_at).is_(None))
        .values(revoked_at=utcnow())
    )
    session.commit()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _set_active(session: Session, user_id: int, active: bool) -> User:
    user = get_or_raise(session=session, user_id=user_id)
    user.active = active
    session.add(user)
    session.commit()
    if not active:
        revoke_all_tokens(session=session, user_id=user_id)
    session.refresh(user)
    return user


def deactivate(*, session: Session, user_id: int) -> User:
    """Deactivate a user: their tokens and console sessions stop working at once."""
    return _set_active(session, user_id, False)


def activate(*, session: Session, user_id: int) -> User:
    """Re-enable a deactivated user (old tokens stay revoked: issue a new one)."""
    return _set_active(session, user_id, True)


# --- console sessions ---------------------------------------------------------------------------


def open_console_session(*, session: Session, user: User, seconds: int) -> str:
    """A new console session id for a signed-in user (the browser keeps it; we keep its hash)."""
    session_id = "cs_" + secrets.token_urlsafe(32)
    session.add(ConsoleSession(
        session_sha256=_hash(session_id), user_id=user.id or BOOTSTRAP_ADMIN_ID,
        expires_at=utcnow() + timedelta(seconds=seconds),
    ))
    session.commit()
    return session_id


def console_user(*, session: Session, session_id: str, bootstrap_allowed: bool = False) -> User:
    """The active user of a live console session, or Unauthorized."""
    row = session.exec(
        select(ConsoleSession).where(ConsoleSession.session_sha256 == _hash(session_id))
    ).first()
    now = utcnow()
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        raise Unauthorized("登录已失效，请重新登录")
    if row.user_id == BOOTSTRAP_ADMIN_ID:
        if not bootstrap_allowed:
            raise Unauthorized("登录已失效，请重新登录")
        return _bootstrap_admin()
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        raise Unauthorized("该用户已停用")
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        assert row.id is not None
        _touch(session, ConsoleSession, row.id)
    return user


def close_console_session(*, session: Session, session_id: str) -> bool:
    """Revoke a console session (logout); False when there was none to revoke."""
    result = session.execute(
        update(ConsoleSession)
        .where(
            col(ConsoleSession.session_sha256) == _hash(session_id),
            col(ConsoleSession.revoked_at).is_(None),
        )
        .values(revoked_at=utcnow())
    )
    session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


def actor_for(*, session: Session, external_id: str, channel: str, name: str = "") -> Actor:
    """The actor for a channel identity: its bound role, or a resident if none is bound."""
    user = get_by_external_id(session=session, external_id=external_id)
    role = user.role if user and user.active else Role.resident
    return Actor(
        user_id=external_id,
        role=role,
        channel=channel,
        display_name=name or (user.name if user else ""),
    )


def actor_from_user(user: User, channel: str = "web") -> Actor:
    return Actor(
        user_id=user.external_id or f"user:{user.id}",
        role=user.role,
        channel=channel,
        display_name=user.name,
    )
