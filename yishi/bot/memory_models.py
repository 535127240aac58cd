"""Conversation memory tables: each user's recent turns, a rolling summary and pending state."""

from __future__ import annotations

from typing import Any

from pydantic import NaiveDatetime
from sqlalchemy import JSON, Column, Text
from sqlmodel import Field, SQLModel

from yishi.core.clock import utcnow


class ConversationTurn(SQLModel, table=True):
    """One message in a user's conversation with the bot (user or assistant side)."""

    __tablename__ = "bot_conversation_turn"

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(max_length=200, index=True)
    speaker: str = Field(max_length=10)  # user | assistant
    text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    intent: str | None = Field(default=None, max_length=30)
    engine: str | None = Field(default=None, max_length=10)
    message_ref: str | None = Field(default=None, max_length=100)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    created_at: NaiveDatetime = Field(default_factory=utcnow, index=True)


class ConversationState(SQLModel, table=True):
    """Per-user rolling summary of older turns and the pending multi-turn step (if any)."""

    __tablename__ = "bot_conversation_state"

    user_id: str = Field(primary_key=True, max_length=200)
    summary: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    pending: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    updated_at: NaiveDatetime = Field(default_factory=utcnow, index=True)


class Handoff(SQLModel, table=True):
    """A request for a human (转人工) that staff must pick up; kept until someone resolves it."""

    __tablename__ = "bot_handoff"

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(max_length=200, index=True)
    channel: str = Field(default="web", max_length=30)
    reason: str = Field(default="", max_length=500)
    text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    message_ref: str | None = Field(default=None, max_length=100)
    resolved: bool = Field(default=False, index=True)
    created_at: NaiveDatetime = Field(default_factory=utcnow, index=True)
