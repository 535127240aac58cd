"""Moderation tables: held items, the append-only audit log, strikes, mutes and appeals."""

from __future__ import annotations

from typing import Any

from pydantic import NaiveDatetime
from sqlalchemy import DDL, JSON, Column, UniqueConstraint, event
from sqlmodel import Field, SQLModel

from yishi.core.clock import utcnow


class ReviewItem(SQLModel, table=True):
    """A message held for moderators: the original, the verdict and what was decided."""

    __tablename__ = "moderation_review_item"

    id: int | None = Field(default=None, primary_key=True)
    created_at: NaiveDatetime = Field(default_factory=utcnow, index=True)
    sender_id: str = Field(max_length=200, index=True)
    source: str = Field(max_length=50)  # message | reply | thread | group | summary
    source_ref: str | None = Field(default=None, max_length=200)
    text: str
    redacted: str = ""
    action: str = Field(max_length=10)  # the screening action: review | block
    categories: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    score: float = 0.0
    spans: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    reasons: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="pending", max_length=20, index=True)
    final_text: str | None = None  # what may be posted after approval (edited or redacted)
    decided_by: str | None = Field(default=None, max_length=200)
    decided_at: NaiveDatetime | None = None
    decision_reason: str | None = None


class ModerationDecision(SQLModel, table=True):
    """One entry of the append-only audit log: who did what to which item, and why."""

    __tablename__ = "moderation_decision"

    id: int | None = Field(default=None, primary_key=True)
    created_at: NaiveDatetime = Field(default_factory=utcnow, index=True)
    review_item_id: int | None = Field(
        default=None, foreign_key="moderation_review_item.id", index=True
    )
    actor_id: str = Field(max_length=200)  # "system" for automatic decisions
    action: str = Field(max_length=30)
    reason: str = ""
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # Hash chain (see yishi.moderation.audit): this row's content hash covers prev_hash.
    prev_hash: str = Field(default="", max_length=64)
    row_hash: str = Field(default="", max_length=64)


class AuditSubject(SQLModel, table=True):
    """The pseudonym under which the audit names a resident.

    The audit log is append-only, so it never holds a resident's id in clear: entries name the
    pseudonym, and erasing a resident deletes this row, which unlinks every entry at once.
    """

    __tablename__ = "moderation_audit_subject"

    pseudonym: str = Field(primary_key=True, max_length=40)
    sender_id: str = Field(max_length=200, unique=True, index=True)


class Strike(SQLModel, table=True):
    """A strike against a sender (a blocked message or a rejected one)."""

    __tablename__ = "moderation_strike"

    id: int | None = Field(default=None, primary_key=True)
    created_at: NaiveDatetime = Field(default_factory=utcnow, index=True)
    sender_id: str = Field(max_length=200, index=True)
    review_item_id: int | None = Field(default=None, foreign_key="moderation_review_item.id")
    reason: str = ""
    voided: bool = False  # set when an appeal is upheld


class Mute(SQLModel, table=True):
    """A temporary mute: the sender's messages are not posted until `until`."""

    __tablename__ = "moderation_mute"

    id: int | None = Field(default=None, primary_key=True)
    created_at: NaiveDatetime = Field(default_factory=utcnow)
    sender_id: str = Field(max_length=200, index=True)
    until: NaiveDatetime = Field(index=True)
    reason: str = ""
    created_by: str = Field(default="system", max_length=200)
    lifted_at: NaiveDatetime | None = None
    lifted_by: str | None = Field(default=None, max_length=200)


class Appeal(SQLModel, table=True):
    """A sender's appeal against one decision (at most one per review item)."""

    __tablename__ = "moderation_appeal"
    __table_args__ = (UniqueConstraint("review_item_id", name="uq_moderation_appeal_item"),)

    id: int | None = Field(default=None, primary_key=True)
    created_at: NaiveDatetime = Field(default_factory=utcnow)
    review_item_id: int = Field(foreign_key="moderation_review_item.id", index=True)
    sender_id: str = Field(max_length=200, index=True)
    reason: str
    status: str = Field(default="open", max_length=20)  # open | upheld | denied
    resolved_by: str | None = Field(default=None, max_length=200)
    resolved_at: NaiveDatetime | None = None
    resolution_reason: str | None = None


class AppendOnlyViolation(RuntimeError):
    """Raised when code tries to change or delete an audit-log entry."""


@event.listens_for(ModerationDecision, "before_update")
def _refuse_update(*_: Any) -> None:
    raise AppendOnlyViolation("the moderation audit log is append-only")


@event.listens_for(ModerationDecision, "before_delete")
def _refuse_delete(*_: Any) -> None:
    raise AppendOnlyViolation("the moderation audit log is append-only")


# The database refuses UPDATE and DELETE too (raw SQL, bulk updates): the same triggers as the
# 0006_house migration, here for schemas made by `create_all` in tests of logic.
AUDIT_TABLE = "moderation_decision"
SQLITE_AUDIT_TRIGGERS = tuple(
    f"CREATE TRIGGER IF NOT EXISTS {AUDIT_TABLE}_no_{verb.lower()} BEFORE {verb} ON {AUDIT_TABLE} "
    f"BEGIN SELECT RAISE(ABORT, 'the moderation audit log is append-only'); END"
    for verb in ("UPDATE", "DELETE")
)
POSTGRES_AUDIT_TRIGGERS = (
    "CREATE OR REPLACE FUNCTION yishi_audit_append_only() RETURNS trigger AS $$ BEGIN "
    "RAISE EXCEPTION 'the moderation audit log is append-only'; END $$ LANGUAGE plpgsql",
    f"CREATE TRIGGER {AUDIT_TABLE}_append_only BEFORE UPDATE OR DELETE ON {AUDIT_TABLE} "
    "FOR EACH ROW EXECUTE FUNCTION yishi_audit_append_only()",
)
for _sql in SQLITE_AUDIT_TRIGGERS:
    event.listen(ModerationDecision.__table__, "after_create",  # type: ignore[attr-defined]
                 DDL(_sql).execute_if(dialect="sqlite"))
for _sql in POSTGRES_AUDIT_TRIGGERS:
    event.listen(ModerationDecision.__table__, "after_create",  # type: ignore[attr-defined]
                 DDL(_sql).execute_if(dialect="postgresql"))
