"""Users and tokens (admin), and who-am-I for any authenticated caller."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from yishi.core import auth as auth_service
from yishi.core.deps import AdminActor, CurrentUser, SessionDep
from yishi.core.models import Role, UserRead

router = APIRouter(prefix="/api/users", tags=["users"])


class UserCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    role: Role = Role.resident
    external_id: str | None = Field(default=None, max_length=200)


class TokenIssued(BaseModel):
    user_id: int
    token: str


@router.get("/me", response_model=UserRead)
def me(user: CurrentUser) -> UserRead:
    """The user behind the bearer token."""
    return UserRead.model_validate(user, from_attributes=True)


@router.get("", response_model=list[UserRead])
def list_users(session: SessionDep, _admin: AdminActor) -> list[UserRead]:
    """All users (admin)."""
    return [
        UserRead.model_validate(u, from_attributes=True)
        for u in auth_service.get_all(session=session)
    ]


@router.post("", response_model=UserRead, status_code=201)
def create_user(body: UserCreate, session: SessionDep, _admin: AdminActor) -> UserRead:
    """Create a user with a role; `external_id` binds a WeChat OpenID (`wechat_mp:<openid>`)."""
    user = auth_service.create(
        session=session, name=body.name, role=body.role, external_id=body.external_id
    )
    return UserRead.model_validate(user, from_attributes=True)


@router.post("/{user_id}/tokens", response_model=TokenIssued, status_code=201)
def issue_token(user_id: int, session: SessionDep, _admin: AdminActor) -> TokenIssued:
    """Issue a new bearer token for a user (shown once)."""
    return TokenIssued(
        user_id=user_id, token=auth_service.issue_token(session=session, user_id=user_id)
    )


class TokenRead(BaseModel):
    id: int
    label: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked: bool


@router.get("/{user_id}/tokens", response_model=list[TokenRead])
def list_tokens(user_id: int, session: SessionDep, _admin: AdminActor) -> list[TokenRead]:
    """A user's tokens with expiry and last use (admin; the tokens themselves are never shown)."""
    return [TokenRead.model_validate(t, from_attributes=True)
            for t in auth_service.get_tokens(session=session, user_id=user_id)]


@router.post("/tokens/{token_id}/revoke", response_model=TokenRead)
def revoke_token(token_id: int, session: SessionDep, _admin: AdminActor) -> TokenRead:
    """Revoke one token; it stops working at once (admin)."""
    row = auth_service.revoke_token(session=session, token_id=token_id)
    return TokenRead.model_validate(row, from_attributes=True)


@router.post("/{user_id}/deactivate", response_model=UserRead)
def deactivate(user_id: int, session: SessionDep, _admin: AdminActor) -> UserRead:
    """Deactivate a user: every token and console session of theirs stops working at once."""
    return UserRead.model_validate(auth_service.deactivate(session=session, user_id=user_id),
                                   from_attributes=True)


@router.post("/{user_id}/activate", response_model=UserRead)
def activate(user_id: int, session: SessionDep, _admin: AdminActor) -> UserRead:
    """Re-enable a deactivated user (issue a new token afterwards)."""
    return UserRead.model_validate(auth_service.activate(session=session, user_id=user_id),
                                   from_attributes=True)
