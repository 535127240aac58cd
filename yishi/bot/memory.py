"""Conversation memory per user: recent turns, a rolling summary of older ones, the pending step
of a multi-turn exchange; cleared on request ("清除记录") and by the retention settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import delete
from sqlmodel import Session, col, select

from yishi.bot.memory_models import ConversationState, ConversationTurn, Handoff
from yishi.core.clock import utcnow
from yishi.core.config import Settings, get_settings
from yishi.core.jobs import job

SUMMARY_MAX_CHARS = 600


@dataclass
class Memory:
    """What the engines know about a user's conversation so far."""

    user_id: str
    turns: list[ConversationTurn] = field(default_factory=list)  # oldest first
    summary: str = ""
    pending: dict[str, Any] = field(default_factory=dict)


def _cutoff(settings: Settings) -> Any:
    return utcnow() - timedelta(days=settings.memory_retention_days)


def load(*, session: Session, user_id: str, settings: Settings | None = None) -> Memory:
    """The user's memory within the retention window (older rows are ignored here and deleted by
    the next `record_exchange` or the periodic purge). Read-only."""
    settings = settings or get_settings()
    cutoff = _cutoff(settings)
    state = session.get(ConversationState, user_id)
    if state is not None and state.updated_at < cutoff:
        state = None
    limit = max(settings.memory_turns, 0) * 2
    turns: list[ConversationTurn] = []
    if limit:
        rows = session.exec(
            select(ConversationTurn)
            .where(ConversationTurn.user_id == user_id, col(ConversationTurn.created_at) >= cutoff)
            .order_by(col(ConversationTurn.id).desc())
            .limit(limit)
        ).all()
        turns = list(reversed(rows))
    return Memory(
        user_id=user_id,
        turns=turns,
        summary=state.summary if state else "",
        pending=dict(state.pending or {}) if state else {},
    )


def _state(session: Session, user_id: str) -> ConversationState:
    state = session.get(ConversationState, user_id)
    if state is None:
        state = ConversationState(user_id=user_id)
    return state


def set_pending(*, session: Session, user_id: str, pending: dict[str, Any] | None) -> None:
    """Remember (or forget, with None) the step the conversation is waiting on."""
    state = _state(session, user_id)
    state.pending = dict(pending or {})
    state.updated_at = utcnow()
    session.add(state)
    session.commit()


def record_exchange(
    *,
    session: Session,
    user_id: str,
    user_text: str,
    reply: str,
    intent: str,
    engine: str,
    message_ref: str | None = None,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    settings: Settings | None = None,
) -> None:
    """Store a user message and the bot's reply; turns past the window fold into the summary."""
    settings = settings or get_settings()
    cutoff = _cutoff(settings)
    session.exec(  # type: ignore[call-overload]
        delete(ConversationTurn).where(
            col(ConversationTurn.user_id) == user_id, col(ConversationTurn.created_at) < cutoff
        )
    )
    session.add(ConversationTurn(
        user_id=user_id, speaker="user", text=user_text, intent=intent, message_ref=message_ref,
    ))
    session.add(ConversationTurn(
        user_id=user_id, speaker="assistant", text=reply, intent=intent, engine=engine,
        message_ref=message_ref, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
    ))
    session.flush()
    keep = max(settings.memory_turns, 0) * 2
    old = list(reversed(session.exec(
        select(ConversationTurn)
        .where(ConversationTurn.user_id == user_id)
        .order_by(col(ConversationTurn.id).desc())
        .offset(keep)
    ).all()))
    state = _state(session, user_id)
    if state.updated_at < cutoff:  # an expired summary is not carried forward
        state.summary = ""
        state.pending = {}
    if old:
        state.summary = _fold(state.summary, old)
        for row in old:
            session.delete(row)
    state.updated_at = utcnow()
    session.add(state)
    session.commit()


def _fold(summary: str, turns: list[ConversationTurn]) -> str:
    """Extend the rolling summary with the user's side of old turns (newest kept when too long)."""
    notes = [t.text.strip().replace("\n", " ")[:80] for t in turns if t.speaker == "user"]
    notes = [n for n in notes if n]
    if not notes:
        return summary
    merged = "；".join(([summary] if summary else []) + notes)
    if len(merged) > SUMMARY_MAX_CHARS:
        merged = "…" + merged[-(SUMMARY_MAX_CHARS - 1):]
    return merged


def clear(*, session: Session, user_id: str) -> int:
    """Forget everything about the user's conversation; the number of turns removed."""
    result = session.exec(  # type: ignore[call-overload]
        delete(ConversationTurn).where(col(ConversationTurn.user_id) == user_id)
    )
    state = session.get(ConversationState, user_id)
    if state is not None:
        session.delete(state)
    session.commit()
    return int(result.rowcount or 0)


def purge_expired(*, session: Session, settings: Settings | None = None) -> int:
    """Delete every turn and state older than `memory_retention_days`; the turns removed."""
    cutoff = _cutoff(settings or get_settings())
    result = session.exec(  # type: ignore[call-overload]
        delete(ConversationTurn).where(col(ConversationTurn.created_at) < cutoff)
    )
    session.exec(  # type: ignore[call-overload]
        delete(ConversationState).where(col(ConversationState.updated_at) < cutoff)
    )
    session.commit()
    return int(result.rowcount or 0)


@job("bot.memory.purge", retries=1, periodic="23")
def purge_expired_job() -> int:
    """Periodic: apply the retention setting to every user's memory."""
    from yishi.core.db import session_scope

    with session_scope() as session:
        return purge_expired(session=session)


def record_handoff(
    *, session: Session, user_id: str, channel: str, reason: str, text: str,
    message_ref: str | None = None,
) -> Handoff:
    """Persist a 转人工 request so staff can pick it up."""
    row = Handoff(user_id=user_id, channel=channel, reason=reason[:500], text=text,
                  message_ref=message_ref)
    session.add(row)
    session.commit()
    session.refresh(row)
    return row


def get_open_handoffs(*, session: Session) -> list[Handoff]:
    """Hand-offs nobody has resolved yet, oldest first."""
    return list(session.exec(
        select(Handoff).where(Handoff.resolved == False).order_by(col(Handoff.id))  # noqa: E712
    ))


def resolve_handoff(*, session: Session, handoff_id: int, by: str) -> Handoff:
    """Mark a hand-off as taken care of by staff member `by`."""
    from yishi.core.errors import NotFound

    handoff = session.get(Handoff, handoff_id)
    if handoff is None:
        raise NotFound(f"没有编号为 {handoff_id} 的转人工请求")
    handoff.resolved = True
    handoff.reason = (handoff.reason + f"（已由 {by} 处理）")[:500]
    session.add(handoff)
    session.commit()
    session.refresh(handoff)
    return handoff


def recover(session: Session) -> None:
    """Make a session usable after an error: roll back only if a failed flush left it inactive,
    so the caller's own pending changes (e.g. the pipeline's inbound row) survive other errors."""
    if not session.is_active:
        session.rollback()
