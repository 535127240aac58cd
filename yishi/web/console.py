"""The web console for moderators and staff: login with a bearer token, then the moderation
and deliberation pages (see console_moderation.py and console_staff.py)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from yishi.core import auth as auth_service
from yishi.core.deps import SessionDep
from yishi.core.errors import Unauthorized
from yishi.core.models import Role
from yishi.web import console_media, console_moderation, console_people, console_staff
from yishi.web.console_session import (
    AUTH_COOKIE,
    CONSOLE_PATH,
    SESSION_SECONDS,
    ConsoleRoute,
    ConsoleUser,
    CsrfChecked,
    admin_token,
    clear_auth_cookie,
    current_actor,
    error_page,
    read_cookie,
    redirect,
    render,
    safe_next,
    set_auth_cookie,
    set_csrf_cookie,
)

router = APIRouter(include_in_schema=False, route_class=ConsoleRoute)

STATIC_DIR = Path(__file__).parent / "static"

_LOGIN_REASONS = {
    "login": "请先登录。",
    "expired": "登录已失效（令牌无效或已吊销），请重新登录。",
    "role": "当前账号没有访问该页面的权限，请换用有权限的令牌登录。",
    "logout": "已退出登录。",
}


@router.get(f"{CONSOLE_PATH}/static/console.css")
def console_css() -> FileResponse:
    """The console's stylesheet (served locally, no CDN)."""
    return FileResponse(STATIC_DIR / "console.css", media_type="text/css")


@router.get(f"{CONSOLE_PATH}/static/console.js")
def console_js() -> FileResponse:
    """The console's small script (confirmations and filter auto-submit)."""
    return FileResponse(STATIC_DIR / "console.js", media_type="text/javascript")


@router.get(f"{CONSOLE_PATH}/login", response_class=HTMLResponse)
def login_page(
    request: Request, session: SessionDep, reason: str = "", next: str = ""
) -> HTMLResponse:
    """Paste a bearer token to sign in."""
    request.state.console_actor = current_actor(request, session)
    return render(
        request,
        "console/login.html",
        {"reason": _LOGIN_REASONS.get(reason), "next": safe_next(next)},
    )


@router.post(f"{CONSOLE_PATH}/login", dependencies=[CsrfChecked])
def login(
    request: Request,
    session: SessionDep,
    token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> RedirectResponse:
    """Check the token, then keep it in an HttpOnly cookie."""
    login_again = f"{CONSOLE_PATH}/login?next={quote(safe_next(next), safe='')}"
    token = token.strip()
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    if not token:
        return redirect(request, login_again, error="请粘贴登录令牌")
    try:
        user = auth_service.authenticate(
            session=session, token=token, admin_token=admin_token(request)
        )
    except Unauthorized as exc:
        return redirect(request, login_again, error=exc)
    if user.role == Role.resident:
        return redirect(
            request, login_again,
            error="居民账号不能登录管理台；请使用审核员或工作人员的令牌",
        )
    response = redirect(request, safe_next(next))
    session_id = auth_service.open_console_session(
        session=session, user=user, seconds=SESSION_SECONDS
    )
    set_auth_cookie(request, response, session_id)
    # A fresh CSRF value for the new session.
    set_csrf_cookie(request, response, secrets.token_urlsafe(32))
    return response


@router.post(f"{CONSOLE_PATH}/logout", dependencies=[CsrfChecked])
def logout(request: Request, session: SessionDep) -> RedirectResponse:
    """Revoke the console session, then forget its cookie."""
    session_id = read_cookie(request, AUTH_COOKIE)
    if session_id:
        auth_service.close_console_session(session=session, session_id=session_id)
    response = RedirectResponse(f"{CONSOLE_PATH}/login?reason=logout", status_code=303)
    clear_auth_cookie(response, request)
    return response


@router.get(CONSOLE_PATH)
def home(actor: ConsoleUser) -> RedirectResponse:
    """The first page for the signed-in role."""
    if actor.has_role(Role.moderator) and actor.role != Role.admin:
        return RedirectResponse(f"{CONSOLE_PATH}/moderation", status_code=303)
    return RedirectResponse(f"{CONSOLE_PATH}/issues", status_code=303)


router.include_router(console_moderation.router)
router.include_router(console_staff.router)
router.include_router(console_media.router)  # photos attached to reports
router.include_router(console_people.router)


@router.get(CONSOLE_PATH + "/{rest:path}", response_class=HTMLResponse)
def not_found(request: Request, session: SessionDep, rest: str) -> HTMLResponse:
    """Any other console path: a page in Chinese, not a JSON error."""
    request.state.console_actor = current_actor(request, session)
    return error_page(request, 404, "没有这个页面", "请从左侧菜单进入需要的页面。")
