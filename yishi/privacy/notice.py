"""The data notice residents get on first contact and on subscribing; unsubscribe forgets."""

from __future__ import annotations

from sqlmodel import Session

from yishi.core.clock import utcnow
from yishi.core.config import get_settings
from yishi.privacy.models import PrivacyNotice

NOTICE = (
    "【个人信息说明】为了答复和办理您的事项，我们会保存您发来的消息、我们的答复和您反映的问题；"
    "消息原文保存 {days} 天后自动删除。回复“导出我的信息”可查看我们保存的内容，"
    "回复“删除我的信息”可删除您的全部个人信息。"
)
_CHANNELS = {"wechat_mp", "wecom"}


def first_contact_notice(*, session: Session, user_id: str, subscribe: bool = False) -> str | None:
    """The data notice the first time a WeChat / WeCom resident writes, or whenever they
    subscribe; None when they have seen it (the web simulator and CLI get none)."""
    if user_id.split(":", 1)[0] not in _CHANNELS:
        return None
    shown = session.get(PrivacyNotice, user_id)
    if shown is not None and not subscribe:
        return None
    if shown is None:
        session.add(PrivacyNotice(user_id=user_id))
    else:
        shown.shown_at = utcnow()
        session.add(shown)
    session.flush()
    return NOTICE.format(days=get_settings().retention_days)


def on_unsubscribe(*, session: Session, user_id: str) -> int:
    """A resident unfollowed: drop their conversation memory; the turns removed."""
    from yishi.bot import memory as memory_service

    return memory_service.clear(session=session, user_id=user_id)
