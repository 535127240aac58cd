"""Chat API (the web simulator and any authenticated client) and the message log for staff."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from sqlmodel import col, select

from yishi.bot import outbox, pipeline
from yishi.bot.models import (
    InboundMessage,
    InboundRead,
    InboundStatus,
    OutboundMessage,
    OutboundRead,
    OutboundStatus,
)
from yishi.bot.schemas import ChatRequest, ChatTurn, IncomingMessage
from yishi.core.clock import timestamp
from yishi.core.deps import CurrentUser, SessionDep, StaffActor, StaffOrModeratorActor
from yishi.core.errors import Forbidden
from yishi.core.models import Role

router = APIRouter(prefix="/api", tags=["chat"])


@router.post("/chat", response_model=ChatTurn)
async def chat(body: ChatRequest, user: CurrentUser) -> ChatTurn:
    """One turn through the same pipeline as a WeChat message, as `web:<user>`.

    Residents may only speak as themselves; staff and admins may speak as any web user (testing).
    """
    own = (user.external_id or "").removeprefix("web:")
    if user.role not in (Role.staff, Role.admin) and body.user != own:
        raise Forbidden("只能以自己的身份发言")
    msg = IncomingMessage(
        channel="web",
        sender=body.user,
        msg_type="text",
        content=body.text,
        msg_id=None,
        create_time=int(timestamp() * 1000),
    )
    return await run_in_threadpool(pipeline.run_turn, msg=msg)


@router.get("/bot/flagged", response_model=dict[str, list])
def flagged(session: SessionDep, _actor: StaffOrModeratorActor) -> dict[str, list]:
    """Messages Yishi could not answer or deliver: every one is listed here for a human."""
    inbound = session.exec(
        select(InboundMessage)
        .where(InboundMessage.status == InboundStatus.failed)
        .order_by(col(InboundMessage.id).desc())
        .limit(200)
    ).all()
    outbound = session.exec(
        select(OutboundMessage)
        .where(OutboundMessage.status == OutboundStatus.failed)
        .order_by(col(OutboundMessage.id).desc())
        .limit(200)
    ).all()
    return {
        "inbound": [InboundRead.model_validate(r, from_attributes=True) for r in inbound],
        "outbound": [OutboundRead.model_validate(r, from_attributes=True) for r in outbound],
    }


class Announcement(BaseModel):
    text: str = Field(min_length=1, max_length=2000)


@router.post("/bot/announce", status_code=202)
def announce(body: Announcement, session: SessionDep, actor: StaffActor) -> dict[str, object]:
    """Post a notice to the residents' WeCom group through the group robot (screened first)."""
    row = outbox.post_to_group(session=session, text=body.text, author_id=actor.user_id)
    if row is None:
        return {"queued": False, "held": True, "message": "内容未通过审核，已转人工复核"}
    return {"queued": True, "held": False, "id": row.id}


@router.get("/bot/messages", response_model=list[InboundRead])
def messages(
    session: SessionDep, _actor: StaffOrModeratorActor, limit: int = 50
) -> list[InboundRead]:
    """The latest inbound messages with their state (staff, moderators)."""
    rows = session.exec(
        select(InboundMessage).order_by(col(InboundMessage.id).desc()).limit(min(limit, 500))
    ).all()
    return [InboundRead.model_validate(r, from_attributes=True) for r in rows]
