"""The engine seam: what the pipeline calls for every screened message, and how it is chosen."""

from __future__ import annotations

import json
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field
from sqlmodel import Session

from yishi.core.auth import Actor
from yishi.core.config import Settings


class EngineReply(BaseModel):
    """One turn's outcome: the reply text and what the engine did (serialised by `chat --json`)."""

    reply: str
    intent: str
    actions: list[dict[str, Any]] = Field(default_factory=list)
    citations: list[dict[str, str]] = Field(default_factory=list)
    engine: Literal["llm", "offline"] = "offline"

    def to_json(self, **kwargs: Any) -> str:
        """The JSON object `yishi chat --json` prints (Chinese kept readable)."""
        return json.dumps(self.model_dump(mode="json"), ensure_ascii=False, **kwargs)


class Engine(Protocol):
    """Answers one resident message; never raises for ordinary failures, hands off instead."""

    def respond(
        self, *, session: Session, actor: Actor, text: str, message_ref: str | None = None
    ) -> EngineReply: ...


def build_engine(settings: Settings) -> Engine:
    """The LLM agent (with the offline engine as its fallback) when an LLM is set, else offline."""
    from yishi.bot.offline import OfflineEngine

    offline = OfflineEngine(settings)
    if not settings.llm_enabled:
        return offline
    from yishi.bot.agent import AgentEngine

    return AgentEngine(settings, fallback=offline)
