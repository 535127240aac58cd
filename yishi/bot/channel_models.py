"""Tables of the newer channels: WeCom 智能机器人 conversations and group bindings, report media."""

from __future__ import annotations

from enum import StrEnum

from pydantic import NaiveDatetime
from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel

from yishi.core.clock import utcnow


class StreamState(StrEnum):
    open = "open"  # the answer is not ready; WeCom keeps refreshing the stream
    ready = "ready"  # the answer is waiting for WeCom's next refresh
    answered = "answered"  # handed over in a stream reply (finish = true)
    posting = "posting"  # being posted through response_url (claimed by one process)
    posted = "posted"  # delivered through response_url
    failed = "failed"  # could not be delivered: listed for staff with the reason


class AibotStream(SQLModel, table=True):
    """One resident message to the AI bot and how its single answer gets back to WeCom.

    Stored before the message is accepted (keyed like the inbound message), so the worker that
    answers it always finds where the answer goes, whichever process WeCom's retries reach.
    """

    id: int | None = Field(default=None, primary_key=True)
    dedupe_key: str = Field(max_length=300, unique=True, index=True)
    stream_id: str = Field(max_length=64, unique=True, index=True)
    user_id: str = Field(max_length=200, index=True)  # "wecom_aibot:<userid>"
    chat_type: str = Field(default="single", max_length=10)  # single | group
    chat_id: str | None = Field(default=None, max_length=128, index=True)
    # A one-use URL valid for an hour; a credential of sorts, so never logged.
    response_url: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    state: StreamState = Field(default=StreamState.open, index=True)
    reply_text: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    error: str | None = Field(default=None, max_length=500)
    created_at: NaiveDatetime = Field(default_factory=utcnow, index=True)
    refreshed_at: NaiveDatetime | None = None  # WeCom's last stream refresh
    ready_at: NaiveDatetime | None = None
    done_at: NaiveDatetime | None = None


class AibotGroup(SQLModel, table=True):
    """A WeCom group chat bound to a community and, optionally, a discussion thread."""

    chat_id: str = Field(primary_key=True, max_length=128)
    community_id: int | None = Field(default=None, index=True)
    thread_id: int | None = Field(default=None, index=True)
    name: str = Field(default="", max_length=100)
    created_by: str = Field(default="", max_length=200)
    created_at: NaiveDatetime = Field(default_factory=utcnow)


class ReportMedia(SQLModel, table=True):
    """A photo or a location a resident sent, and the report it belongs to (None: waiting)."""

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(max_length=200, index=True)
    inbound_id: int | None = Field(default=None, index=True)
    kind: str = Field(max_length=10)  # photo | location
    sha256: str | None = Field(default=None, max_length=64, index=True)
    content_type: str | None = Field(default=None, max_length=30)
    size: int = 0
    label: str | None = Field(default=None, max_length=200)  # location: WeChat's place label
    latitude: float | None = None
    longitude: float | None = None
    issue_id: int | None = Field(default=None, index=True)
    created_at: NaiveDatetime = Field(default_factory=utcnow, index=True)
    attached_at: NaiveDatetime | None = None
