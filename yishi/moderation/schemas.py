"""Moderation shapes: the Verdict every caller gets, spans, signals and the review API bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

Action = Literal["allow", "review", "block"]

CATEGORIES = (
    "insult",
    "harassment",
    "threat",
    "hate",
    "sexual",
    "doxxing",
    "self_pii",
    "spam_ad",
    "fraud",
    "gambling",
    "incitement",
    "prompt_injection",
)


class Span(BaseModel):
    """A matched stretch of the original text: [start, end) offsets, its category and text."""

    start: int
    end: int
    category: str
    text: str


class Verdict(BaseModel):
    """The screening decision for one text."""

    action: Action = "allow"
    categories: list[str] = Field(default_factory=list)
    score: float = 0.0
    spans: list[Span] = Field(default_factory=list)
    redacted: str = ""
    reasons: list[str] = Field(default_factory=list)


class Signal(BaseModel):
    """One detector's finding before the policy decides (offsets into the original text)."""

    category: str
    score: float
    start: int = 0
    end: int = 0
    source: str = ""
    reason: str = ""
    redact: bool = False  # personal data: mask it in `redacted`


# --- review queue API ---

ReviewStatus = Literal["pending", "approved", "rejected", "escalated"]


class ReviewDecisionIn(BaseModel):
    """A moderator's decision on a held item."""

    reason: str = Field(default="", max_length=500)


class ReviewEditIn(BaseModel):
    """Edit-and-approve: the new text replaces the held one (it is screened again)."""

    text: str = Field(min_length=1, max_length=5000)
    reason: str = Field(default="", max_length=500)


class EscalateIn(BaseModel):
    """Escalate a held item; a reason is required."""

    reason: str = Field(min_length=1, max_length=500)


class AppealIn(BaseModel):
    """A sender's appeal against one decision."""

    reason: str = Field(min_length=1, max_length=1000)


class AppealResolveIn(BaseModel):
    """A moderator's ruling on an appeal."""

    upheld: bool
    reason: str = Field(default="", max_length=500)


class ScreenIn(BaseModel):
    """Text to screen on demand (moderator tool)."""

    text: str = Field(max_length=100_000)
    context: Literal["message", "reply"] = "message"


class ReviewItemRead(BaseModel):
    """A held item as the console shows it."""

    id: int
    created_at: datetime
    sender_id: str
    source: str
    source_ref: str | None
    text: str
    redacted: str
    action: str
    categories: list[str]
    score: float
    spans: list[dict[str, object]]
    reasons: list[str]
    status: str
    final_text: str | None
    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str | None
