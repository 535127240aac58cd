"""Console pages for staff: the issue board, threads with their cited summaries, proposals, the
responsibility list, and the messages Yishi could not answer or deliver. Logic lives in
`yishi.deliberation` (issues, flows, threads, summaries, proposals, responsibility)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlmodel import col, select

from yishi.core.auth import Actor
from yishi.core.clock import from_local, utcnow
from yishi.core.deps import SessionDep
from yishi.core.errors import Invalid, YishiError
from yishi.core.models import Role
from yishi.deliberation import flows, issues, proposals, responsibility, summaries, threads
from yishi.deliberation.models import Issue, SummaryRecord
from yishi.deliberation.schemas import STATUS_LABELS, ThreadSummary
from yishi.web.console_session import (
    CONSOLE_PATH,
    ConsoleRoute,
    CsrfChecked,
    StaffUser,
    redirect,
    render,
)
from yishi.web.people import Directory

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False, route_class=ConsoleRoute)

URGENCY_LABELS = {"low": "低", "normal": "一般", "high": "较急", "urgent": "紧急"}
EVENT_LABELS = {
    "reported": "上报",
    "routed": "自动分派",
    "assigned": "派单",
    "status": "状态变更",
    "supporter": "居民附议",
    "overdue": "超期提醒",
    "media": "居民补充照片或位置",
}
THREAD_STATUS_LABELS = {"open": "讨论中", "closed": "已结束"}
COUNT_LABELS = {
    "label": "表决规则",
    "article": "依据（民法典第二百七十八条）",
    "voted": "参与人数",
    "agree": "同意",
    "disagree": "反对",
    "abstain": "弃权",
    "total_area": "专有部分总面积（㎡）",
    "total_owners": "业主总人数",
    "voted_area": "参与表决面积（㎡）",
    "voted_owners": "参与表决人数",
    "agree_area": "同意面积（㎡）",
    "agree_owners": "同意人数",
    "majority": "通过门槛",
    "quorum_area": "参与面积达三分之二",
    "quorum_owners": "参与人数达三分之二",
    "agreed_area": "同意面积达门槛",
    "agreed_owners": "同意人数达门槛",
    "passed": "结果",
}
MAJORITY_LABELS = {"half": "过半数", "two_thirds": "三分之二以上", "three_quarters": "四分之三以上"}


def _issue_filters(party: str, status: str, building: str, category: str, overdue: str
                   ) -> dict[str, Any]:
    return {
        "party": party.strip(),
        "status": status if status in STATUS_LABELS else "",
        "building": building.strip(),
        "category": category if category in responsibility.CATEGORY_LABELS else "",
        "overdue": overdue if overdue in ("yes", "no") else "",
    }


def _parties(session: Any, *extra: str) -> list[str]:
    """Parties from the responsibility list, plus any that issues were assigned to by hand."""
    listed = {e.party for e in responsibility.get_list(session=session).values()}
    assigned = session.exec(
        select(Issue.responsible_party).where(col(Issue.responsible_party).is_not(None))
        .distinct()
    ).all()
    return sorted(listed | {p for p in assigned if p} | {p for p in extra if p})


@router.get(f"{CONSOLE_PATH}/issues", response_class=HTMLResponse)
def issue_board(
    request: Request,
    session: SessionDep,
    actor: StaffUser,
    party: str = "",
    status: str = "",
    building: str = "",
    category: str = "",
    overdue: str = "",
) -> HTMLResponse:
    """The issue board, filtered by responsible party, status, building, category, overdue."""
    f = _issue_filters(party, status, building, category, overdue)
    rows = issues.list_issues(
        session=session,
        actor=actor,
        party=f["party"] or None,
        status=f["status"] or None,
        building=f["building"] or None,
        category=f["category"] or None,
        overdue={"yes": True, "no": False}.get(f["overdue"]),
    )
    now = utcnow()
    return render(
        request,
        "console/issues.html",
        {
            "issues": rows,
            "overdue": {i.id: issues.is_overdue(i, now) for i in rows},
            "filters": f,
            "parties": _parties(session, f["party"]),
            "statuses": STATUS_LABELS,
            "categories": responsibility.CATEGORY_LABELS,
            "urgencies": URGENCY_LABELS,
        },
    )


@router.get(f"{CONSOLE_PATH}/issues/{{issue_id}}", response_class=HTMLResponse)
def issue_detail(
    request: Request, session: SessionDep, actor: StaffUser, issue_id: int
) -> HTMLResponse:
    """One issue with its timeline and the status and assignment forms."""
    issue = issues.get_issue(session=session, actor=actor, issue_id=issue_id)
    timeline = issues.get_timeline(session=session, actor=actor, issue_id=issue_id)
    allowed = sorted(issues.ALLOWED_TRANSITIONS.get(issues.IssueStatus(issue.status), set()))
    parties = _parties(session)
    return render(
        request,
        "console/issue_detail.html",
        {
            "issue": issue,
            "timeline": timeline,
            "overdue": issues.is_overdue(issue),
            "allowed": [str(s) for s in allowed],
            "can_assign": issue.status in {s.value for s in issues.OPEN_ISSUE_STATUSES},
            "parties": parties,
            "statuses": STATUS_LABELS,
            "categories": responsibility.CATEGORY_LABELS,
            "urgencies": URGENCY_LABELS,
            "events": EVENT_LABELS,
        },
    )


@router.post(f"{CONSOLE_PATH}/issues/{{issue_id}}/status", dependencies=[CsrfChecked])
def issue_status(
    request: Request,
    session: SessionDep,
    actor: StaffUser,
    issue_id: int,
    status: Annotated[str, Form()] = "",
    note: Annotated[str, Form(max_length=1000)] = "",
) -> RedirectResponse:
    """Change an issue's status; the reporter and supporters are notified."""
    back = f"{CONSOLE_PATH}/issues/{issue_id}"
    note = note.strip()
    try:
        if not status:
            raise Invalid("请选择新状态")
        issue = flows.change_issue_status(
            session=session, actor=actor, issue_id=issue_id, to_status=status, note=note,
            reason=note if status == "rejected" else None,
        )
    except YishiError as exc:
        session.rollback()
        return redirect(request, back, error=exc)
    label = STATUS_LABELS.get(issue.status, issue.status)
    return redirect(request, back, ok=f"问题 #{issue_id} 已改为“{label}”，已通知反映人")


@router.post(f"{CONSOLE_PATH}/issues/{{issue_id}}/assign", dependencies=[CsrfChecked])
def issue_assign(
    request: Request,
    session: SessionDep,
    actor: StaffUser,
    issue_id: int,
    party: Annotated[str, Form(max_length=100)] = "",
    due_at: Annotated[str, Form()] = "",
    note: Annotated[str, Form(max_length=1000)] = "",
) -> RedirectResponse:
    """Hand an issue to a party (due time from the list unless given)."""
    back = f"{CONSOLE_PATH}/issues/{issue_id}"
    try:
        if not party.strip():
            raise Invalid("请选择或填写责任方")
        due: datetime | None = None
        if due_at.strip():
            try:
                due = from_local(datetime.fromisoformat(due_at.strip()))
            except ValueError:
                raise Invalid("处理时限格式不对", hint="例如 2026-12-01T18:00") from None
        flows.assign_issue(
            session=session, actor=actor, issue_id=issue_id, party=party.strip(), due_at=due,
            note=note.strip(),
        )
    except YishiError as exc:
        session.rollback()
        return redirect(request, back, error=exc)
    return redirect(request, back, ok=f"问题 #{issue_id} 已派给{party.strip()}")


@router.post(f"{CONSOLE_PATH}/issues/{{issue_id}}/merge", dependencies=[CsrfChecked])
def issue_merge(
    request: Request,
    session: SessionDep,
    actor: StaffUser,
    issue_id: int,
    into: Annotated[str, Form(max_length=12)] = "",
) -> RedirectResponse:
    """Merge this duplicate into another issue (supporters and timelines joined)."""
    back = f"{CONSOLE_PATH}/issues/{issue_id}"
    try:
        target = into.strip().lstrip("#")
        if not target.isdigit():
            raise Invalid("请填写目标问题的编号（数字）")
        merged = flows.merge_issues(session=session, actor=actor, duplicate_id=issue_id,
                                    into_id=int(target))
    except YishiError as exc:
        session.rollback()
        return redirect(request, back, error=exc)
    return redirect(request, f"{CONSOLE_PATH}/issues/{merged.id}",
                    ok=f"问题 #{issue_id} 已并入本问题")


# --- threads and summaries --------------------------------------------------------------------


@router.get(f"{CONSOLE_PATH}/threads", response_class=HTMLResponse)
def thread_list(request: Request, session: SessionDep, actor: StaffUser) -> HTMLResponse:
    """Every thread with its statement and vote counts."""
    rows = threads.get_all_threads(session=session)
    counts: dict[int | None, dict[str, int]] = {}
    for t in rows:
        assert t.id is not None
        tallies = threads.tally(session=session, thread_id=t.id)
        counts[t.id] = {
            "statements": len(threads.get_statements(session=session, thread_id=t.id)),
            "messages": len(threads.get_messages(session=session, thread_id=t.id)),
            "votes": sum(sum(v.values()) for v in tallies.values()),
        }
    return render(
        request,
        "console/threads.html",
        {"threads": rows, "counts": counts, "statuses": THREAD_STATUS_LABELS},
    )


@router.post(f"{CONSOLE_PATH}/threads", dependencies=[CsrfChecked])
def thread_create(
    request: Request,
    session: SessionDep,
    actor: StaffUser,
    title: Annotated[str, Form(max_length=200)] = "",
    question: Annotated[str, Form(max_length=2000)] = "",
    statements: Annotated[str, Form(max_length=20000)] = "",
) -> RedirectResponse:
    """Open a thread with a question and seed statements (one per line)."""
    seeds = [line.strip() for line in statements.splitlines() if line.strip()][:100]
    try:
        thread = threads.create_thread(
            session=session, actor=actor, title=title, question=question, statements=seeds
        )
    except YishiError as exc:
        session.rollback()
        return redirect(request, f"{CONSOLE_PATH}/threads", error=exc)
    return redirect(request, f"{CONSOLE_PATH}/threads/{thread.id}", ok="议题已发起")


@router.post(f"{CONSOLE_PATH}/threads/summarise", dependencies=[CsrfChecked])
def topic_summarise(
    request: Request,
    session: SessionDep,
    actor: StaffUser,
    topic: Annotated[str, Form(max_length=200)] = "",
) -> RedirectResponse:
    """Ask in plain words ("总结一下停车收费的讨论"); the best-matching thread is summarised."""
    try:
        if not topic.strip():
            raise Invalid("请写下要总结的话题", hint="例如：总结一下停车收费的讨论")
        thread = threads.find_thread_by_topic(session=session, topic=topic.strip())
    except YishiError as exc:
        session.rollback()
        return redirect(request, f"{CONSOLE_PATH}/threads", error=exc)
    assert thread.id is not None
    return _summarise(request, session, actor, thread.id)


def _summarise(request: Request, session: Any, actor: Any, thread_id: int) -> RedirectResponse:
    settings = request.app.state.settings
    llm = None
    if settings.llm_enabled:
        from yishi.core.llm import build_chat_model

        llm = build_chat_model(settings)
    try:
        summary = summaries.summarise_thread(
            session=session, actor=actor, thread_id=thread_id, llm=llm
        )
    except YishiError as exc:
        session.rollback()
        return redirect(request, f"{CONSOLE_PATH}/threads/{thread_id}", error=exc)
    return redirect(
        request,
        f"{CONSOLE_PATH}/threads/{thread_id}/summary?id={summary.summary_id or ''}",
        ok="已生成讨论总结",
    )


def _latest_summary(session: Any, thread_id: int) -> SummaryRecord | None:
    return session.exec(
        select(SummaryRecord).where(SummaryRecord.thread_id == thread_id)
        .order_by(col(SummaryRecord.id).desc())
    ).first()


@router.get(f"{CONSOLE_PATH}/threads/{{thread_id}}", response_class=HTMLResponse)
def thread_detail(
    request: Request, session: SessionDep, actor: StaffUser, thread_id: int
) -> HTMLResponse:
    """A thread: its question, statements with vote counts, and residents' messages."""
    thread = threads.get_thread(session=session, thread_id=thread_id)
    statements = threads.get_statements(session=session, thread_id=thread_id)
    tallies = threads.tally(session=session, thread_id=thread_id)
    empty = {"agree": 0, "disagree": 0, "pass": 0}
    return render(
        request,
        "console/thread_detail.html",
        {
            "thread": thread,
            "statements": [(s, tallies.get(s.id or 0, empty)) for s in statements],
            "messages": threads.get_messages(session=session, thread_id=thread_id),
            "hidden": [s for s in threads.get_statements(
                session=session, thread_id=thread_id, include_hidden=True) if not s.visible],
            "summary": _latest_summary(session, thread_id),
            "statuses": THREAD_STATUS_LABELS,
            "proposal_types": proposals.PROPOSAL_TYPES,
        },
    )


@router.post(f"{CONSOLE_PATH}/threads/{{thread_id}}/summarise", dependencies=[CsrfChecked])
def thread_summarise(
    request: Request, session: SessionDep, actor: StaffUser, thread_id: int
) -> RedirectResponse:
    """Ask Yishi for a cited consensus summary of the thread (kept for proposals)."""
    return _summarise(request, session, actor, thread_id)


@router.get(f"{CONSOLE_PATH}/threads/{{thread_id}}/summary", response_class=HTMLResponse)
def thread_summary(
    request: Request, session: SessionDep, actor: StaffUser, thread_id: int,
    id: int | None = None,
) -> HTMLResponse:
    """A stored summary: opinion groups, representative statements, consensus and division."""
    thread = threads.get_thread(session=session, thread_id=thread_id)
    record = session.get(SummaryRecord, id) if id is not None else None
    if record is None or record.thread_id != thread_id:
        record = _latest_summary(session, thread_id)
    summary = ThreadSummary.model_validate(record.content) if record is not None else None
    return render(
        request,
        "console/thread_summary.html",
        {
            "thread": thread,
            "record": record,
            "summary": summary,
            "proposal_types": proposals.PROPOSAL_TYPES,
        },
    )


@router.post(f"{CONSOLE_PATH}/threads/{{thread_id}}/close", dependencies=[CsrfChecked])
def thread_close(
    request: Request, session: SessionDep, actor: StaffUser, thread_id: int
) -> RedirectResponse:
    """Close a thread to new messages and votes."""
    back = f"{CONSOLE_PATH}/threads/{thread_id}"
    try:
        threads.close_thread(session=session, actor=actor, thread_id=thread_id)
    except YishiError as exc:
        session.rollback()
        return redirect(request, back, error=exc)
    return redirect(request, back, ok="议题已结束讨论")


@router.post(f"{CONSOLE_PATH}/threads/{{thread_id}}/statements", dependencies=[CsrfChecked])
def statement_add(
    request: Request,
    session: SessionDep,
    actor: StaffUser,
    thread_id: int,
    text: Annotated[str, Form(max_length=500)] = "",
) -> RedirectResponse:
    """Staff add a statement for residents to vote on (screened like any message)."""
    from yishi.moderation import service as moderation_service

    back = f"{CONSOLE_PATH}/threads/{thread_id}"
    try:
        if not text.strip():
            raise Invalid("观点内容不能为空")
        verdict = moderation_service.screen(text.strip())
        if verdict.action != "allow":
            raise Invalid("这条观点没有通过内容检查", hint="请换一种说法")
        threads.add_statement(session=session, actor=actor, thread_id=thread_id,
                              text=verdict.redacted)
    except YishiError as exc:
        session.rollback()
        return redirect(request, back, error=exc)
    return redirect(request, back, ok="已添加观点")


@router.post(f"{CONSOLE_PATH}/statements/{{statement_id}}/hide", dependencies=[CsrfChecked])
def statement_hide(
    request: Request,
    session: SessionDep,
    actor: StaffUser,
    statement_id: int,
    reason: Annotated[str, Form(max_length=500)] = "",
) -> RedirectResponse:
    """Hide a statement from voting and summaries, with a reason."""
    try:
        statement = threads.hide_statement(session=session, actor=actor,
                                           statement_id=statement_id, reason=reason)
    except YishiError as exc:
        session.rollback()
        return redirect(request, f"{CONSOLE_PATH}/threads", error=exc)
    return redirect(request, f"{CONSOLE_PATH}/threads/{statement.thread_id}",
                    ok=f"已隐藏观点 s{statement_id}")


@router.post(f"{CONSOLE_PATH}/statements/{{statement_id}}/show", dependencies=[CsrfChecked])
def statement_show(
    request: Request, session: SessionDep, actor: StaffUser, statement_id: int
) -> RedirectResponse:
    """Show a hidden statement again."""
    try:
        statement = threads.show_statement(session=session, actor=actor,
                                           statement_id=statement_id)
    except YishiError as exc:
        session.rollback()
        return redirect(request, f"{CONSOLE_PATH}/threads", error=exc)
    return redirect(request, f"{CONSOLE_PATH}/threads/{statement.thread_id}",
                    ok=f"已恢复观点 s{statement_id}")


# --- proposals --------------------------------------------------------------------------------


@router.post(f"{CONSOLE_PATH}/proposals", dependencies=[CsrfChecked])
def proposal_draft(
    request: Request,
    session: SessionDep,
    actor: StaffUser,
    thread_id: Annotated[int, Form()],
    summary_id: Annotated[str, Form()] = "",
    proposal_type: Annotated[str, Form()] = "consultation",
    title: Annotated[str, Form(max_length=200)] = "",
) -> RedirectResponse:
    """Draft a proposal (责任表、时间表、任务表) from a thread's checked summary."""
    try:
        proposal = proposals.draft_from_summary(
            session=session, actor=actor,
            summary_id=int(summary_id) if summary_id.isdigit() else None,
            thread_id=thread_id, proposal_type=proposal_type, title=title.strip() or None,
        )
    except YishiError as exc:
        session.rollback()
        return redirect(request, f"{CONSOLE_PATH}/threads/{thread_id}", error=exc)
    return redirect(request, f"{CONSOLE_PATH}/proposals/{proposal.id}", ok="已生成提案草案")


@router.get(f"{CONSOLE_PATH}/proposals", response_class=HTMLResponse)
def proposal_list(
    request: Request, session: SessionDep, actor: StaffUser, status: str = ""
) -> HTMLResponse:
    """Proposals, newest first, by status."""
    status = status if status in proposals.STATUS_LABELS else ""
    return render(
        request,
        "console/proposals.html",
        {
            "proposals": proposals.get_all(session=session, status=status or None),
            "status": status,
            "statuses": proposals.STATUS_LABELS,
            "types": proposals.PROPOSAL_TYPES,
        },
    )


@router.get(f"{CONSOLE_PATH}/proposals/{{proposal_id}}", response_class=HTMLResponse)
def proposal_detail(
    request: Request, session: SessionDep, actor: StaffUser, proposal_id: int
) -> HTMLResponse:
    """A proposal: options, responsibility / timetable / task tables, updates and the count."""
    proposal = proposals.get(session=session, proposal_id=proposal_id)
    allowed = sorted(proposals.ALLOWED.get(proposal.status, set()))
    if proposal.status == "voting":
        allowed = []  # the count decides; staff close the vote instead
    try:
        count: dict[str, Any] | None = proposals.tally(session=session, proposal_id=proposal_id)
    except YishiError:
        count = None
    return render(
        request,
        "console/proposal_detail.html",
        {
            "proposal": proposal,
            "updates": proposals.get_updates(session=session, proposal_id=proposal_id),
            "allowed": [str(s) for s in allowed],
            "count": count,
            "turnout_warning": proposals.turnout_warning(count) if count else None,
            "units": proposals.get_units(session=session),
            "count_labels": COUNT_LABELS,
            "majorities": MAJORITY_LABELS,
            "statuses": proposals.STATUS_LABELS,
            "types": proposals.PROPOSAL_TYPES,
        },
    )


@router.post(f"{CONSOLE_PATH}/proposals/{{proposal_id}}/status", dependencies=[CsrfChecked])
def proposal_status(
    request: Request,
    session: SessionDep,
    actor: StaffUser,
    proposal_id: int,
    status: Annotated[str, Form()] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
) -> RedirectResponse:
    """Move a proposal along its status machine."""
    back = f"{CONSOLE_PATH}/proposals/{proposal_id}"
    try:
        proposal = proposals.change_status(
            session=session, actor=actor, proposal_id=proposal_id, to_status=status,
            note=note.strip(),
        )
    except YishiError as exc:
        session.rollback()
        return redirect(request, back, error=exc)
    label = proposals.STATUS_LABELS.get(proposal.status, proposal.status)
    return redirect(request, back, ok=f"提案已改为“{label}”")


@router.post(f"{CONSOLE_PATH}/proposals/{{proposal_id}}/close", dependencies=[CsrfChecked])
def proposal_close(
    request: Request, session: SessionDep, actor: StaffUser, proposal_id: int,
    confirm: Annotated[str, Form()] = "",
) -> RedirectResponse:
    """End the vote: the rule decides adopted or rejected (a thin turnout asks to confirm)."""
    back = f"{CONSOLE_PATH}/proposals/{proposal_id}"
    try:
        proposal = proposals.close_voting(
            session=session, actor=actor, proposal_id=proposal_id,
            confirm_low_turnout=confirm == "yes",
        )
    except YishiError as exc:
        session.rollback()
        return redirect(request, back, error=exc)
    label = proposals.STATUS_LABELS.get(proposal.status, proposal.status)
    return redirect(request, back, ok=f"表决已结束，结果：{label}")


@router.post(f"{CONSOLE_PATH}/proposals/{{proposal_id}}/ballots", dependencies=[CsrfChecked])
def proposal_ballot(
    request: Request,
    session: SessionDep,
    actor: StaffUser,
    proposal_id: int,
    voter_id: Annotated[str, Form(max_length=200)] = "",
    choice: Annotated[str, Form()] = "",
) -> RedirectResponse:
    """Record a paper or on-site ballot for a registered owner (noted in the proposal's log)."""
    back = f"{CONSOLE_PATH}/proposals/{proposal_id}"
    try:
        if not voter_id.strip():
            raise Invalid("请先导入业主名册，再代录选票")
        voter = Actor(user_id=voter_id.strip(), role=Role.resident, channel="web")
        proposals.cast_ballot(session=session, actor=voter, proposal_id=proposal_id,
                              choice=choice)
        name = Directory(session).name(voter_id)
        proposals.add_update(session=session, actor=actor, proposal_id=proposal_id,
                             note=f"代录{name}的选票")
    except YishiError as exc:
        session.rollback()
        return redirect(request, back, error=exc)
    return redirect(request, back, ok=f"已记录{name}的选票")


@router.post(f"{CONSOLE_PATH}/proposals/{{proposal_id}}/notes", dependencies=[CsrfChecked])
def proposal_note(
    request: Request,
    session: SessionDep,
    actor: StaffUser,
    proposal_id: int,
    note: Annotated[str, Form(max_length=2000)] = "",
) -> RedirectResponse:
    """Add a progress note to a proposal."""
    back = f"{CONSOLE_PATH}/proposals/{proposal_id}"
    try:
        proposals.add_update(session=session, actor=actor, proposal_id=proposal_id, note=note)
    except YishiError as exc:
        session.rollback()
        return redirect(request, back, error=exc)
    return redirect(request, back, ok="已添加进展说明")


# --- responsibility list ----------------------------------------------------------------------


@router.get(f"{CONSOLE_PATH}/responsibility", response_class=HTMLResponse)
def responsibility_list(request: Request, session: SessionDep, actor: StaffUser) -> HTMLResponse:
    """The responsibility list (责任清单); admins can override entries."""
    entries = responsibility.get_list(session=session)
    return render(
        request,
        "console/responsibility.html",
        {
            "entries": [entries[c] for c in responsibility.CATEGORY_LABELS if c in entries],
            "categories": responsibility.CATEGORY_LABELS,
            "is_admin": actor.role == Role.admin,
        },
    )


def _positive_int(value: str, label: str, *, required: bool) -> int | None:
    value = value.strip()
    if not value:
        if required:
            raise Invalid(f"请填写{label}")
        return None
    if not value.isdigit() or int(value) <= 0:
        raise Invalid(f"{label}必须为正整数（小时）")
    return int(value)


@router.post(f"{CONSOLE_PATH}/responsibility/{{category}}", dependencies=[CsrfChecked])
def responsibility_edit(
    request: Request,
    session: SessionDep,
    actor: StaffUser,
    category: str,
    party: Annotated[str, Form(max_length=100)] = "",
    sla_hours: Annotated[str, Form()] = "",
    urgent_sla_hours: Annotated[str, Form()] = "",
    note: Annotated[str, Form(max_length=500)] = "",
) -> RedirectResponse:
    """Admin: override one category's party and service-level time."""
    back = f"{CONSOLE_PATH}/responsibility"
    try:
        sla = _positive_int(sla_hours, "处理时限", required=True)
        assert sla is not None
        responsibility.set_rule(
            session=session, actor=actor, category=category, party=party, sla_hours=sla,
            urgent_sla_hours=_positive_int(urgent_sla_hours, "紧急时限", required=False),
            note=note.strip(),
        )
    except YishiError as exc:
        session.rollback()
        return redirect(request, back, error=exc)
    label = responsibility.CATEGORY_LABELS.get(category, category)
    return redirect(request, back, ok=f"已更新“{label}”的责任方")


@router.post(f"{CONSOLE_PATH}/responsibility/{{category}}/reset", dependencies=[CsrfChecked])
def responsibility_reset(
    request: Request, session: SessionDep, actor: StaffUser, category: str
) -> RedirectResponse:
    """Admin: drop an override so the file's entry applies again."""
    back = f"{CONSOLE_PATH}/responsibility"
    try:
        responsibility.reset_rule(session=session, actor=actor, category=category)
    except YishiError as exc:
        session.rollback()
        return redirect(request, back, error=exc)
    return redirect(request, back, ok="已恢复默认责任方")


# --- messages Yishi could not answer or deliver -----------------------------------------------


@router.get(f"{CONSOLE_PATH}/failures", response_class=HTMLResponse)
def failures(request: Request, session: SessionDep, actor: StaffUser) -> HTMLResponse:
    """What needs a person: failed messages, undeliverable replies, open 转人工 requests."""
    from yishi.bot import service as bot_service

    flagged = bot_service.get_flagged(session=session)
    return render(
        request,
        "console/failures.html",
        {"inbound": flagged.inbound, "outbound": flagged.outbound, "handoffs": flagged.handoffs},
    )


@router.post(f"{CONSOLE_PATH}/handoffs/{{handoff_id}}/resolve", dependencies=[CsrfChecked])
def handoff_resolve(
    request: Request, session: SessionDep, actor: StaffUser, handoff_id: int
) -> RedirectResponse:
    """Mark a resident's 转人工 request as taken care of."""
    from yishi.bot import memory

    back = f"{CONSOLE_PATH}/failures"
    try:
        memory.resolve_handoff(session=session, handoff_id=handoff_id,
                               by=actor.display_name or "工作人员")
    except YishiError as exc:
        session.rollback()
        return redirect(request, back, error=exc)
    return redirect(request, back, ok="已标记为已处理")


@router.post(f"{CONSOLE_PATH}/handoffs/{{handoff_id}}/reply", dependencies=[CsrfChecked])
def handoff_reply(
    request: Request,
    session: SessionDep,
    actor: StaffUser,
    handoff_id: int,
    text: Annotated[str, Form(max_length=1000)] = "",
    resolve: Annotated[str, Form()] = "",
) -> RedirectResponse:
    """Answer a resident's 转人工 request through the channel they wrote from."""
    from yishi.bot import memory, outbox
    from yishi.bot.memory_models import Handoff
    from yishi.moderation import service as moderation_service

    back = f"{CONSOLE_PATH}/failures"
    try:
        handoff = session.get(Handoff, handoff_id)
        if handoff is None:
            raise Invalid(f"没有编号为 {handoff_id} 的转人工请求")
        body = text.strip()
        if not body:
            raise Invalid("请填写回复内容")
        verdict = moderation_service.screen(body, context="reply")
        if verdict.action == "block":
            raise Invalid("回复内容没有通过内容检查", hint="请修改后再发送")
        who = actor.display_name or "工作人员"
        outbox.notify(session=session, user_id=handoff.user_id,
                      text=f"【{who}回复】{verdict.redacted}")
        if resolve == "yes":
            memory.resolve_handoff(session=session, handoff_id=handoff_id, by=who)
    except YishiError as exc:
        session.rollback()
        return redirect(request, back, error=exc)
    name = Directory(session).name(handoff.user_id)
    return redirect(request, back, ok=f"已回复{name}")
