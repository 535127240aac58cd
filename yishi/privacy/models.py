"""Privacy tables: the privacy audit (what kind of thing happened, by whom, never to what) and
which residents have been shown the data notice."""

from __future__ import annotations

from typing import Any

from pydantic import NaiveDatetime
from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from yishi.core.clock import utcnow


class PrivacyEvent(SQLModel, table=True):
    """An erasure, export or retention purge: who did it and how many rows, never whose data."""

    __tablename__ = "privacy_event"

    id: int | None = Field(default=None, primary_key=True)
    at: NaiveDatetime = Field(default_factory=utcnow, index=True)
    action: str = Field(max_length=30)  # erase | export | retention
    # "resident" when residents act on their own data (their id would undo the erasure),
    # a staff member's id, or "system" for the periodic sweep.
    actor: str = Field(max_length=200)
    counts: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class PrivacyNotice(SQLModel, table=True):
    """A resident who has been shown the notice of what is stored and how to see or delete it."""

    __tablename__ = "privacy_notice"

    user_id: str = Field(primary_key=True, max_length=200)
    shown_at: NaiveDatetime = Field(default_factory=utcnow)
