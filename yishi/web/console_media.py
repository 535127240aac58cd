"""Console: the photos residents attached to their reports, shown only to signed-in staff."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from yishi.bot import media
from yishi.core.config import Settings
from yishi.core.deps import SessionDep
from yishi.core.errors import NotFound
from yishi.deliberation import issues
from yishi.web.console_session import CONSOLE_PATH, ConsoleRoute, StaffUser

router = APIRouter(include_in_schema=False, route_class=ConsoleRoute)


@router.get(f"{CONSOLE_PATH}/issues/{{issue_id}}/photos/{{key}}")
def issue_photo(
    request: Request, session: SessionDep, actor: StaffUser, issue_id: int, key: str
) -> FileResponse:
    """One photo of an issue (only keys listed on that issue are served)."""
    issue = issues.get_issue(session=session, actor=actor, issue_id=issue_id)
    settings: Settings = request.app.state.settings
    found = media.open_photo(settings=settings, key=key) if key in (issue.media or []) else None
    if found is None:
        raise NotFound("照片不存在", hint="请回到问题页面刷新后再看")
    path, content_type = found
    return FileResponse(
        path,
        media_type=content_type,
        headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )
