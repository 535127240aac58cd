"""HTTP routes for moderators: the review queue, decisions, appeals, strikes, mutes, audit log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from yishi.core.deps import ModeratorActor, ResidentActor, SessionDep
from yishi.moderation import service
from yishi.moderation.models import Appeal, ModerationDecision, Mute, ReviewItem, Strike
from yishi.moderation.schemas import (
    AppealIn,
    AppealResolveIn,
    EscalateIn,
    ReviewDecisionIn,
    ReviewEditIn,
    ReviewItemRead,
    ScreenIn,
    Verdict,
)

router = APIRouter(prefix="/api/moderation", tags=["moderation"])


class MuteIn(BaseModel):
    """Mute a sender by hand."""

    sender_id: str = Field(min_length=1, max_length=200)
    hours: float = Field(gt=0, le=720)
    reason: str = Field(min_length=1, max_length=500)


def _read(item: ReviewItem) -> ReviewItemRead:
    return ReviewItemRead.model_validate(item, from_attributes=True)


@router.post("/screen", response_model=Verdict)
def screen_text(body: ScreenIn, actor: ModeratorActor) -> Verdict:
    """Screen a text on demand and show the verdict (nothing is stored)."""
    return service.screen(body.text, context=body.context)


@router.get("/queue", response_model=list[ReviewItemRead])
def get_queue(
    session: SessionDep,
    actor: ModeratorActor,
    status: str = "pending",
    limit: int = 50,
    offset: int = 0,
) -> list[ReviewItemRead]:
    """Held messages with their reasons and highlighted spans, oldest first."""
    items = service.get_queue(session=session, status=status, limit=limit, offset=offset)
    return [_read(i) for i in items]


@router.get("/items/{item_id}", response_model=ReviewItemRead)
def get_item(item_id: int, session: SessionDep, actor: ModeratorActor) -> ReviewItemRead:
    """One held message."""
    return _read(service.get(session=session, item_id=item_id))


@router.post("/items/{item_id}/approve", response_model=ReviewItemRead)
def approve(
    item_id: int, body: ReviewDecisionIn, session: SessionDep, actor: ModeratorActor
) -> ReviewItemRead:
    """Approve a held message: its redacted text is released."""
    return _read(service.approve(session=session, actor=actor, item_id=item_id, reason=body.reason))


@router.post("/items/{item_id}/reject", response_model=ReviewItemRead)
def reject(
    item_id: int, body: ReviewDecisionIn, session: SessionDep, actor: ModeratorActor
) -> ReviewItemRead:
    """Reject a held message: it is never posted and the sender gets a strike."""
    return _read(service.reject(session=session, actor=actor, item_id=item_id, reason=body.reason))


@router.post("/items/{item_id}/edit", response_model=ReviewItemRead)
def edit_and_approve(
    item_id: int, body: ReviewEditIn, session: SessionDep, actor: ModeratorActor
) -> ReviewItemRead:
    """Approve an edited version of a held message (the edit is screened again)."""
    item = service.edit_and_approve(
        session=session, actor=actor, item_id=item_id, text=body.text, reason=body.reason
    )
    return _read(item)


@router.post("/items/{item_id}/escalate", response_model=ReviewItemRead)
def escalate(
    item_id: int, body: EscalateIn, session: SessionDep, actor: ModeratorActor
) -> ReviewItemRead:
    """Escalate a held message with a reason."""
    return _read(
        service.escalate(session=session, actor=actor, item_id=item_id, reason=body.reason)
    )


@router.post("/items/{item_id}/appeal", response_model=Appeal)
def appeal(item_id: int, body: AppealIn, session: SessionDep, actor: ResidentActor) -> Appeal:
    """Appeal the decision on your own message (once, within 20 days)."""
    return service.appeal(session=session, actor=actor, item_id=item_id, reason=body.reason)


@router.get("/appeals", response_model=list[Appeal])
def get_appeals(session: SessionDep, actor: ModeratorActor, status: str = "open") -> list[Appeal]:
    """Appeals with a status, oldest first."""
    return service.get_appeals(session=session, status=status)


@router.post("/appeals/{appeal_id}/resolve", response_model=Appeal)
def resolve_appeal(
    appeal_id: int, body: AppealResolveIn, session: SessionDep, actor: ModeratorActor
) -> Appeal:
    """Uphold (approve the message, void its strike) or deny an appeal."""
    return service.resolve_appeal(
        session=session, actor=actor, appeal_id=appeal_id, upheld=body.upheld, reason=body.reason
    )


@router.get("/audit", response_model=list[ModerationDecision])
def get_audit(
    session: SessionDep,
    actor: ModeratorActor,
    item_id: int | None = None,
    actor_id: str | None = None,
    limit: int = 100,
) -> list[ModerationDecision]:
    """The append-only audit log, newest first."""
    return service.get_audit(session=session, item_id=item_id, actor_id=actor_id, limit=limit)


@router.get("/strikes/{sender_id}", response_model=list[Strike])
def get_strikes(sender_id: str, session: SessionDep, actor: ModeratorActor) -> list[Strike]:
    """A sender's strikes, newest first."""
    return service.get_strikes(session=session, sender_id=sender_id)


@router.get("/mutes", response_model=list[Mute])
def get_mutes(session: SessionDep, actor: ModeratorActor, active_only: bool = True) -> list[Mute]:
    """Mutes, newest first."""
    return service.get_mutes(session=session, active_only=active_only)


@router.post("/mutes", response_model=Mute)
def mute(body: MuteIn, session: SessionDep, actor: ModeratorActor) -> Mute:
    """Mute a sender for some hours."""
    return service.mute(
        session=session, actor=actor, sender_id=body.sender_id, hours=body.hours, reason=body.reason
    )


@router.delete("/mutes/{sender_id}")
def unmute(
    sender_id: str, session: SessionDep, actor: ModeratorActor, reason: str = ""
) -> dict[str, Any]:
    """Lift a sender's active mutes."""
    lifted = service.unmute(session=session, actor=actor, sender_id=sender_id, reason=reason)
    return {"sender_id": sender_id, "lifted": lifted}
