"""Who is asking: users, roles and bearer tokens; `Actor` is what services check roles against."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlmodel import Session, select

from yishi.core.errors import Forbidden, Invalid, NotFound, Unauthorized
from yishi.core.models import ApiToken, Role, User


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


def set_role(*, session: Session, user_id: int, role: Role) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"没有编号为 {user_id} 的用户")
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
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"没有编号为 {user_id} 的用户")
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


def set_active(*, session: Session, user_id: int, active: bool) -> User:
    """Deactivate (or reactivate) a user: a deactivated user's tokens stop working."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"没有编号为 {user_id} 的用户")
    user.active = active
    session.add(user)
    session.commit()
    session.refresh(user)
    return user


def revoke_tokens(*, session: Session, user_id: int) -> int:
    """Revoke every token of a user; returns how many were revoked."""
    rows = session.exec(
        select(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked == False)  # noqa: E712
    ).all()
    for row in rows:
        row.revoked = True
        session.add(row)
    session.commit()
    return len(rows)


def count_tokens(*, session: Session) -> dict[int, int]:
    """Active tokens per user id."""
    counts: dict[int, int] = {}
    for row in session.exec(select(ApiToken).where(ApiToken.revoked == False)):  # noqa: E712
        counts[row.user_id] = counts.get(row.user_id, 0) + 1
    return counts


def issue_token(*, session: Session, user_id: int, label: str = "") -> str:
    """Create a new bearer token for a user; the plain token is returned once and never stored."""
    if session.get(User, user_id) is None:
        raise NotFound(f"没有编号为 {user_id} 的用户")
    token = "ys_" + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user_id, token_sha256=_hash(token), label=label))
    session.commit()
    return token


def authenticate(*, session: Session, token: str, admin_token: str | None = None) -> User:
    """The active user that owns `token`, or Unauthorized."""
    if admin_token and hmac.compare_digest(token.encode(), admin_token.encode()):
        return User(id=0, name="bootstrap-admin", role=Role.admin, external_id="admin:bootstrap")
    row = session.exec(
        select(ApiToken).where(ApiToken.token_sha256 == _hash(token), ApiToken.revoked == False)  # noqa: E712
    ).first()
    if row is None:
        raise Unauthorized(
            "令牌无效或已吊销", hint="请向管理员索取新令牌（命令：yishi users token 用户编号）"
        )
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        raise Unauthorized("该用户已停用")
    return user


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
