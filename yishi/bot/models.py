"""The bot's tables: every inbound message and every outbound message, with their state."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import NaiveDatetime
from sqlalchemy import JSON, BigInteger, Column, Text
from sqlmodel import Field, SQLModel

from yishi.core.clock import utcnow


class InboundStatus(StrEnum):
    received = "received"  # stored, job enqueued
    processing = "processing"  # a worker holds the lease
    replied = "replied"  # reply produced (delivery is tracked by OutboundMessage)
    held = "held"  # moderation held or blocked it; the sender got a notice
    failed = "failed"  # gave up after retries: visibly flagged for staff


class InboundMessage(SQLModel, table=True):
    """A resident's message, stored before WeChat gets its answer; unique on the dedupe key."""

    id: int | None = Field(default=None, primary_key=True)
    dedupe_key: str = Field(max_length=300, unique=True, index=True)
    channel: str = Field(max_length=20, index=True)
    user_id: str = Field(max_length=200, index=True)  # "<channel>:<sender>"
    sender: str = Field(max_length=200)
    msg_type: str = Field(default="text", max_length=20)
    event: str | None = Field(default=None, max_length=50)
    content: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    msg_id: str | None = Field(default=None, max_length=64)
    # WeChat sends seconds; the web simulator and the CLI send micro- or milliseconds.
    create_time: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    agent_id: str | None = Field(default=None, max_length=50)

    status: InboundStatus = Field(default=InboundStatus.received, index=True)
    attempts: int = 0
    lease_owner: str | None = Field(default=None, max_length=100)
    lease_until: NaiveDatetime | None = None
    passive_polls: int = 0  # passive mode: how many of WeChat's tries have waited on it
    deliver_on_next: bool = False  # passive mode: reply late, on the user's next message

    moderation_action: str | None = Field(default=None, max_length=20)
    moderation_categories: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    reply_text: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    intent: str | None = Field(default=None, max_length=30)
    engine: str | None = Field(default=None, max_length=10)
    actions: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    citations: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))

    created_at: NaiveDatetime = Field(default_factory=utcnow, index=True)
    updated_at: NaiveDatetime = Field(default_factory=utcnow)


class OutboundStatus(StrEnum):
    pending = "pending"  # waiting for a worker to send it
    sent = "sent"  # accepted by the channel (or handed over in the HTTP response)
    deferred = "deferred"  # cannot be sent now (passive mode, quota): goes with the next message
    failed = "failed"  # undeliverable (e.g. 45015 window expired): visibly flagged


class OutboundMessage(SQLModel, table=True):
    """A message to a resident: a reply, a moderation notice, or an issue update."""

    id: int | None = Field(default=None, primary_key=True)
    inbound_id: int | None = Field(default=None, foreign_key="inboundmessage.id", index=True)
    channel: str = Field(max_length=20)
    user_id: str = Field(max_length=200, index=True)
    kind: str = Field(default="reply", max_length=20)  # reply | notice | notify
    text: str = Field(sa_column=Column(Text, nullable=False))
    status: OutboundStatus = Field(default=OutboundStatus.pending, index=True)
    attempts: int = 0
    errcode: int | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    next_attempt_at: NaiveDatetime | None = None
    # Past this the channel would refuse it (WeChat's 48 h customer-service window): it expires
    # and is listed for staff instead of being retried.
    deadline_at: NaiveDatetime | None = None
    # The send lease: a worker claims the row before calling the API, so no two send it at once.
    lease_owner: str | None = Field(default=None, max_length=100)
    lease_until: NaiveDatetime | None = None
    # Set in the claim's commit, cleared with the recorded answer: when a lease runs out with
    # this still set, the API may or may not have taken the message (see reconcile).
    send_started_at: NaiveDatetime | None = None
    created_at: NaiveDatetime = Field(default_factory=utcnow)
    sent_at: NaiveDatetime | None = None


class InboundRead(SQLModel):
    id: int
    channel: str
    user_id: str
    msg_type: str
    content: str
    status: InboundStatus
    attempts: int
    reply_text: str | None
    intent: str | None
    engine: str | None
    error: str | None
    created_at: NaiveDatetime


class OutboundRead(SQLModel):
    id: int
    inbound_id: int | None
    channel: str
    user_id: str
    kind: str
    text: str
    status: OutboundStatus
    attempts: int
    errcode: int | None
    last_error: str | None
    created_at: NaiveDatetime
    sent_at: NaiveDatetime | None
    deadline_at: NaiveDatetime | None = None
