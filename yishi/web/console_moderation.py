"""Console pages for moderators: the review queue, item detail with actions, appeals, strikes
and mutes, and the append-only audit log. Logic lives in `yishi.moderation.service`."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from yishi.core.deps import SessionDep
from yishi.core.errors import Invalid, YishiError
from yishi.moderation import service as moderation_service
from yishi.moderation.models import ReviewItem
from yishi.web.console_session import (
    CONSOLE_PATH,
    ConsoleRoute,
    CsrfChecked,
    ModeratorUser,
    redirect,
    render,
    safe_next,
    templates,
)
from yishi.web.people import Directory

router = APIRouter(include_in_schema=False, route_class=ConsoleRoute)

BASE = f"{CONSOLE_PATH}/moderation"
QUEUE_STATUSES = {
    "pending": "待审",
    "escalated": "已升级",
    "approved": "已通过",
    "rejected": "已拒绝",
}
APPEAL_STATUSES = {"open": "待处理", "upheld": "申诉成立", "denied": "申诉驳回"}
ACTION_LABELS = {
    "screen_review": "系统：待审",
    "screen_block": "系统：拦截",
    "approve": "通过",
    "reject": "拒绝",
    "edit_approve": "编辑后通过",
    "escalate": "升级",
    "strike": "记违规",
    "mute": "禁言",
    "unmute": "解除禁言",
    "appeal": "申诉",
    "appeal_upheld": "申诉成立",
    "appeal_denied": "申诉驳回",
    "strike_voided": "撤销违规",
    "view_phone": "查看电话",
}
DETAIL_LABELS = {
    "sender_id": "用户",
    "hours": "禁言时长（小时）",
    "categories": "类别",
    "score": "分值",
    "source": "来源",
    "strike_number": "第几次违规",
    "lifted": "解除禁言数",
    "edited_text": "修改后内容",
    "strikes": "撤销违规数",
    "user_id": "用户",
    "page": "页面",
}
CATEGORY_LABELS = {
    "insult": "辱骂",
    "harassment": "骚扰",
    "threat": "威胁",
    "hate": "仇恨歧视",
    "sexual": "色情低俗",
    "doxxing": "泄露他人信息",
    "self_pii": "本人隐私",
    "spam_ad": "广告推销",
    "fraud": "诈骗",
    "incitement": "煽动",
    "prompt_injection": "提示注入",
}
SOURCE_LABELS = {
    "message": "居民消息",
    "inbound": "居民消息",
    "reply": "助手回复",
    "thread": "议题留言",
    "group": "群聊",
    "summary": "讨论总结",
}
PAGE_SIZE = 50
templates.env.globals.update(
    category_labels=CATEGORY_LABELS, source_labels=SOURCE_LABELS, detail_labels=DETAIL_LABELS
)

Decision = Literal["approve", "reject", "edit", "escalate"]


@router.get(BASE, response_class=HTMLResponse)
def queue(
    request: Request, session: SessionDep, actor: ModeratorUser, status: str = "pending",
    page: int = 1,
) -> HTMLResponse:
    """The review queue: held messages with reasons, categories, score and highlighted spans."""
    if status not in QUEUE_STATUSES:
        status = "pending"
    page = max(page, 1)
    items = moderation_service.get_queue(
        session=session, status=status, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE
    )
    return render(
        request,
        "console/moderation_queue.html",
        {
            "items": items[:PAGE_SIZE],
            "has_more": len(items) > PAGE_SIZE,
            "page": page,
            "status": status,
            "statuses": QUEUE_STATUSES,
        },
    )


@router.get(BASE + "/items/{item_id}", response_class=HTMLResponse)
def item_detail(
    request: Request, session: SessionDep, actor: ModeratorUser, item_id: int
) -> HTMLResponse:
    """One held item: the text, every span, the sender's record, its audit trail and actions."""
    item = moderation_service.get(session=session, item_id=item_id)
    strikes = moderation_service.get_strikes(session=session, sender_id=item.sender_id)
    return render(
        request,
        "console/moderation_item.html",
        {
            "item": item,
            "strikes": strikes,
            "active_strikes": [s for s in strikes if not s.voided],
            "muted": moderation_service.is_muted(session=session, sender_id=item.sender_id),
            "audit": moderation_service.get_audit(session=session, item_id=item_id, limit=200),
            "actions": ACTION_LABELS,
            "statuses": QUEUE_STATUSES,
        },
    )


@router.post(BASE + "/items/{item_id}/{decision}", dependencies=[CsrfChecked])
def decide(
    request: Request,
    session: SessionDep,
    actor: ModeratorUser,
    item_id: int,
    decision: Decision,
    reason: Annotated[str, Form(max_length=500)] = "",
    text: Annotated[str, Form(max_length=5000)] = "",
    next: Annotated[str, Form()] = "",
) -> RedirectResponse:
    """Approve, reject, edit-and-approve or escalate a held item (each written to the audit)."""
    back = safe_next(next) if next else f"{BASE}/items/{item_id}"
    reason = reason.strip()
    try:
        item: ReviewItem
        if decision == "approve":
            item = moderation_service.approve(
                session=session, actor=actor, item_id=item_id, reason=reason
            )
            done = "已通过"
        elif decision == "reject":
            item = moderation_service.reject(
                session=session, actor=actor, item_id=item_id, reason=reason
            )
            done = "已拒绝"
        elif decision == "edit":
            item = moderation_service.edit_and_approve(
                session=session, actor=actor, item_id=item_id, text=text, reason=reason
            )
            done = "已编辑并通过"
        else:
            if not reason:
                raise Invalid("升级需要填写原因", hint="说明为什么需要上级或工作人员处理")
            item = moderation_service.escalate(
                session=session, actor=actor, item_id=item_id, reason=reason
            )
            done = "已升级"
    except YishiError as exc:
        session.rollback()
        return redirect(request, back, error=exc)
    return redirect(request, back, ok=f"消息 #{item.id} {done}")


@router.get(BASE + "/appeals", response_class=HTMLResponse)
def appeals(
    request: Request, session: SessionDep, actor: ModeratorUser, status: str = "open"
) -> HTMLResponse:
    """Senders' appeals against decisions, with the message each is about."""
    if status not in APPEAL_STATUSES:
        status = "open"
    rows = moderation_service.get_appeals(session=session, status=status)
    items = {a.review_item_id: session.get(ReviewItem, a.review_item_id) for a in rows}
    return render(
        request,
        "console/moderation_appeals.html",
        {
            "appeals": rows,
            "items": items,
            "status": status,
            "statuses": APPEAL_STATUSES,
            "queue_statuses": QUEUE_STATUSES,
        },
    )


@router.post(BASE + "/appeals/{appeal_id}/resolve", dependencies=[CsrfChecked])
def resolve_appeal(
    request: Request,
    session: SessionDep,
    actor: ModeratorUser,
    appeal_id: int,
    upheld: Annotated[str, Form()] = "",
    reason: Annotated[str, Form(max_length=500)] = "",
) -> RedirectResponse:
    """Uphold an appeal (approves the message, voids its strike) or deny it."""
    back = f"{BASE}/appeals"
    if upheld not in ("yes", "no"):
        return redirect(request, back, error="请选择申诉成立或驳回")
    try:
        moderation_service.resolve_appeal(
            session=session, actor=actor, appeal_id=appeal_id, upheld=upheld == "yes",
            reason=reason.strip(),
        )
    except YishiError as exc:
        session.rollback()
        return redirect(request, back, error=exc)
    verdict = "成立" if upheld == "yes" else "驳回"
    return redirect(request, back, ok=f"申诉 #{appeal_id} 已{verdict}")


@router.get(BASE + "/mutes", response_class=HTMLResponse)
def mutes(
    request: Request, session: SessionDep, actor: ModeratorUser, sender: str = "",
    show: str = "active",
) -> HTMLResponse:
    """Active (or all) mutes, a sender's strikes, and the mute / lift forms."""
    sender = sender.strip()
    rows = moderation_service.get_mutes(session=session, active_only=show != "all")
    strikes = moderation_service.get_strikes(session=session, sender_id=sender) if sender else []
    muted = moderation_service.is_muted(session=session, sender_id=sender) if sender else False
    return render(
        request,
        "console/moderation_mutes.html",
        {"mutes": rows, "sender": sender, "strikes": strikes, "muted": muted, "show": show},
    )


@router.post(BASE + "/mutes", dependencies=[CsrfChecked])
def add_mute(
    request: Request,
    session: SessionDep,
    actor: ModeratorUser,
    sender_id: Annotated[str, Form(max_length=200)] = "",
    hours: Annotated[str, Form()] = "",
    reason: Annotated[str, Form(max_length=500)] = "",
    next: Annotated[str, Form()] = "",
) -> RedirectResponse:
    """Mute a sender by hand for some hours."""
    sender_id = sender_id.strip()
    back = safe_next(next) if next else f"{BASE}/mutes?sender={quote(sender_id, safe='')}"
    try:
        if not sender_id:
            raise Invalid("请填写要禁言的用户")
        try:
            length = float(hours)
        except ValueError:
            raise Invalid("禁言时长需为数字（小时）") from None
        moderation_service.mute(
            session=session, actor=actor, sender_id=sender_id, hours=length, reason=reason.strip()
        )
    except YishiError as exc:
        session.rollback()
        return redirect(request, back, error=exc)
    return redirect(request, back, ok=f"已禁言 {Directory(session).name(sender_id)} {hours} 小时")


@router.post(BASE + "/mutes/lift", dependencies=[CsrfChecked])
def lift_mute(
    request: Request,
    session: SessionDep,
    actor: ModeratorUser,
    sender_id: Annotated[str, Form(max_length=200)] = "",
    reason: Annotated[str, Form(max_length=500)] = "",
    next: Annotated[str, Form()] = "",
) -> RedirectResponse:
    """Lift a sender's active mutes."""
    sender_id = sender_id.strip()
    back = safe_next(next) if next else f"{BASE}/mutes"
    try:
        if not sender_id:
            raise Invalid("请填写要解除禁言的用户")
        lifted = moderation_service.unmute(
            session=session, actor=actor, sender_id=sender_id, reason=reason.strip()
        )
    except YishiError as exc:
        session.rollback()
        return redirect(request, back, error=exc)
    name = Directory(session).name(sender_id)
    return redirect(request, back, ok=f"已解除 {name} 的 {lifted} 项禁言")


@router.get(BASE + "/audit", response_class=HTMLResponse)
def audit(
    request: Request, session: SessionDep, actor: ModeratorUser, item: int | None = None,
    who: str = "", limit: int = 200,
) -> HTMLResponse:
    """The append-only audit log, newest first, filterable by item and by actor."""
    entries = moderation_service.get_audit(
        session=session, item_id=item, actor_id=who.strip() or None,
        limit=min(max(limit, 1), 1000),
    )
    return render(
        request,
        "console/moderation_audit.html",
        {"entries": entries, "item": item, "who": who.strip(), "actions": ACTION_LABELS},
    )
