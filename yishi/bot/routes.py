"""Chat API (the web simulator and any authenticated client) and the message log for staff."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from sqlmodel import col, select

from yishi.bot import memory, outbox, pipeline
from yishi.bot import service as bot_service
from yishi.bot.models import (
    InboundMessage,
    InboundRead,
    OutboundRead,
)
from yishi.bot.schemas import ChatRequest, ChatTurn, IncomingMessage
from yishi.core.clock import timestamp
from yishi.core.deps import CurrentUser, SessionDep, StaffActor, StaffOrModeratorActor
from yishi.core.errors import Forbidden

router = APIRouter(prefix="/api", tags=["chat"])


@router.post("/chat", response_model=ChatTurn)
async def chat(body: ChatRequest, user: CurrentUser) -> ChatTurn:
    """One turn through the same pipeline as a WeChat message, as `web:<user>`.

    Every caller speaks only as their own web identity (their role comes with it); nobody,
    staff included, may speak or vote as another resident.
    """
    external_id = user.external_id or ""
    own = external_id.removeprefix("web:") if external_id.startswith("web:") else None
    if body.user != own:
        raise Forbidden("只能以自己的身份发言", hint="请求中的 user 须与令牌绑定的网页身份一致")
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
    """What needs a human: messages Yishi could not answer or deliver, and open 转人工 requests."""
    flagged = bot_service.get_flagged(session=session)
    return {
        "inbound": [InboundRead.model_validate(r, from_attributes=True) for r in flagged.inbound],
        "outbound": [
            OutboundRead.model_validate(r, from_attributes=True) for r in flagged.outbound
        ],
        "handoffs": [h.model_dump(mode="json") for h in flagged.handoffs],
    }


@router.post("/bot/handoffs/{handoff_id}/resolve")
def resolve_handoff(
    handoff_id: int, session: SessionDep, actor: StaffOrModeratorActor
) -> dict[str, object]:
    """Mark a resident's request for a human (转人工) as taken care of."""
    handoff = memory.resolve_handoff(session=session, handoff_id=handoff_id, by=actor.user_id)
    return {"id": handoff.id, "resolved": handoff.resolved}


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
