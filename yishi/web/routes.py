"""Server-rendered pages: the resident chat simulator (development) and the console."""

from __future__ import annotations

import threading
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from sqlmodel import col, func, select

from yishi.bot.models import OutboundMessage
from yishi.core import auth as auth_service
from yishi.core.db import session_scope
from yishi.core.errors import Forbidden, NotFound, YishiError
from yishi.core.models import Role
from yishi.web import api_docs
from yishi.web.console import STATIC_DIR
from yishi.web.console import router as console_router

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
router.include_router(console_router)  # the moderators' and staff console (/console)
router.include_router(api_docs.router)  # /docs and /redoc from local assets

SIMULATOR_USER = "u1"
_LOOPBACK = {"127.0.0.1", "::1", "localhost", "testclient"}
_token_lock = threading.Lock()
_simulator_tokens: dict[str, str] = {}


def simulator_token(settings_url: str) -> str:
    """A resident token for the simulator's user `u1` (created on first use, kept per process)."""
    with _token_lock, session_scope() as session:
        token = _simulator_tokens.get(settings_url)
        if token:
            try:  # still valid? (revoked, expired, or the database was reset under us)
                auth_service.authenticate(session=session, token=token)
                return token
            except YishiError:
                _simulator_tokens.pop(settings_url, None)
        external_id = f"web:{SIMULATOR_USER}"
        user = auth_service.get_by_external_id(session=session, external_id=external_id)
        if user is None:
            user = auth_service.create(
                session=session, name="模拟居民", role=Role.resident, external_id=external_id
            )
        assert user.id is not None
        token = auth_service.issue_token(session=session, user_id=user.id, label="simulator")
        _simulator_tokens[settings_url] = token
        return token


@router.get("/")
def index() -> RedirectResponse:
    return RedirectResponse("/chat")


@router.get("/chat", response_class=HTMLResponse)
def chat_page(request: Request) -> HTMLResponse:
    """The resident chat simulator: talk to Yishi as resident `u1`, as if in WeChat."""
    settings = request.app.state.settings
    if not settings.simulator_enabled:
        raise NotFound("模拟器未开启", hint="开发环境默认开启；生产环境设置 YISHI_SIMULATOR=true")
    client = request.client.host if request.client else ""
    if client not in _LOOPBACK:
        raise Forbidden("模拟器只对本机开放")
    token = simulator_token(settings.resolved_database_url)
    with session_scope(settings) as session:
        last = session.exec(select(func.max(OutboundMessage.id))).one() or 0
    return templates.TemplateResponse(
        request,
        "chat.html",
        {
            "token": token,
            "user": SIMULATOR_USER,
            "resident_name": "",
            "community": settings.community_name,
            "last_notice": int(last),
        },
    )


@router.get("/chat/inbox")
def chat_inbox(request: Request, after: int = 0) -> JSONResponse:
    """Messages pushed to the simulator's resident outside a turn (staff replies, notices)."""
    settings = request.app.state.settings
    client = request.client.host if request.client else ""
    if not settings.simulator_enabled or client not in _LOOPBACK:
        raise NotFound("模拟器未开启")
    with session_scope(settings) as session:
        rows = session.exec(
            select(OutboundMessage)
            .where(
                OutboundMessage.user_id == f"web:{SIMULATOR_USER}",
                col(OutboundMessage.inbound_id).is_(None),
                col(OutboundMessage.id) > after,
            )
            .order_by(col(OutboundMessage.id))
            .limit(50)
        ).all()
        return JSONResponse([{"id": r.id, "text": r.text} for r in rows])


@router.get("/favicon.svg")
def favicon() -> FileResponse:
    """The site icon (a speech bubble)."""
    return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")


@router.get("/favicon.ico")
def favicon_ico() -> RedirectResponse:
    """Browsers ask for /favicon.ico first."""
    return RedirectResponse("/favicon.svg", status_code=301)
