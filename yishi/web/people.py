"""People, not ids: how a user id (`web:u1`, `wechat_mp:o…`, `user:3`) reads on a console page."""

from __future__ import annotations

import hashlib

from sqlmodel import Session, select

from yishi.core.auth import Actor
from yishi.core.models import Role, User

_SPECIAL = {
    "system": "系统自动",
    "bot": "议事助手",
    "admin:bootstrap": "管理员（初始令牌）",
    "wecom_robot:group": "企业微信群",
}
_CHANNEL_WORDS = {
    "wechat_mp": "公众号居民",
    "wecom": "企业微信用户",
    "wecom_bot": "企业微信群成员",
    "web": "网页居民",
    "cli": "命令行用户",
}
CHANNEL_LABELS = {
    "wechat_mp": "公众号",
    "wecom": "企业微信",
    "wecom_bot": "企业微信群",
    "wecom_robot": "企业微信群机器人",
    "web": "网页",
    "cli": "命令行",
}
PHONE_ROLES = (Role.staff,)  # admins pass too; moderators judge words, not people's numbers


def mask_phone(phone: str | None) -> str:
    """`139****5678` for a phone number (empty when unknown)."""
    if not phone:
        return ""
    digits = phone.strip()
    return digits[:3] + "****" + digits[-4:] if len(digits) >= 8 else "****"


def may_see_phone(actor: Actor | None) -> bool:
    """Whether this console user's role needs residents' phone numbers (staff, admin)."""
    return actor is not None and actor.has_role(*PHONE_ROLES)


class Directory:
    """Names for user ids, loaded once per page."""

    def __init__(self, session: Session) -> None:
        self._by_id: dict[str, User] = {}
        for user in session.exec(select(User)):
            if user.external_id:
                self._by_id[user.external_id] = user
            self._by_id[f"user:{user.id}"] = user

    def user(self, user_id: str | None) -> User | None:
        """The registered user behind an id, if any."""
        return self._by_id.get(user_id or "")

    def name(self, user_id: str | None) -> str:
        """A display name: the person's name and unit, or a plain description of who it is."""
        if not user_id:
            return "未知"
        if user_id in _SPECIAL:
            return _SPECIAL[user_id]
        user = self._by_id.get(user_id)
        if user is not None:
            return f"{user.name}（{user.unit}）" if user.unit else user.name
        channel = user_id.split(":", 1)[0] if ":" in user_id else ""
        words = _CHANNEL_WORDS.get(channel, "未登记用户")
        # A stable short number tells two unregistered residents apart without their id.
        number = int(hashlib.sha256(user_id.encode()).hexdigest()[:8], 16) % 10000
        return f"{words}（未登记，{number:04d}号）"
