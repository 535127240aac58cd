"""Multi-step deliberation work with side effects: state changes that notify people, and the
periodic overdue sweep."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from yishi.core.auth import Actor
from yishi.core.clock import COMPACT_FORMAT, local_time
from yishi.core.db import session_scope
from yishi.core.jobs import job
from yishi.core.models import Role, User
from yishi.deliberation import issues, proposals, threads
from yishi.deliberation.models import HELD_ISSUE_REF, HeldIssue, Issue, Proposal, ThreadMessage
from yishi.deliberation.schemas import STATUS_LABELS, IssueRecorded

log = logging.getLogger(__name__)



def _notify(session: Session, user_id: str, text: str) -> bool:
    """Queue a message through the bot's outbox (True: one message queued)."""
    from yishi.bot import outbox  # imported late: the bot domain imports this module's jobs

    outbox.notify(session=session, user_id=user_id, text=text)
    return True


def _short(text: str, n: int = 30) -> str:
    return text if len(text) <= n else text[:n] + "…"


def status_notice(issue: Issue, note: str = "") -> str:
    """The message a reporter gets when their issue changes."""
    label = STATUS_LABELS.get(issue.status, issue.status)
    parts = [f"您反映的问题（编号 {issue.id}：{_short(issue.text)}）进展更新：{label}。"]
    if issue.status == "rejected" and issue.reject_reason:
        parts.append(f"原因：{issue.reject_reason}。")
    elif note:
        parts.append(f"说明：{note}。")
    if issue.responsible_party and issue.status in {"assigned", "in_progress"}:
        parts.append(f"责任方：{issue.responsible_party}。")
    if issue.status == "resolved":
        parts.append(f"如果问题仍未解决，请回复说明情况并注明编号 {issue.id}。")
    return "".join(parts)


def notify_followers(*, session: Session, issue: Issue, note: str = "") -> int:
    """Tell the reporter and every supporter about the issue's new state; returns how many."""
    assert issue.id is not None
    text = status_notice(issue, note)
    people = [issue.reporter_id, *issues.get_supporters(session=session, issue_id=issue.id)]
    people = [p for p in people if p]  # an erased reporter has no id left to notify
    sent = 0
    for user_id in dict.fromkeys(people):
        sent += _notify(session, user_id, text)
    return sent


def change_issue_status(
    *,
    session: Session,
    actor: Actor,
    issue_id: int,
    to_status: str,
    note: str = "",
    reason: str | None = None,
) -> Issue:
    """Staff: change an issue's status and notify its reporter and supporters."""
    issue, old = issues.transition(session=session, actor=actor, issue_id=issue_id,
                                   to_status=to_status, note=note, reason=reason)
    if issue.status != old:
        notify_followers(session=session, issue=issue, note=note)
    return issue


def assign_issue(
    *,
    session: Session,
    actor: Actor,
    issue_id: int,
    party: str,
    due_at: datetime | None = None,
    note: str = "",
) -> Issue:
    """Staff: hand an issue to a party and tell the reporter who handles it now."""
    issue, _old = issues.assign(session=session, actor=actor, issue_id=issue_id, party=party,
                                due_at=due_at, note=note)
    notify_followers(session=session, issue=issue, note=note or f"已转交{party}")
    return issue


def merge_issues(*, session: Session, actor: Actor, duplicate_id: int, into_id: int,
                 note: str = "") -> Issue:
    """Staff: merge a duplicate issue and tell everyone now following the merged issue."""
    issue = issues.merge(session=session, actor=actor, duplicate_id=duplicate_id,
                         into_id=into_id, note=note)
    notify_followers(session=session, issue=issue,
                     note=f"您反映的问题 #{duplicate_id} 与本问题相同，已合并处理")
    return issue


def staff_recipients(*, session: Session) -> list[str]:
    """Channel identities of active staff and admins (who hear about overdue issues)."""
    rows = session.exec(
        select(User).where(User.active == True, User.external_id != None)  # noqa: E711, E712
    ).all()
    return [u.external_id for u in rows
            if u.external_id and u.role in (Role.staff, Role.admin)
            and not u.external_id.startswith("admin:")]


def overdue_digest(flagged: list[Issue]) -> str:
    """One message listing newly overdue issues, by party."""
    lines = [f"有 {len(flagged)} 个问题已超过处理时限："]
    for issue in flagged[:20]:
        due = local_time(issue.due_at, COMPACT_FORMAT) if issue.due_at else "-"
        lines.append(f"· 编号 {issue.id}【{issue.responsible_party or '未派单'}】"
                     f"{_short(issue.text, 24)}（应于 {due} 前处理）")
    if len(flagged) > 20:
        lines.append(f"……另有 {len(flagged) - 20} 个，请在工作台查看“超期”列表。")
    return "\n".join(lines)


def flag_overdue_and_notify(*, session: Session, now: datetime | None = None) -> list[Issue]:
    """Flag newly overdue issues and send staff one digest; returns the flagged issues."""
    flagged = issues.flag_overdue(session=session, now=now)
    if flagged:
        text = overdue_digest(flagged)
        for user_id in staff_recipients(session=session):
            _notify(session, user_id, text)
    return flagged


@job("deliberation.sweep_overdue", periodic="*/5")
def sweep_overdue() -> int:
    """Periodic job: flag overdue issues and tell staff."""
    with session_scope() as session:
        flagged = flag_overdue_and_notify(session=session)
    if flagged:
        log.info("flagged %d overdue issues", len(flagged))
    return len(flagged)


# --- screened resident text from the HTTP API ---------------------------------------------------

MODERATION_SOURCE = "deliberation"


@dataclass
class Screened:
    """What became of a resident's text: posted (or recorded), or held for moderators."""

    held: bool
    notice: str
    message: ThreadMessage | None = None
    statement_id: int | None = None
    recorded: IssueRecorded | None = None


def _screen(text: str) -> Any:
    from yishi.moderation import service as moderation_service

    return moderation_service.screen(text)


def _hold(session: Session, *, text: str, verdict: Any, sender_id: str, ref: str) -> None:
    from yishi.moderation import service as moderation_service

    moderation_service.hold(session=session, text=text, verdict=verdict, sender_id=sender_id,
                            source=MODERATION_SOURCE, source_ref=ref)


def _notice(verdict: Any) -> str:
    from yishi.moderation import service as moderation_service

    return str(moderation_service.notice_for(verdict))


def post_screened(*, session: Session, actor: Actor, thread_id: int, text: str,
                  as_statement: bool = False) -> Screened:
    """Screen a resident's thread message; post the redacted text, or hold it hidden."""
    threads.get_thread(session=session, thread_id=thread_id)
    verdict = _screen(text)
    visible = verdict.action == "allow"
    message = threads.post_to_thread(session=session, actor=actor, thread_id=thread_id,
                                     text=verdict.redacted or text, visible=visible,
                                     as_statement=as_statement)
    statement = threads.statement_for_message(session=session, message_id=message.id or 0)
    if not visible:
        _hold(session, text=text, verdict=verdict, sender_id=actor.user_id,
              ref=f"thread_message:{message.id}")
    return Screened(held=not visible, notice=_notice(verdict), message=message,
                    statement_id=statement.id if statement else None)


def record_screened_issue(*, session: Session, actor: Actor, text: str,
                          category: str | None = None, location: str | None = None,
                          urgency: str | None = None, media: Sequence[str] = ()) -> Screened:
    """Screen a resident's report; record it redacted, or hold it until a moderator approves."""
    verdict = _screen(text)
    if verdict.action != "allow":
        held = HeldIssue(payload={"category": category, "location": location,
                                  "urgency": urgency, "media": list(media),
                                  "channel": actor.channel})
        session.add(held)
        session.flush()
        _hold(session, text=text, verdict=verdict, sender_id=actor.user_id,
              ref=f"{HELD_ISSUE_REF}{held.id}")
        return Screened(held=True, notice=_notice(verdict))
    recorded = issues.record_issue(session=session, actor=actor, text=verdict.redacted or text,
                                   category=category, location=location, urgency=urgency,
                                   media=media)
    return Screened(held=False, notice=recorded.notice, recorded=recorded)


def release_held(session: Session, item: Any) -> None:
    """Moderation approved a held item: show the message, or record the issue and tell them."""
    ref = item.source_ref or ""
    text = item.final_text or item.redacted or item.text
    if ref.startswith("thread_message:"):
        message = session.get(ThreadMessage, int(ref.split(":", 1)[1]))
        if message is None:
            return
        message.text = text
        session.add(message)
        statement = threads.statement_for_message(session=session, message_id=message.id or 0)
        if statement is not None and len(text) <= threads.STATEMENT_MAX_CHARS:
            statement.text = text
            session.add(statement)
        session.commit()
        threads.set_message_visible(session=session, message_id=message.id or 0, visible=True)
    elif ref.startswith(("issue:", HELD_ISSUE_REF)):
        extra = _held_issue_fields(session, ref)
        actor = Actor(user_id=item.sender_id, role=Role.resident,
                      channel=extra.get("channel") or item.sender_id.split(":", 1)[0])
        recorded = issues.record_issue(session=session, actor=actor, text=text,
                                       category=extra.get("category"),
                                       location=extra.get("location"),
                                       urgency=extra.get("urgency"),
                                       media=extra.get("media") or ())
        _notify(session, item.sender_id, recorded.notice)


def _held_issue_fields(session: Session, ref: str) -> dict[str, Any]:
    if ref.startswith(HELD_ISSUE_REF):
        held = session.get(HeldIssue, int(ref.removeprefix(HELD_ISSUE_REF)))
        if held is None:
            return {}
        session.delete(held)  # the issue now holds these fields; keep no second copy
        return dict(held.payload)
    try:  # held before the fields had their own table: the JSON rode in the (short) ref
        return dict(json.loads(ref.split(":", 1)[1]))
    except ValueError:
        return {}


def register_moderation_handlers() -> None:
    """Let moderators' approvals release held deliberation messages and reports."""
    from yishi.moderation import service as moderation_service

    moderation_service.register_release_handler(MODERATION_SOURCE, release_held)


# --- proposals ------------------------------------------------------------------------------

_PROPOSAL_NEWS = {
    "voting": "提案“{title}”（编号 {id}）开始表决，表决方式和截止时间以社区公告为准。",
    "adopted": "提案“{title}”（编号 {id}）已表决通过，接下来将按时间表组织实施。",
    "rejected": "提案“{title}”（编号 {id}）未获通过。感谢您参与讨论。",
    "in_progress": "提案“{title}”（编号 {id}）已开始实施。",
    "done": "提案“{title}”（编号 {id}）已完成。感谢您参与社区议事！",
}


def thread_participants(*, session: Session, thread_id: int) -> list[str]:
    """Everyone who voted or posted in a thread."""
    people = [voter for voter, _s, _v in threads.get_vote_rows(session=session,
                                                               thread_id=thread_id)]
    people += [m.author_id for m in threads.get_messages(session=session, thread_id=thread_id)]
    return list(dict.fromkeys(people))


def notify_proposal_news(*, session: Session, proposal: Proposal) -> int:
    """Tell the thread's participants that a proposal moved; returns how many were told."""
    template = _PROPOSAL_NEWS.get(proposal.status)
    if template is None or proposal.thread_id is None:
        return 0
    text = template.format(title=proposal.title, id=proposal.id)
    return sum(_notify(session, user_id, text)
               for user_id in thread_participants(session=session, thread_id=proposal.thread_id))


def change_proposal_status(*, session: Session, actor: Actor, proposal_id: int, to_status: str,
                           note: str = "") -> Proposal:
    """Staff: move a proposal and tell the people who discussed it."""
    proposal = proposals.change_status(session=session, actor=actor, proposal_id=proposal_id,
                                       to_status=to_status, note=note)
    notify_proposal_news(session=session, proposal=proposal)
    return proposal


def close_proposal_voting(*, session: Session, actor: Actor, proposal_id: int) -> Proposal:
    """Staff: count the vote under the proposal's rule and announce the result."""
    proposal = proposals.close_voting(session=session, actor=actor, proposal_id=proposal_id)
    notify_proposal_news(session=session, proposal=proposal)
    return proposal
