"""The console's login session, CSRF protection, flash messages and page rendering.

Signing in with a bearer token opens a console session: the browser keeps a random session id
(never the bearer token) in an HttpOnly, SameSite=Strict cookie, the database keeps its hash, and
logout revokes it. Over https every cookie carries the `__Host-` prefix (Secure, path /, no
domain). Every POST form carries a double-submit CSRF token: a random value in its own cookie,
repeated in a hidden field, compared in constant time.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Form, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context

from yishi.core import auth as auth_service
from yishi.core.auth import Actor
from yishi.core.clock import local_time
from yishi.core.deps import SessionDep
from yishi.core.errors import Unauthorized, YishiError
from yishi.core.models import Role
from yishi.web.highlight import highlight_spans
from yishi.web.people import CHANNEL_LABELS, Directory, mask_phone, may_see_phone

AUTH_COOKIE = "yishi_console"
CSRF_COOKIE = "yishi_csrf"
FLASH_COOKIE = "yishi_flash"
CSRF_FIELD = "csrf_token"
SESSION_SECONDS = 12 * 3600
CONSOLE_PATH = "/console"

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.filters["highlight"] = highlight_spans


def _fmt_time(value: Any) -> str:
    """A stored naive-UTC datetime in Beijing time, `YYYY-MM-DD HH:MM`, or an empty string."""
    return local_time(value, "%Y-%m-%d %H:%M") if value is not None else ""


templates.env.filters["dt"] = _fmt_time


@pass_context
def _person(ctx: Any, user_id: str | None) -> str:
    """A user id as the person's name (see web.people)."""
    directory = ctx.get("people_directory")
    return directory.name(user_id) if directory is not None else "未知"


templates.env.filters["person"] = _person


class LoginRequired(Exception):
    """The caller has no valid console session or lacks the role: send them to the login page."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


class CsrfRejected(Exception):
    """A POST whose CSRF field does not match its cookie."""


class ConsoleRoute(APIRoute):
    """Route class that turns console exceptions into redirects and HTML error pages."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def console_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginRequired as exc:
                return RedirectResponse(exc.location, status_code=303)
            except CsrfRejected:
                return error_page(
                    request, 403, "表单已失效（安全校验未通过）", "请返回上一页，刷新后重新提交。"
                )
            except YishiError as exc:
                return error_page(request, exc.status_code, exc.message, exc.hint)

        return console_handler


def _secure(request: Request) -> bool:
    settings = request.app.state.settings
    return request.url.scheme == "https" or settings.environment == "production"


def cookie_name(request: Request, base: str) -> str:
    """`base`, with the `__Host-` prefix when the console is served over https."""
    return f"__Host-{base}" if _secure(request) else base


def _cookie_path(request: Request) -> str:
    # `__Host-` cookies must have path "/"; over plain http keep them to the console.
    return "/" if _secure(request) else CONSOLE_PATH


def read_cookie(request: Request, base: str) -> str | None:
    """The value of one of the console's cookies, under the name this request's scheme uses."""
    return request.cookies.get(cookie_name(request, base))


def safe_next(target: str | None) -> str:
    """`target` if it is a console path on this site, else the console home (no open redirect)."""
    if (
        target
        and target.startswith(CONSOLE_PATH)
        and not target.startswith("//")
        and "\\" not in target
        and "\n" not in target
        and "\r" not in target
    ):
        return target
    return CONSOLE_PATH


def _login_url(request: Request, reason: str) -> str:
    here = request.url.path
    if request.url.query:
        here += "?" + request.url.query
    if request.method != "GET":
        here = request.headers.get("referer", "")
        here = here.split(str(request.base_url).rstrip("/"), 1)[-1] if here else CONSOLE_PATH
    return f"{CONSOLE_PATH}/login?reason={reason}&next={quote(safe_next(here), safe='')}"


def admin_token(request: Request) -> str | None:
    """The bootstrap admin token from the app's settings, if one is set."""
    secret = request.app.state.settings.admin_token
    return secret.get_secret_value() if secret else None


def current_actor(request: Request, session: SessionDep) -> Actor | None:
    """The signed-in console user as an Actor, or None."""
    session_id = read_cookie(request, AUTH_COOKIE)
    if not session_id:
        return None
    try:
        user = auth_service.console_user(
            session=session, session_id=session_id,
            bootstrap_allowed=admin_token(request) is not None,
        )
    except Unauthorized:
        return None
    return auth_service.actor_from_user(user)


def console_roles(*roles: Role) -> Callable[..., Actor]:
    """Dependency factory: the console user if they have one of `roles`, else to the login page."""

    def dependency(request: Request, session: SessionDep) -> Actor:
        actor = current_actor(request, session)
        if actor is None:
            reason = "expired" if read_cookie(request, AUTH_COOKIE) else "login"
            raise LoginRequired(_login_url(request, reason))
        if not actor.has_role(*roles):
            raise LoginRequired(_login_url(request, "role"))
        request.state.console_actor = actor
        return actor

    return dependency


ModeratorUser = Annotated[Actor, Depends(console_roles(Role.moderator))]
StaffUser = Annotated[Actor, Depends(console_roles(Role.staff))]
ConsoleUser = Annotated[Actor, Depends(console_roles(Role.moderator, Role.staff))]


# --- CSRF -------------------------------------------------------------------------------------


def csrf_token(request: Request) -> str:
    """This browser's CSRF value (a new one is made, and set by `render`, if it has none)."""
    existing = getattr(request.state, "csrf", None)
    if existing:
        return str(existing)
    value = read_cookie(request, CSRF_COOKIE) or ""
    if len(value) < 32:
        value = secrets.token_urlsafe(32)
        request.state.new_csrf = True
    request.state.csrf = value
    return value


def check_csrf(request: Request, csrf_token: Annotated[str, Form()] = "") -> None:
    """Dependency for every POST: the hidden field must equal the CSRF cookie."""
    cookie = read_cookie(request, CSRF_COOKIE) or ""
    if not cookie or not csrf_token or not hmac.compare_digest(
        cookie.encode(), csrf_token.encode()
    ):
        raise CsrfRejected()


CsrfChecked = Depends(check_csrf)


def set_csrf_cookie(request: Request, response: Response, value: str) -> None:
    """Store the CSRF value in its cookie (HttpOnly: the page reads it from the form)."""
    response.set_cookie(
        cookie_name(request, CSRF_COOKIE), value, httponly=True, samesite="strict",
        secure=_secure(request), path=_cookie_path(request),
    )


def set_auth_cookie(request: Request, response: Response, session_id: str) -> None:
    """Keep the console session id in an HttpOnly, SameSite=Strict cookie."""
    response.set_cookie(
        cookie_name(request, AUTH_COOKIE), session_id, max_age=SESSION_SECONDS, httponly=True,
        samesite="strict", secure=_secure(request), path=_cookie_path(request),
    )


def clear_auth_cookie(response: Response, request: Request | None = None) -> None:
    """Forget the console session cookie (the session itself is revoked by the caller)."""
    if request is None:
        response.delete_cookie(AUTH_COOKIE, path=CONSOLE_PATH)
        return
    response.delete_cookie(
        cookie_name(request, AUTH_COOKIE), path=_cookie_path(request), secure=_secure(request),
        httponly=True, samesite="strict",
    )


# --- flash messages ---------------------------------------------------------------------------


_RESIDENT_HINTS = ("回复“", "发送“", "回复\"", "携带产权证明")


def staff_hint(hint: str | None) -> str | None:
    """A domain error's hint as staff should read it: hints written for residents (chat
    commands, what to bring to the office) are dropped, command-line quoting removed."""
    if not hint or any(word in hint for word in _RESIDENT_HINTS):
        return None
    return hint.replace("`", "")


def redirect(request: Request, url: str, *, ok: str | None = None,
             error: YishiError | str | None = None) -> RedirectResponse:
    """A 303 redirect after a POST, carrying a one-time message for the next page."""
    response = RedirectResponse(url, status_code=303)
    if ok or error:
        if isinstance(error, YishiError):
            hint = staff_hint(error.hint)
            text = error.message + (f"（{hint}）" if hint else "")
        else:
            text = error or ok or ""
        payload = json.dumps({"kind": "error" if error else "ok", "text": text[:500]})
        response.set_cookie(
            cookie_name(request, FLASH_COOKIE), base64.urlsafe_b64encode(payload.encode()).decode(),
            max_age=60, httponly=True, samesite="strict", secure=_secure(request),
            path=_cookie_path(request),
        )
    return response


def _read_flash(request: Request) -> dict[str, str] | None:
    raw = read_cookie(request, FLASH_COOKIE)
    if not raw:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(raw.encode()).decode())
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    return {"kind": "error" if data.get("kind") == "error" else "ok", "text": str(data.get("text"))}


# --- rendering --------------------------------------------------------------------------------


def nav_for(actor: Actor | None) -> list[tuple[str, str, str]]:
    """Sidebar links (section, path, label) the actor may open."""
    if actor is None:
        return []
    links: list[tuple[str, str, str]] = []
    if actor.has_role(Role.moderator):
        links += [
            ("审核", f"{CONSOLE_PATH}/moderation", "审核队列"),
            ("审核", f"{CONSOLE_PATH}/moderation/appeals", "申诉"),
            ("审核", f"{CONSOLE_PATH}/moderation/mutes", "违规与禁言"),
            ("审核", f"{CONSOLE_PATH}/moderation/audit", "审计日志"),
        ]
    if actor.has_role(Role.staff):
        links += [
            ("议事", f"{CONSOLE_PATH}/issues", "问题看板"),
            ("议事", f"{CONSOLE_PATH}/threads", "议题讨论"),
            ("议事", f"{CONSOLE_PATH}/proposals", "提案"),
            ("议事", f"{CONSOLE_PATH}/responsibility", "责任清单"),
            ("议事", f"{CONSOLE_PATH}/failures", "未答复消息与转人工"),
            ("资料", f"{CONSOLE_PATH}/documents", "知识库文档"),
            ("资料", f"{CONSOLE_PATH}/owners", "业主名册"),
        ]
    if actor.role == Role.admin:
        links.append(("管理", f"{CONSOLE_PATH}/users", "用户与角色"))
    return links


def render(request: Request, template: str, context: dict[str, Any] | None = None, *,
           status_code: int = 200) -> HTMLResponse:
    """Render a console page with the layout's context (user, nav, CSRF, flash)."""
    actor: Actor | None = getattr(request.state, "console_actor", None)
    csrf = csrf_token(request)
    flash = _read_flash(request)
    ctx: dict[str, Any] = {
        "actor": actor,
        "nav": nav_for(actor),
        "csrf": csrf,
        "csrf_field": CSRF_FIELD,
        "flash": flash,
        "community": request.app.state.settings.community_name,
        "path": request.url.path,
        "channels": CHANNEL_LABELS,
        "can_see_phone": may_see_phone(actor),
        "mask": mask_phone,
    }
    ctx.update(context or {})
    if "people_directory" not in ctx:
        from yishi.core.db import session_scope

        with session_scope(request.app.state.settings) as session:
            ctx["people_directory"] = Directory(session)
    response = templates.TemplateResponse(request, template, ctx, status_code=status_code)
    if getattr(request.state, "new_csrf", False):
        set_csrf_cookie(request, response, csrf)
    if flash is not None:
        response.delete_cookie(
            cookie_name(request, FLASH_COOKIE), path=_cookie_path(request),
            secure=_secure(request), httponly=True, samesite="strict",
        )
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'; "
        "form-action 'self'"
    )
    return response


def error_page(request: Request, status_code: int, message: str,
               hint: str | None = None) -> HTMLResponse:
    """A console error page in the layout."""
    hint = staff_hint(hint)
    return render(
        request, "console/error.html", {"message": message, "hint": hint},
        status_code=status_code,
    )
