"""Console pages for people and papers: users and roles (admin), the owners' roster, a
resident's phone number (shown on request, audited) and the knowledge-base documents."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse

from yishi.core import auth as auth_service
from yishi.core.auth import Actor
from yishi.core.deps import SessionDep
from yishi.core.errors import Invalid, YishiError
from yishi.core.models import Role
from yishi.deliberation import proposals, roster
from yishi.knowledge import service as knowledge_service
from yishi.moderation import service as moderation_service
from yishi.web.console_session import (
    CONSOLE_PATH,
    ConsoleRoute,
    CsrfChecked,
    StaffUser,
    console_roles,
    redirect,
    render,
    safe_next,
)
from yishi.web.people import Directory, mask_phone

router = APIRouter(include_in_schema=False, route_class=ConsoleRoute)

AdminUser = Annotated[Actor, Depends(console_roles(Role.admin))]
ROLE_LABELS = {"resident": "居民", "moderator": "审核员", "staff": "工作人员", "admin": "管理员"}
MAX_UPLOAD = 20 * 1024 * 1024


# --- users and roles (admin) ------------------------------------------------------------------


@router.get(f"{CONSOLE_PATH}/users", response_class=HTMLResponse)
def user_list(request: Request, session: SessionDep, actor: AdminUser) -> HTMLResponse:
    """Every user with role, unit and whether they can sign in; forms to manage them."""
    return render(
        request,
        "console/users.html",
        {
            "users": auth_service.get_all(session=session),
            "tokens": auth_service.count_tokens(session=session),
            "roles": ROLE_LABELS,
            "mask_phone": mask_phone,
        },
    )


def _role(value: str) -> Role:
    if value not in ROLE_LABELS:
        raise Invalid("请选择角色")
    return Role(value)


@router.post(f"{CONSOLE_PATH}/users", dependencies=[CsrfChecked])
def user_create(
    request: Request,
    session: SessionDep,
    actor: AdminUser,
    name: Annotated[str, Form(max_length=100)] = "",
    role: Annotated[str, Form()] = "",
    unit: Annotated[str, Form(max_length=100)] = "",
    phone: Annotated[str, Form(max_length=30)] = "",
    external_id: Annotated[str, Form(max_length=200)] = "",
) -> RedirectResponse:
    """Create a user (staff, moderator, admin or a registered resident)."""
    back = f"{CONSOLE_PATH}/users"
    try:
        user = auth_service.create(session=session, name=name, role=_role(role),
                                   external_id=external_id.strip() or None)
        assert user.id is not None
        auth_service.update_profile(session=session, user_id=user.id, unit=unit, phone=phone)
    except YishiError as exc:
        session.rollback()
        return redirect(request, back, error=exc)
    return redirect(request, back, ok=f"已添加用户“{user.name}”（{ROLE_LABELS[user.role]}）")


@router.post(f"{CONSOLE_PATH}/users/{{user_id}}", dependencies=[CsrfChecked])
def user_update(
    request: Request,
    session: SessionDep,
    actor: AdminUser,
    user_id: int,
    name: Annotated[str, Form(max_length=100)] = "",
    role: Annotated[str, Form()] = "",
    unit: Annotated[str, Form(max_length=100)] = "",
    phone: Annotated[str, Form(max_length=30)] = "",
) -> RedirectResponse:
    """Change a user's name, role, unit or phone (an empty phone field keeps the number)."""
    back = f"{CONSOLE_PATH}/users"
    try:
        auth_service.update_profile(session=session, user_id=user_id, name=name, unit=unit,
                                    phone=phone.strip() or None)
        user = auth_service.set_role(session=session, user_id=user_id, role=_role(role))
    except YishiError as exc:
        session.rollback()
        return redirect(request, back, error=exc)
    return redirect(request, back, ok=f"已保存“{user.name}”的资料")


@router.post(f"{CONSOLE_PATH}/users/{{user_id}}/active", dependencies=[CsrfChecked])
def user_active(
    request: Request,
    session: SessionDep,
    actor: AdminUser,
    user_id: int,
    active: Annotated[str, Form()] = "",
) -> RedirectResponse:
    """Deactivate or reactivate a user."""
    back = f"{CONSOLE_PATH}/users"
    try:
        change = auth_service.activate if active == "yes" else auth_service.deactivate
        user = change(session=session, user_id=user_id)
    except YishiError as exc:
        session.rollback()
        return redirect(request, back, error=exc)
    return redirect(request, back, ok=f"已{'启用' if user.active else '停用'}“{user.name}”")


@router.post(f"{CONSOLE_PATH}/users/{{user_id}}/token", dependencies=[CsrfChecked],
             response_class=HTMLResponse)
def user_token(
    request: Request, session: SessionDep, actor: AdminUser, user_id: int
) -> HTMLResponse:
    """Issue a new login token; it is shown once on this page and never stored in plain."""
    try:
        token = auth_service.issue_token(session=session, user_id=user_id, label="管理台签发")
    except YishiError as exc:
        session.rollback()
        return redirect(request, f"{CONSOLE_PATH}/users", error=exc)  # type: ignore[return-value]
    users = {u.id: u for u in auth_service.get_all(session=session)}
    return render(request, "console/user_token.html", {"user": users[user_id], "token": token})


@router.post(f"{CONSOLE_PATH}/users/{{user_id}}/revoke", dependencies=[CsrfChecked])
def user_revoke(
    request: Request, session: SessionDep, actor: AdminUser, user_id: int
) -> RedirectResponse:
    """Revoke every login token of a user."""
    n = auth_service.revoke_all_tokens(session=session, user_id=user_id)
    return redirect(request, f"{CONSOLE_PATH}/users", ok=f"已吊销 {n} 个令牌")


# --- a resident's phone number (staff, audited) ----------------------------------------------


@router.post(f"{CONSOLE_PATH}/people/phone", dependencies=[CsrfChecked],
             response_class=HTMLResponse)
def phone_view(
    request: Request,
    session: SessionDep,
    actor: StaffUser,
    person: Annotated[str, Form(max_length=200)] = "",
    why: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form()] = "",
) -> HTMLResponse:
    """Show one person's phone number to staff; every view is written to the audit log."""
    directory = Directory(session)
    user = directory.user(person)
    if user is None or not user.phone:
        return redirect(  # type: ignore[return-value]
            request, safe_next(next), error="没有登记此人的电话"
        )
    moderation_service.record_access(
        session=session, actor_id=actor.user_id, action="view_phone",
        reason=why.strip() or "联系居民", details={"user_id": person, "page": safe_next(next)},
    )
    return render(
        request,
        "console/phone.html",
        {"name": directory.name(person), "phone": user.phone, "back": safe_next(next)},
    )


# --- owners' roster ---------------------------------------------------------------------------


@router.get(f"{CONSOLE_PATH}/owners", response_class=HTMLResponse)
def owner_list(request: Request, session: SessionDep, actor: StaffUser) -> HTMLResponse:
    """Recorded units with their owners and areas; CSV import."""
    units = proposals.get_units(session=session)
    return render(
        request,
        "console/owners.html",
        {
            "units": units,
            "total_area": sum(u.area_m2 for u in units),
            "owners": len({u.owner_id for u in units}),
            "report": None,
        },
    )


@router.post(f"{CONSOLE_PATH}/owners/import", dependencies=[CsrfChecked],
             response_class=HTMLResponse)
async def owner_import(
    request: Request,
    session: SessionDep,
    actor: StaffUser,
    file: Annotated[UploadFile | None, File()] = None,
) -> HTMLResponse:
    """Import the roster from CSV; the page lists what was added and each rejected row."""
    back = f"{CONSOLE_PATH}/owners"
    if file is None or not file.filename:
        return redirect(request, back, error="请选择名册文件（CSV）")  # type: ignore[return-value]
    data = await file.read(MAX_UPLOAD + 1)
    try:
        if len(data) > MAX_UPLOAD:
            raise Invalid("文件太大（超过 20 MB）")
        report = roster.import_csv(session=session, actor=actor, data=data)
    except YishiError as exc:
        session.rollback()
        return redirect(request, back, error=exc)  # type: ignore[return-value]
    units = proposals.get_units(session=session)
    return render(
        request,
        "console/owners.html",
        {
            "units": units,
            "total_area": sum(u.area_m2 for u in units),
            "owners": len({u.owner_id for u in units}),
            "report": report,
        },
    )


# --- knowledge-base documents -----------------------------------------------------------------

KIND_LABELS = {"policy": "法律法规", "community": "社区文件", "upload": "上传文件"}


@router.get(f"{CONSOLE_PATH}/documents", response_class=HTMLResponse)
def document_list(request: Request, session: SessionDep, actor: StaffUser) -> HTMLResponse:
    """Documents in the knowledge base; upload, delete and re-ingest."""
    return render(
        request,
        "console/documents.html",
        {"documents": knowledge_service.get_all_documents(session=session),
         "kinds": KIND_LABELS},
    )


@router.post(f"{CONSOLE_PATH}/documents", dependencies=[CsrfChecked])
async def document_upload(
    request: Request,
    session: SessionDep,
    actor: StaffUser,
    file: Annotated[UploadFile | None, File()] = None,
) -> RedirectResponse:
    """Upload a document (md, txt, html, pdf, docx) into the knowledge base."""
    back = f"{CONSOLE_PATH}/documents"
    if file is None or not file.filename:
        return redirect(request, back, error="请选择要上传的文件")
    data = await file.read(MAX_UPLOAD + 1)
    try:
        if len(data) > MAX_UPLOAD:
            raise Invalid("文件太大（超过 20 MB）")
        from starlette.concurrency import run_in_threadpool

        result = await run_in_threadpool(
            knowledge_service.ingest_upload, data=data, filename=file.filename,
            settings=request.app.state.settings,
        )
    except YishiError as exc:
        return redirect(request, back, error=exc)
    return redirect(request, back, ok=f"已收录《{result.source}》，共 {result.chunks} 段")


@router.post(f"{CONSOLE_PATH}/documents/delete", dependencies=[CsrfChecked])
def document_delete(
    request: Request,
    session: SessionDep,
    actor: StaffUser,
    source: Annotated[str, Form(max_length=300)] = "",
) -> RedirectResponse:
    """Remove a document and all its chunks."""
    back = f"{CONSOLE_PATH}/documents"
    try:
        knowledge_service.delete_document(session=session, source=source,
                                          settings=request.app.state.settings)
    except YishiError as exc:
        session.rollback()
        return redirect(request, back, error=exc)
    return redirect(request, back, ok=f"已删除《{source}》")


@router.post(f"{CONSOLE_PATH}/documents/reingest", dependencies=[CsrfChecked])
def document_reingest(
    request: Request,
    session: SessionDep,
    actor: StaffUser,
    source: Annotated[str, Form(max_length=300)] = "",
) -> RedirectResponse:
    """Index a document again from its file."""
    back = f"{CONSOLE_PATH}/documents"
    try:
        result = knowledge_service.reingest(session=session, source=source,
                                            settings=request.app.state.settings)
    except YishiError as exc:
        session.rollback()
        return redirect(request, back, error=exc)
    return redirect(request, back, ok=f"已重新收录《{source}》，共 {result.chunks} 段")


@router.get(f"{CONSOLE_PATH}/documents/chunks", response_class=HTMLResponse)
def document_chunks(
    request: Request, session: SessionDep, actor: StaffUser, source: str = ""
) -> HTMLResponse:
    """The searchable passages of one document, in order."""
    docs = {d.source: d for d in knowledge_service.get_all_documents(session=session)}
    if source not in docs:
        raise Invalid("没有这份文档", hint="请从文档列表进入")
    return render(
        request,
        "console/document_chunks.html",
        {
            "document": docs[source],
            "chunks": knowledge_service.get_chunks(source=source,
                                                   settings=request.app.state.settings),
            "quote": quote,
        },
    )
