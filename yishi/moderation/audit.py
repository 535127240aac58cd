"""The audit log's hash chain: each entry stores the hash of its content and of the entry before
it, so an entry changed or slipped in behind the application's back is found by `verify`."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, col, select

from yishi.moderation.models import AuditSubject, ModerationDecision

GENESIS = ""  # prev_hash of the first entry
ERASED_SUBJECT = "erased"  # what an entry names once its resident has been erased


def subject_ref(*, session: Session, sender_id: str) -> str:
    """The pseudonym the audit uses for `sender_id` (created on first use)."""
    row = session.exec(select(AuditSubject).where(AuditSubject.sender_id == sender_id)).first()
    if row is None:
        row = AuditSubject(pseudonym="s_" + secrets.token_hex(8), sender_id=sender_id)
        session.add(row)
        session.flush()
    return row.pseudonym


def forget_subject(*, session: Session, sender_id: str) -> str | None:
    """Unlink a resident from every audit entry (erasure); the pseudonym that was dropped."""
    row = session.exec(select(AuditSubject).where(AuditSubject.sender_id == sender_id)).first()
    if row is None:
        return None
    session.delete(row)
    return row.pseudonym


def resolved(*, session: Session, entries: list[ModerationDecision]) -> list[ModerationDecision]:
    """Detached copies of `entries` whose `subject` pseudonym is read back as `sender_id`."""
    refs = {e.details.get("subject") for e in entries if (e.details or {}).get("subject")}
    names = {
        r.pseudonym: r.sender_id
        for r in session.exec(select(AuditSubject).where(col(AuditSubject.pseudonym).in_(refs)))
    } if refs else {}
    out = []
    for e in entries:
        details = dict(e.details or {})
        ref = details.pop("subject", None)
        if ref is not None:
            details["sender_id"] = names.get(ref, ERASED_SUBJECT)
        out.append(ModerationDecision.model_validate({**e.model_dump(), "details": details}))
    return out


def content_hash(*, prev_hash: str, created_at: Any, review_item_id: int | None, actor_id: str,
                 action: str, reason: str, details: dict[str, Any]) -> str:
    """SHA-256 over an entry's content and the previous entry's hash."""
    stamp = created_at.isoformat(timespec="microseconds") if created_at is not None else ""
    body = json.dumps([prev_hash, stamp, review_item_id, actor_id, action, reason, details],
                      ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _hash_of(entry: ModerationDecision, prev_hash: str) -> str:
    return content_hash(prev_hash=prev_hash, created_at=entry.created_at,
                        review_item_id=entry.review_item_id, actor_id=entry.actor_id,
                        action=entry.action, reason=entry.reason, details=entry.details or {})


def seal(*, session: Session, entry: ModerationDecision) -> ModerationDecision:
    """Link a new (not yet added) entry to the newest one and add it to the session."""
    # One audit writer at a time until commit, so two entries never share a predecessor.
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(727001)"))
    elif dialect == "sqlite":
        # pysqlite opens the transaction only at the first write, so reading the newest hash
        # first would race: a write that touches no row takes SQLite's write lock now.
        session.execute(text("UPDATE moderation_decision SET actor_id = actor_id WHERE 0"))
    session.flush()  # entries added earlier in this transaction come first
    last = session.exec(select(ModerationDecision.row_hash)
                        .order_by(col(ModerationDecision.id).desc()).limit(1)).first()
    entry.prev_hash = last if last is not None else GENESIS
    entry.row_hash = _hash_of(entry, entry.prev_hash)
    session.add(entry)
    return entry


@dataclass
class ChainCheck:
    """The result of `verify`: how many entries were checked and the first broken one."""

    checked: int
    broken_id: int | None = None
    reason: str = ""  # "unlinked" (prev_hash is not the entry before) | "altered"

    @property
    def ok(self) -> bool:
        return self.broken_id is None


def verify(*, session: Session, batch: int = 1000) -> ChainCheck:
    """Recompute the chain from the first entry; report the first entry that does not fit."""
    prev = GENESIS
    checked = 0
    after = 0
    while True:
        rows = session.exec(select(ModerationDecision).where(col(ModerationDecision.id) > after)
                            .order_by(col(ModerationDecision.id)).limit(batch)).all()
        if not rows:
            return ChainCheck(checked=checked)
        for entry in rows:
            if entry.prev_hash != prev:
                return ChainCheck(checked, entry.id, "unlinked")
            if entry.row_hash != _hash_of(entry, prev):
                return ChainCheck(checked, entry.id, "altered")
            prev = entry.row_hash
            checked += 1
        after = rows[-1].id or 0
