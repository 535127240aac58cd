"""Deliberation tables: issues and their timeline, the responsibility list, threads, statements,
votes, stored summaries, proposals with their updates, and owners' units and ballots."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import NaiveDatetime
from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from yishi.core.clock import utcnow

# Timestamps are naive UTC (docs/CONTRACTS.md); `NaiveDatetime` keeps SQLModel from mapping them
# to its timezone-aware column type, which refuses naive values.


class IssueStatus(StrEnum):
    reported = "reported"
    assigned = "assigned"
    in_progress = "in_progress"
    resolved = "resolved"
    closed = "closed"
    rejected = "rejected"


OPEN_ISSUE_STATUSES = (IssueStatus.reported, IssueStatus.assigned, IssueStatus.in_progress)


class Urgency(StrEnum):
    low = "low"
    normal = "normal"
    high = "high"
    urgent = "urgent"


class Category(StrEnum):
    repairs = "repairs"
    cleaning = "cleaning"
    security = "security"
    parking = "parking"
    noise = "noise"
    pets = "pets"
    garbage = "garbage"
    greenery = "greenery"
    fire_safety = "fire_safety"
    neighbour_dispute = "neighbour_dispute"
    elderly_care = "elderly_care"
    illegal_construction = "illegal_construction"
    fees = "fees"
    other = "other"


class Issue(SQLModel, table=True):
    """A resident's report: what, where, how urgent, who handles it and by when."""

    id: int | None = Field(default=None, primary_key=True)
    reporter_id: str = Field(max_length=200, index=True)
    reporter_channel: str = Field(default="web", max_length=30)
    text: str  # screened, personal data redacted
    category: str = Field(default=Category.other.value, max_length=40, index=True)
    location: str | None = Field(default=None, max_length=200)
    location_key: str | None = Field(default=None, max_length=200, index=True)
    building: str | None = Field(default=None, max_length=40, index=True)
    urgency: str = Field(default=Urgency.normal.value, max_length=20)
    media: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    status: str = Field(default=IssueStatus.reported.value, max_length=20, index=True)
    reject_reason: str | None = None
    responsible_party: str | None = Field(default=None, max_length=100, index=True)
    due_at: NaiveDatetime | None = Field(default=None, index=True)
    overdue_flagged_at: NaiveDatetime | None = None
    supporter_count: int = 0
    created_at: NaiveDatetime = Field(default_factory=utcnow)
    updated_at: NaiveDatetime = Field(default_factory=utcnow)
    resolved_at: NaiveDatetime | None = None
    merged_into_id: int | None = Field(default=None, foreign_key="issue.id")


class IssueSupporter(SQLModel, table=True):
    """A resident whose later report of the same problem joined an open issue."""

    __table_args__ = (UniqueConstraint("issue_id", "user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    issue_id: int = Field(foreign_key="issue.id", index=True)
    user_id: str = Field(max_length=200, index=True)
    channel: str = Field(default="web", max_length=30)
    text: str = ""
    created_at: NaiveDatetime = Field(default_factory=utcnow)


class IssueEvent(SQLModel, table=True):
    """One line of an issue's timeline (reported, routed, status change, supporter, overdue)."""

    id: int | None = Field(default=None, primary_key=True)
    issue_id: int = Field(foreign_key="issue.id", index=True)
    kind: str = Field(max_length=30)
    actor_id: str | None = Field(default=None, max_length=200)
    from_status: str | None = Field(default=None, max_length=20)
    to_status: str | None = Field(default=None, max_length=20)
    note: str = ""
    at: NaiveDatetime = Field(default_factory=utcnow)


class ResponsibilityRule(SQLModel, table=True):
    """An admin's edit of the responsibility list; overrides the file entry for its category."""

    category: str = Field(primary_key=True, max_length=40)
    party: str = Field(max_length=100)
    sla_hours: int
    urgent_sla_hours: int | None = None
    note: str = ""
    updated_by: str | None = Field(default=None, max_length=200)
    updated_at: NaiveDatetime = Field(default_factory=utcnow)


class ThreadStatus(StrEnum):
    open = "open"
    closed = "closed"


class Thread(SQLModel, table=True):
    """A discussion (议题) around one question."""

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=200)
    question: str
    status: str = Field(default=ThreadStatus.open.value, max_length=20, index=True)
    created_by: str = Field(max_length=200)
    created_at: NaiveDatetime = Field(default_factory=utcnow)
    closed_at: NaiveDatetime | None = None


class ThreadMessage(SQLModel, table=True):
    """A resident's message in a thread (text screened; held messages stay invisible)."""

    id: int | None = Field(default=None, primary_key=True)
    thread_id: int = Field(foreign_key="thread.id", index=True)
    author_id: str = Field(max_length=200, index=True)
    text: str
    visible: bool = True
    created_at: NaiveDatetime = Field(default_factory=utcnow)


class Statement(SQLModel, table=True):
    """A short statement that participants vote on."""

    id: int | None = Field(default=None, primary_key=True)
    thread_id: int = Field(foreign_key="thread.id", index=True)
    author_id: str = Field(max_length=200)
    text: str = Field(max_length=500)
    message_id: int | None = Field(default=None, foreign_key="threadmessage.id")
    visible: bool = True
    hidden_reason: str | None = Field(default=None, max_length=500)
    created_at: NaiveDatetime = Field(default_factory=utcnow)


class Vote(SQLModel, table=True):
    """One participant's current vote on one statement (+1 agree, -1 disagree, 0 pass)."""

    __table_args__ = (UniqueConstraint("statement_id", "voter_id"),)

    id: int | None = Field(default=None, primary_key=True)
    statement_id: int = Field(foreign_key="statement.id", index=True)
    thread_id: int = Field(foreign_key="thread.id", index=True)
    voter_id: str = Field(max_length=200, index=True)
    value: int
    created_at: NaiveDatetime = Field(default_factory=utcnow)
    updated_at: NaiveDatetime = Field(default_factory=utcnow)


class SummaryRecord(SQLModel, table=True):
    """A summary that passed the citation check, kept so proposals can be drafted from it."""

    id: int | None = Field(default=None, primary_key=True)
    thread_id: int = Field(foreign_key="thread.id", index=True)
    engine: str = Field(default="offline", max_length=20)
    content: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    created_by: str = Field(max_length=200)
    created_at: NaiveDatetime = Field(default_factory=utcnow)


class ProposalStatus(StrEnum):
    draft = "draft"
    voting = "voting"
    adopted = "adopted"
    rejected = "rejected"
    in_progress = "in_progress"
    done = "done"


class Proposal(SQLModel, table=True):
    """An actionable proposal with its 责任表 / 时间表 / 任务表 and its voting rule."""

    id: int | None = Field(default=None, primary_key=True)
    thread_id: int | None = Field(default=None, foreign_key="thread.id", index=True)
    summary_id: int | None = Field(default=None, foreign_key="summaryrecord.id")
    title: str = Field(max_length=200)
    background: str = ""
    options: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    responsible_parties: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    timetable: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    tasks: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    proposal_type: str = Field(default="consultation", max_length=40)
    status: str = Field(default=ProposalStatus.draft.value, max_length=20, index=True)
    result: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    created_by: str = Field(max_length=200)
    created_at: NaiveDatetime = Field(default_factory=utcnow)
    updated_at: NaiveDatetime = Field(default_factory=utcnow)


class ProposalUpdate(SQLModel, table=True):
    """A status change or progress note on a proposal."""

    id: int | None = Field(default=None, primary_key=True)
    proposal_id: int = Field(foreign_key="proposal.id", index=True)
    actor_id: str = Field(max_length=200)
    from_status: str | None = Field(default=None, max_length=20)
    to_status: str | None = Field(default=None, max_length=20)
    note: str = ""
    at: NaiveDatetime = Field(default_factory=utcnow)


class OwnerUnit(SQLModel, table=True):
    """A recorded exclusive part (专有部分) with its owner and area, for art. 278 counting."""

    id: int | None = Field(default=None, primary_key=True)
    unit: str = Field(max_length=100, unique=True, index=True)
    owner_id: str = Field(max_length=200, index=True)
    area_m2: float


class ProposalBallot(SQLModel, table=True):
    """One owner's ballot on a proposal (changeable until voting closes)."""

    __table_args__ = (UniqueConstraint("proposal_id", "voter_id"),)

    id: int | None = Field(default=None, primary_key=True)
    proposal_id: int = Field(foreign_key="proposal.id", index=True)
    voter_id: str = Field(max_length=200)
    choice: str = Field(max_length=20)  # agree | disagree | abstain
    at: NaiveDatetime = Field(default_factory=utcnow)


HELD_ISSUE_REF = "held_issue:"  # review item source_ref → deliberation_held_issue.id


class HeldIssue(SQLModel, table=True):
    """The fields of a report held for moderation (category, place, urgency, photos, channel),
    kept whole until a moderator releases it; the review item points here by id."""

    __tablename__ = "deliberation_held_issue"

    id: int | None = Field(default=None, primary_key=True)
    created_at: NaiveDatetime = Field(default_factory=utcnow)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
