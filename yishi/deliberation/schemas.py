"""API and service shapes for deliberation: issues, threads, summaries, proposals."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from yishi.deliberation.models import Issue

VoteValue = Literal["agree", "disagree", "pass"]
VOTE_VALUES: dict[str, int] = {"agree": 1, "disagree": -1, "pass": 0}
VOTE_NAMES: dict[int, str] = {v: k for k, v in VOTE_VALUES.items()}

STATUS_LABELS: dict[str, str] = {
    "reported": "已上报",
    "assigned": "已派单",
    "in_progress": "处理中",
    "resolved": "已解决",
    "closed": "已关闭",
    "rejected": "未受理",
}


@dataclass
class IssueRecorded:
    """What `record_issue` did: the issue, whether it joined an open one, what is still missing."""

    issue: Issue
    joined_existing: bool
    missing: list[str] = field(default_factory=list)
    notice: str = ""  # a reply the bot can send the resident as is


# --- issues -------------------------------------------------------------------------------


class IssueCreate(BaseModel):
    text: str = Field(min_length=1, max_length=2000)
    category: str | None = None
    location: str | None = Field(default=None, max_length=200)
    urgency: str | None = None
    media: list[str] = Field(default_factory=list, max_length=9)


class IssueRead(BaseModel):
    id: int
    reporter_id: str
    text: str
    category: str
    location: str | None
    building: str | None
    urgency: str
    media: list[str]
    status: str
    status_label: str
    reject_reason: str | None
    responsible_party: str | None
    due_at: datetime | None
    overdue: bool
    supporter_count: int
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None


class IssueRecordedRead(BaseModel):
    issue: IssueRead | None
    joined_existing: bool
    missing: list[str]
    notice: str
    held: bool = False


class IssueEventRead(BaseModel):
    kind: str
    actor_id: str | None
    from_status: str | None
    to_status: str | None
    note: str
    at: datetime


class IssueStatusChange(BaseModel):
    status: str
    note: str = Field(default="", max_length=1000)
    reason: str | None = Field(default=None, max_length=1000)


class IssueAssign(BaseModel):
    party: str = Field(min_length=1, max_length=100)
    due_at: datetime | None = None
    note: str = Field(default="", max_length=1000)


class ResponsibilityRead(BaseModel):
    category: str
    label: str
    party: str
    sla_hours: int
    urgent_sla_hours: int | None
    note: str
    source: str


class ResponsibilityWrite(BaseModel):
    party: str = Field(min_length=1, max_length=100)
    sla_hours: int = Field(gt=0)
    urgent_sla_hours: int | None = Field(default=None, gt=0)
    note: str = Field(default="", max_length=500)


# --- threads --------------------------------------------------------------------------------


class ThreadCreate(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    question: str = Field(min_length=1, max_length=2000)
    statements: list[str] = Field(default_factory=list, max_length=100)


class ThreadRead(BaseModel):
    id: int
    title: str
    question: str
    status: str
    created_at: datetime


class MessageCreate(BaseModel):
    text: str = Field(min_length=1, max_length=2000)
    as_statement: bool = False


class MessageRead(BaseModel):
    id: int | None
    thread_id: int
    text: str
    visible: bool
    held: bool = False
    notice: str = ""
    statement_id: int | None = None


class StatementRead(BaseModel):
    id: int
    thread_id: int
    text: str
    agree: int
    disagree: int
    passed: int


class VoteCreate(BaseModel):
    value: VoteValue


class VoteRead(BaseModel):
    statement_id: int
    value: VoteValue
    changed: bool


# --- summaries ------------------------------------------------------------------------------


class Quote(BaseModel):
    ref: str  # "m12" (message) or "s5" (statement)
    text: str


class Claim(BaseModel):
    text: str
    cites: list[str] = Field(default_factory=list)
    quotes: list[Quote] = Field(default_factory=list)


class GroupView(BaseModel):
    group: str
    size: int
    view: Claim
    representative: list[Claim] = Field(default_factory=list)


class Participation(BaseModel):
    participants: int
    voters: int
    messages: int
    statements: int
    votes: int


class RejectedClaim(BaseModel):
    section: str
    claim: Claim
    reason: str


class ThreadSummary(BaseModel):
    thread_id: int
    title: str
    question: str
    participation: Participation
    groups: list[GroupView] = Field(default_factory=list)
    consensus: list[Claim] = Field(default_factory=list)
    divisive: list[Claim] = Field(default_factory=list)
    open_questions: list[Claim] = Field(default_factory=list)
    next_steps: list[Claim] = Field(default_factory=list)
    engine: Literal["offline", "llm"] = "offline"
    grouping_note: str = ""  # why no (or few) opinion groups are shown
    rejected: list[RejectedClaim] = Field(default_factory=list)
    summary_id: int | None = None


class SummariseRequest(BaseModel):
    thread_id: int | None = None
    topic: str | None = Field(default=None, max_length=200)


# --- proposals ------------------------------------------------------------------------------


class ProposalDraft(BaseModel):
    summary_id: int | None = None
    thread_id: int | None = None
    proposal_type: str = "consultation"
    title: str | None = Field(default=None, max_length=200)


class ProposalEdit(BaseModel):
    title: str | None = Field(default=None, max_length=200)
    background: str | None = None
    options: list[dict[str, Any]] | None = None
    responsible_parties: list[dict[str, Any]] | None = None
    timetable: list[dict[str, Any]] | None = None
    tasks: list[dict[str, Any]] | None = None
    proposal_type: str | None = None


class ProposalRead(BaseModel):
    id: int
    thread_id: int | None
    summary_id: int | None
    title: str
    background: str
    options: list[dict[str, Any]]
    responsible_parties: list[dict[str, Any]]
    timetable: list[dict[str, Any]]
    tasks: list[dict[str, Any]]
    proposal_type: str
    status: str
    result: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class ProposalStatusChange(BaseModel):
    status: str
    note: str = Field(default="", max_length=2000)


class ProposalNote(BaseModel):
    note: str = Field(min_length=1, max_length=2000)


class BallotCreate(BaseModel):
    choice: Literal["agree", "disagree", "abstain"]


class OwnerUnitWrite(BaseModel):
    unit: str = Field(min_length=1, max_length=100)
    owner_id: str = Field(min_length=1, max_length=200)
    area_m2: float = Field(gt=0)
