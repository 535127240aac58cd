"""Shapes that cross the bot's boundaries: an incoming message from any channel."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Channel = Literal["wechat_mp", "wecom", "wecom_aibot", "web", "cli"]


class IncomingMessage(BaseModel):
    """One message from a resident, already verified, decrypted and parsed by its channel."""

    channel: Channel
    sender: str  # OpenID / WeCom UserID / web or CLI user id (without the channel prefix)
    msg_type: str = "text"  # text | voice | event | image | location | link | ...
    content: str = ""  # text, or WeChat's speech Recognition for voice
    msg_id: str | None = None
    create_time: int = 0
    event: str | None = None
    to_user: str = ""
    agent_id: str | None = None
    raw: dict[str, Any] = Field(default_factory=dict)

    @property
    def user_id(self) -> str:
        """The channel identity used across domains, e.g. `wechat_mp:oABC`."""
        return f"{self.channel}:{self.sender}"

    @property
    def dedupe_key(self) -> str:
        """`MsgId` for messages; sender + CreateTime for events (WeChat's own rule)."""
        if self.msg_id:
            return f"{self.channel}:msg:{self.msg_id}"
        return f"{self.channel}:evt:{self.sender}:{self.create_time}:{self.event or self.msg_type}"


class Accepted(BaseModel):
    inbound_id: int
    duplicate: bool


class ChatTurn(BaseModel):
    """What one turn produced (the `yishi chat --json` shape plus bookkeeping)."""

    reply: str
    intent: str = ""
    actions: list[dict[str, Any]] = Field(default_factory=list)
    citations: list[dict[str, Any]] = Field(default_factory=list)
    engine: str = "offline"
    status: str = ""
    inbound_id: int | None = None
    moderation: dict[str, Any] | None = None


class ChatRequest(BaseModel):
    user: str = Field(default="u1", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    text: str = Field(min_length=1, max_length=4000)
