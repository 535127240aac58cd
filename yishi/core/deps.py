"""FastAPI dependencies shared by every domain's routes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Header
from sqlmodel import Session

from yishi.core import auth as auth_service
from yishi.core.auth import Actor
from yishi.core.config import Settings, get_settings
from yishi.core.db import get_session
from yishi.core.errors import Unauthorized
from yishi.core.models import Role, User

SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_current_user(
    session: SessionDep,
    settings: SettingsDep,
    authorization: Annotated[str | None, Header()] = None,
) -> User:
    """The user behind `Authorization: Bearer <token>`."""
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Unauthorized("需要登录令牌", hint="在请求头加上 Authorization: Bearer <令牌>")
    token = authorization.split(" ", 1)[1].strip()
    admin = settings.admin_token.get_secret_value() if settings.admin_token else None
    return auth_service.authenticate(session=session, token=token, admin_token=admin)


CurrentUser = Annotated[User, Depends(get_current_user)]


def require_roles(*roles: Role) -> Callable[[User], Actor]:
    """Dependency factory: the caller as an Actor, if it has one of `roles` (admin always does)."""

    def dependency(user: CurrentUser) -> Actor:
        actor = auth_service.actor_from_user(user)
        actor.require(*roles)
        return actor

    return dependency


ResidentActor = Annotated[Actor, Depends(require_roles(Role.resident, Role.moderator, Role.staff))]
ModeratorActor = Annotated[Actor, Depends(require_roles(Role.moderator))]
StaffActor = Annotated[Actor, Depends(require_roles(Role.staff))]
StaffOrModeratorActor = Annotated[Actor, Depends(require_roles(Role.staff, Role.moderator))]
AdminActor = Annotated[Actor, Depends(require_roles())]
