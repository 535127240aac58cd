"""Privacy API for staff and admins: export or erase a resident's data, the retention figures,
and the privacy audit. Residents use the chat commands ("导出我的信息", "删除我的信息")."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from yishi.core.deps import AdminActor, SessionDep, SettingsDep, StaffActor
from yishi.privacy import service as privacy_service

router = APIRouter(prefix="/api/privacy", tags=["privacy"])


class EraseRequest(BaseModel):
    user_id: str = Field(min_length=3, max_length=200, description="e.g. wechat_mp:<OpenID>")


@router.get("/export")
def export(user_id: str, session: SessionDep, actor: StaffActor) -> dict[str, Any]:
    """Everything held about one resident as JSON (staff; the export is audited)."""
    return privacy_service.export(session=session, user_id=user_id, actor=actor.user_id)


@router.post("/erase")
def erase(body: EraseRequest, session: SessionDep, actor: AdminActor,
          settings: SettingsDep) -> dict[str, Any]:
    """Erase one resident's personal data (admin); answers with what was removed, by kind."""
    done = privacy_service.erase(session=session, user_id=body.user_id, actor=actor.user_id,
                                 settings=settings)
    return {"erased": done.counts, "summary": done.summary()}


@router.get("/figures")
def figures(session: SessionDep, _actor: StaffActor, settings: SettingsDep) -> dict[str, Any]:
    """What personal data is held and how old (counts and ages only)."""
    return privacy_service.figures(session=session, settings=settings)


@router.get("/events")
def events(session: SessionDep, _actor: AdminActor, limit: int = 100) -> list[dict[str, Any]]:
    """The privacy audit: erasures, exports and retention purges (who and how many, never whose)."""
    return [e.model_dump(mode="json")
            for e in privacy_service.get_events(session=session, limit=min(max(limit, 1), 1000))]
