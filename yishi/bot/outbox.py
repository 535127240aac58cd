"""Messages to residents through the channel they came from (replies, notices, updates)."""

from __future__ import annotations

import logging

from sqlmodel import Session

from yishi.bot.models import OutboundMessage, OutboundStatus

log = logging.getLogger(__name__)

# Channels that have no push path: the reply is read back by the caller (web simulator, CLI).
LOCAL_CHANNELS = {"web", "cli"}


def channel_of(user_id: str) -> str:
    """The channel part of a `<channel>:<sender>` user id."""
    return user_id.split(":", 1)[0] if ":" in user_id else "web"


def queue(
    *, session: Session, user_id: str, text: str, kind: str, inbound_id: int | None = None
) -> OutboundMessage:
    """Store an outbound message (not yet sent) with its deadline and return it."""
    from datetime import timedelta

    from yishi.core.clock import utcnow
    from yishi.core.config import get_settings

    channel = channel_of(user_id)
    deadline = utcnow() + timedelta(hours=get_settings().send_deadline_hours)
    row = OutboundMessage(
        inbound_id=inbound_id,
        channel=channel,
        user_id=user_id,
        kind=kind,
        text=text,
        deadline_at=deadline,
    )
    if channel in LOCAL_CHANNELS:
        row.status = OutboundStatus.sent  # delivered by being read back
    session.add(row)
    session.flush()
    return row


def notify(*, session: Session, user_id: str, text: str) -> OutboundMessage:
    """Queue a message to a resident (issue updates etc.); it is sent after the session commits."""
    from yishi.core import jobs

    row = queue(session=session, user_id=user_id, text=text, kind="notify")
    session.commit()
    if row.status == OutboundStatus.pending:
        try:
            jobs.enqueue("bot.deliver_outbound", row.id)
        except RuntimeError:
            # Jobs are not configured in this process (e.g. a CLI tool): the sweep sends it.
            log.info("outbound %s queued for the next sweep", row.id)
    return row


GROUP_USER_ID = "wecom_robot:group"


def post_to_group(*, session: Session, text: str, author_id: str) -> OutboundMessage | None:
    """Screen `text` and queue it for the WeCom group robot; a held text goes to the review queue.

    Returns the queued message, or None when moderation held it: nothing reaches a group
    unscreened.
    """
    from yishi.core import jobs
    from yishi.moderation import service as moderation_service

    verdict = moderation_service.screen(text, context="message")
    if verdict.action != "allow":
        moderation_service.hold(
            session=session,
            text=text,
            verdict=verdict,
            sender_id=author_id,
            source="group",
            source_ref=GROUP_USER_ID,
        )
        session.commit()
        return None
    row = queue(session=session, user_id=GROUP_USER_ID, text=verdict.redacted, kind="group")
    session.commit()
    try:
        jobs.enqueue("bot.deliver_outbound", row.id)
    except RuntimeError:
        log.info("group message %s queued for the next sweep", row.id)
    return row
