"""The bot's queries for people: what needs a human because Yishi could not finish it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from yishi.bot import memory
from yishi.bot.memory_models import Handoff
from yishi.bot.models import InboundMessage, InboundStatus, OutboundMessage, OutboundStatus


@dataclass
class Flagged:
    inbound: list[InboundMessage]  # failed after retries
    outbound: list[OutboundMessage]  # undeliverable
    handoffs: list[Handoff]  # open 转人工 requests


def get_flagged(*, session: Session, limit: int = 200) -> Flagged:
    """Messages Yishi could not answer or deliver, and residents waiting for a person."""
    inbound = session.exec(
        select(InboundMessage)
        .where(InboundMessage.status == InboundStatus.failed)
        .order_by(col(InboundMessage.id).desc())
        .limit(limit)
    ).all()
    outbound = session.exec(
        select(OutboundMessage)
        .where(OutboundMessage.status == OutboundStatus.failed)
        .order_by(col(OutboundMessage.id).desc())
        .limit(limit)
    ).all()
    return Flagged(
        inbound=list(inbound),
        outbound=list(outbound),
        handoffs=memory.get_open_handoffs(session=session)[:limit],
    )
