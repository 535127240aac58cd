"""The bot's queries for people: what needs a human because Yishi could not finish it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, or_
from sqlmodel import Session, col, select

from yishi.bot import memory
from yishi.bot.memory_models import Handoff
from yishi.bot.models import InboundMessage, InboundStatus, OutboundMessage, OutboundStatus

WINDOW_CLOSED = 45015  # WeChat: the resident has not written for 48 hours


@dataclass
class Flagged:
    inbound: list[InboundMessage]  # failed after retries
    outbound: list[OutboundMessage]  # undeliverable, or waiting past the 48-hour window
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
        .where(
            or_(
                col(OutboundMessage.status) == OutboundStatus.failed,
                # past WeChat's 48-hour window: waits for the resident's next message
                and_(
                    col(OutboundMessage.status) == OutboundStatus.deferred,
                    col(OutboundMessage.errcode) == WINDOW_CLOSED,
                ),
            )
        )
        .order_by(col(OutboundMessage.id).desc())
        .limit(limit)
    ).all()
    return Flagged(
        inbound=list(inbound),
        outbound=list(outbound),
        handoffs=memory.get_open_handoffs(session=session)[:limit],
    )
