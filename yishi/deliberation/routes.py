"""HTTP API of the deliberation domain: issues, the responsibility list, threads, votes,
summaries and proposals. Thin: logic lives in the service modules."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from sqlmodel import Session

from yishi.core.clock import utcnow
from yishi.core.config import get_settings
from yishi.core.deps import (
    AdminActor,
    ResidentActor,
    SessionDep,
    StaffActor,
)
from yishi.core.errors import Invalid
from yishi.core.llm import ChatModel, build_chat_model
from yishi.core.models import Role
from yishi.deliberation import flows, issues, proposals, responsibility, summaries, threads
from yishi.deliberation.models import Issue, Proposal, Thread
from yishi.deliberation.schemas import (
    STATUS_LABELS,
    VOTE_NAMES,
    BallotCreate,
    IssueAssign,
    IssueCreate,
    IssueEventRead,
    IssueRead,
    IssueRecordedRead,
    IssueStatusChange,
    MessageCreate,
    MessageRead,
    OwnerUnitWrite,
    ProposalDraft,
    ProposalEdit,
    ProposalNote,
    ProposalRead,
    ProposalStatusChange,
    ResponsibilityRead,
    ResponsibilityWrite,
    StatementRead,
    SummariseRequest,
    ThreadCreate,
    ThreadRead,
    ThreadSummary,
    VoteCreate,
    VoteRead,
)

router = APIRouter(prefix="/api/deliberation", tags=["deliberation"])
flows.register_moderation_handlers()


def _issue(issue: Issue, now: datetime | None = None, *, public: bool = False) -> IssueRead:
    return IssueRead(
        id=issue.id or 0, reporter_id="" if public else issue.reporter_id, text=issue.text,
        category=issue.category, location=issue.location, building=issue.building,
        urgency=issue.urgency, media=list(issue.media or []), status=issue.status,
        status_label=STATUS_LABELS.get(issue.status, issue.status),
        reject_reason=issue.reject_reason, responsible_party=issue.responsible_party,
        due_at=issue.due_at, overdue=issues.is_overdue(issue, now or utcnow()),
        supporter_count=issue.supporter_count, created_at=issue.created_at,
        updated_at=issue.updated_at, resolved_at=issue.resolved_at,
    )


def _thread(t: Thread) -> ThreadRead:
    return ThreadRead(id=t.id or 0, title=t.title, question=t.question, status=t.status,
                      created_at=t.created_at)


def _proposal(p: Proposal) -> ProposalRead:
    return ProposalRead.model_validate(p, from_attributes=True)


def _llm(request: Request) -> ChatModel | None:
    """The app's chat model (built in the lifespan, or here on first use); None: offline."""
    state = request.app.state
    model: ChatModel | None = getattr(state, "chat_model", None)
    settings = getattr(state, "settings", None) or get_settings()
    if model is None and settings.llm_enabled:
        model = state.chat_model = build_chat_model(settings)
    return model


# --- issues ---------------------------------------------------------------------------------


@router.post("/issues", response_model=IssueRecordedRead)
def report_issue(body: IssueCreate, session: SessionDep, actor: ResidentActor
                 ) -> IssueRecordedRead:
    """Report an issue. The text is screened; personal data is redacted; a repeat of an open
    issue at the same place joins it as a supporter."""
    out = flows.record_screened_issue(session=session, actor=actor, text=body.text,
                                      category=body.category, location=body.location,
                                      urgency=body.urgency, media=body.media)
    if out.recorded is None:
        return IssueRecordedRead(issue=None, joined_existing=False, missing=[],
                                 notice=out.notice, held=True)
    r = out.recorded
    return IssueRecordedRead(issue=_issue(r.issue), joined_existing=r.joined_existing,
                             missing=r.missing, notice=r.notice)


@router.get("/issues/mine", response_model=list[IssueRead])
def my_issues(session: SessionDep, actor: ResidentActor) -> list[IssueRead]:
    """Issues I reported or support, newest first."""
    now = utcnow()
    return [_issue(i, now, public=not issues.sees_reporter(actor, i))
            for i in issues.get_issues_for_reporter(session=session, actor=actor)]


@router.get("/issues", response_model=list[IssueRead])
def list_issues(
    session: SessionDep,
    actor: ResidentActor,
    party: str | None = None,
    status: str | None = None,
    building: str | None = None,
    category: str | None = None,
    overdue: bool | None = None,
    limit: int = 200,
) -> list[IssueRead]:
    """The issue board: filter by responsible party, status, building, category and overdue.
    Residents see the public board: no reporter ids and no personal categories."""
    now = utcnow()
    rows = issues.list_issues(session=session, actor=actor, party=party, status=status,
                              building=building, category=category, overdue=overdue,
                              limit=min(max(limit, 1), 1000))
    public = not actor.has_role(Role.staff)
    return [_issue(i, now, public=public) for i in rows]


@router.get("/issues/{issue_id}", response_model=IssueRead)
def get_issue(issue_id: int, session: SessionDep, actor: ResidentActor) -> IssueRead:
    """One issue (residents: only their own or ones they support; supporters never see who
    reported it)."""
    issue = issues.get_issue(session=session, actor=actor, issue_id=issue_id)
    return _issue(issue, public=not issues.sees_reporter(actor, issue))


@router.get("/issues/{issue_id}/timeline", response_model=list[IssueEventRead])
def issue_timeline(issue_id: int, session: SessionDep, actor: ResidentActor
                   ) -> list[IssueEventRead]:
    """The issue's timeline of events."""
    return [IssueEventRead.model_validate(e, from_attributes=True)
            for e in issues.get_timeline(session=session, actor=actor, issue_id=issue_id)]


@router.post("/issues/{issue_id}/status", response_model=IssueRead)
def change_issue_status(issue_id: int, body: IssueStatusChange, session: SessionDep,
                        actor: StaffActor) -> IssueRead:
    """Move an issue along its status path (staff); the reporter and supporters are notified."""
    return _issue(flows.change_issue_status(session=session, actor=actor, issue_id=issue_id,
                                            to_status=body.status, note=body.note,
                                            reason=body.reason))


@router.post("/issues/{issue_id}/assign", response_model=IssueRead)
def assign_issue(issue_id: int, body: IssueAssign, session: SessionDep, actor: StaffActor
                 ) -> IssueRead:
    """Hand an issue to a responsible party (staff); due time from the list unless given."""
    return _issue(flows.assign_issue(session=session, actor=actor, issue_id=issue_id,
                                     party=body.party, due_at=body.due_at, note=body.note))


# --- responsibility list -----------------------------------------------------------------------


def _entries(session: Session) -> list[ResponsibilityRead]:
    return [
        ResponsibilityRead(category=e.category,
                           label=responsibility.CATEGORY_LABELS.get(e.category, e.category),
                           party=e.party, sla_hours=e.sla_hours,
                           urgent_sla_hours=e.urgent_sla_hours, note=e.note, source=e.source)
        for e in responsibility.get_list(session=session).values()
    ]


@router.get("/responsibility", response_model=list[ResponsibilityRead])
def get_responsibility(session: SessionDep, _actor: ResidentActor) -> list[ResponsibilityRead]:
    """The responsibility list: who handles each category, and within how many hours."""
    return _entries(session)


@router.put("/responsibility/{category}", response_model=list[ResponsibilityRead])
def put_responsibility(category: str, body: ResponsibilityWrite, session: SessionDep,
                       actor: AdminActor) -> list[ResponsibilityRead]:
    """Override one category's responsible party and service-level time (admin)."""
    responsibility.set_rule(session=session, actor=actor, category=category, party=body.party,
                            sla_hours=body.sla_hours, urgent_sla_hours=body.urgent_sla_hours,
                            note=body.note)
    return _entries(session)


@router.delete("/responsibility/{category}", response_model=list[ResponsibilityRead])
def reset_responsibility(category: str, session: SessionDep, actor: AdminActor
                         ) -> list[ResponsibilityRead]:
    """Drop an admin override so the configured file applies again (admin)."""
    responsibility.reset_rule(session=session, actor=actor, category=category)
    return _entries(session)


# --- threads, statements, votes ----------------------------------------------------------------


@router.get("/threads", response_model=list[ThreadRead])
def list_threads(session: SessionDep, actor: ResidentActor, all: bool = False
                 ) -> list[ThreadRead]:
    """Open threads (staff may ask for all)."""
    if all and actor.has_role(Role.staff, Role.moderator):
        return [_thread(t) for t in threads.get_all_threads(session=session)]
    return [_thread(t) for t in threads.get_open_threads(session=session)]


@router.post("/threads", response_model=ThreadRead)
def create_thread(body: ThreadCreate, session: SessionDep, actor: StaffActor) -> ThreadRead:
    """Open a thread with a question and seed statements (staff)."""
    return _thread(threads.create_thread(session=session, actor=actor, title=body.title,
                                         question=body.question, statements=body.statements))


@router.get("/threads/{thread_id}", response_model=ThreadRead)
def get_thread(thread_id: int, session: SessionDep, _actor: ResidentActor) -> ThreadRead:
    """One thread."""
    return _thread(threads.get_thread(session=session, thread_id=thread_id))


@router.post("/threads/{thread_id}/close", response_model=ThreadRead)
def close_thread(thread_id: int, session: SessionDep, actor: StaffActor) -> ThreadRead:
    """Close a thread to new messages and votes (staff)."""
    return _thread(threads.close_thread(session=session, actor=actor, thread_id=thread_id))


@router.get("/threads/{thread_id}/statements", response_model=list[StatementRead])
def list_statements(thread_id: int, session: SessionDep, _actor: ResidentActor
                    ) -> list[StatementRead]:
    """The thread's statements with their vote counts."""
    threads.get_thread(session=session, thread_id=thread_id)
    counts = threads.tally(session=session, thread_id=thread_id)
    out = []
    for s in threads.get_statements(session=session, thread_id=thread_id):
        c = counts.get(s.id or 0, {})
        out.append(StatementRead(id=s.id or 0, thread_id=thread_id, text=s.text,
                                 agree=c.get("agree", 0), disagree=c.get("disagree", 0),
                                 passed=c.get("pass", 0)))
    return out


@router.get("/threads/{thread_id}/messages", response_model=list[MessageRead])
def list_messages(thread_id: int, session: SessionDep, _actor: ResidentActor
                  ) -> list[MessageRead]:
    """The thread's published messages."""
    threads.get_thread(session=session, thread_id=thread_id)
    return [MessageRead(id=m.id, thread_id=thread_id, text=m.text, visible=m.visible)
            for m in threads.get_messages(session=session, thread_id=thread_id)]


@router.post("/threads/{thread_id}/messages", response_model=MessageRead)
def post_message(thread_id: int, body: MessageCreate, session: SessionDep, actor: ResidentActor
                 ) -> MessageRead:
    """Post a message (optionally as a statement to vote on). It is screened first: personal
    data is redacted, and anything doubtful waits for a moderator."""
    out = flows.post_screened(session=session, actor=actor, thread_id=thread_id, text=body.text,
                              as_statement=body.as_statement)
    assert out.message is not None
    return MessageRead(id=out.message.id, thread_id=thread_id,
                       text=out.message.text if not out.held else "", visible=not out.held,
                       held=out.held, notice=out.notice, statement_id=out.statement_id)


@router.post("/statements/{statement_id}/vote", response_model=VoteRead)
def vote(statement_id: int, body: VoteCreate, session: SessionDep, actor: ResidentActor
         ) -> VoteRead:
    """Vote agree / disagree / pass on a statement; voting again changes the vote."""
    row = threads.vote(session=session, actor=actor, statement_id=statement_id,
                       value=body.value)
    return VoteRead(statement_id=statement_id, value=VOTE_NAMES[row.value],  # type: ignore[arg-type]
                    changed=row.updated_at != row.created_at)


# --- summaries ------------------------------------------------------------------------------


@router.post("/summaries", response_model=ThreadSummary)
def summarise(body: SummariseRequest, request: Request, session: SessionDep, actor: StaffActor
              ) -> ThreadSummary:
    """A cited summary of a thread, by id or by topic ("停车收费") (staff)."""
    if body.thread_id is None and not body.topic:
        raise Invalid("请指定议题编号或话题", hint="例如 {\"topic\": \"停车收费\"}")
    return summaries.summarise_thread(session=session, actor=actor, thread_id=body.thread_id,
                                      topic=body.topic, llm=_llm(request))


@router.get("/threads/{thread_id}/summary", response_model=ThreadSummary)
def thread_summary(thread_id: int, request: Request, session: SessionDep, actor: StaffActor
                   ) -> ThreadSummary:
    """A fresh cited summary of one thread (staff)."""
    return summaries.summarise_thread(session=session, actor=actor, thread_id=thread_id,
                                      llm=_llm(request))


# --- proposals ------------------------------------------------------------------------------


@router.post("/proposals", response_model=ProposalRead)
def draft_proposal(body: ProposalDraft, session: SessionDep, actor: StaffActor) -> ProposalRead:
    """Draft a proposal from a summary (or a thread's latest summary) (staff)."""
    return _proposal(proposals.draft_from_summary(
        session=session, actor=actor, summary_id=body.summary_id, thread_id=body.thread_id,
        proposal_type=body.proposal_type, title=body.title))


@router.get("/proposals", response_model=list[ProposalRead])
def list_proposals(session: SessionDep, _actor: ResidentActor, status: str | None = None
                   ) -> list[ProposalRead]:
    """Proposals, newest first."""
    return [_proposal(p) for p in proposals.get_all(session=session, status=status)]


@router.get("/proposal-types")
def proposal_types(_actor: ResidentActor) -> list[dict[str, Any]]:
    """Proposal types and the voting rule of each (Civil Code art. 278 for owners' matters)."""
    return [{"type": k, "label": r.label, "owners_only": r.owners_only, "majority": r.majority,
             "quorum": r.quorum, "article": r.article}
            for k, r in proposals.PROPOSAL_TYPES.items()]


@router.get("/proposals/{proposal_id}", response_model=ProposalRead)
def get_proposal(proposal_id: int, session: SessionDep, _actor: ResidentActor) -> ProposalRead:
    """One proposal."""
    return _proposal(proposals.get(session=session, proposal_id=proposal_id))


@router.patch("/proposals/{proposal_id}", response_model=ProposalRead)
def edit_proposal(proposal_id: int, body: ProposalEdit, session: SessionDep, actor: StaffActor
                  ) -> ProposalRead:
    """Edit a draft proposal (staff)."""
    return _proposal(proposals.edit(session=session, actor=actor, proposal_id=proposal_id,
                                    changes=body.model_dump(exclude_none=True)))


@router.post("/proposals/{proposal_id}/status", response_model=ProposalRead)
def proposal_status(proposal_id: int, body: ProposalStatusChange, session: SessionDep,
                    actor: StaffActor) -> ProposalRead:
    """Move a proposal: draft → voting; adopted → in_progress → done (staff); the people who
    discussed it are told."""
    return _proposal(flows.change_proposal_status(session=session, actor=actor,
                                                  proposal_id=proposal_id,
                                                  to_status=body.status, note=body.note))


@router.get("/proposals/{proposal_id}/updates")
def proposal_updates(proposal_id: int, session: SessionDep, _actor: ResidentActor
                     ) -> list[dict[str, Any]]:
    """A proposal's status changes and progress notes."""
    return [u.model_dump(mode="json")
            for u in proposals.get_updates(session=session, proposal_id=proposal_id)]


@router.post("/proposals/{proposal_id}/updates")
def add_proposal_update(proposal_id: int, body: ProposalNote, session: SessionDep,
                        actor: StaffActor) -> dict[str, Any]:
    """Add a progress note (staff)."""
    return proposals.add_update(session=session, actor=actor, proposal_id=proposal_id,
                                note=body.note).model_dump(mode="json")


@router.post("/proposals/{proposal_id}/ballots")
def cast_ballot(proposal_id: int, body: BallotCreate, session: SessionDep,
                actor: ResidentActor) -> dict[str, Any]:
    """Vote on a proposal in voting (owners' matters: recorded owners only); changeable."""
    row = proposals.cast_ballot(session=session, actor=actor, proposal_id=proposal_id,
                                choice=body.choice)
    return {"proposal_id": proposal_id, "choice": row.choice}


@router.get("/proposals/{proposal_id}/tally")
def proposal_tally(proposal_id: int, session: SessionDep, _actor: StaffActor
                   ) -> dict[str, Any]:
    """The running count under the proposal's rule (staff)."""
    return proposals.tally(session=session, proposal_id=proposal_id)


@router.post("/proposals/{proposal_id}/close", response_model=ProposalRead)
def close_voting(proposal_id: int, session: SessionDep, actor: StaffActor) -> ProposalRead:
    """End the vote; the rule decides adopted or rejected (staff)."""
    return _proposal(flows.close_proposal_voting(session=session, actor=actor,
                                                 proposal_id=proposal_id))


@router.put("/units")
def put_unit(body: OwnerUnitWrite, session: SessionDep, actor: StaffActor) -> dict[str, Any]:
    """Record a unit's owner and exclusive area for art. 278 counting (staff)."""
    return proposals.record_unit(session=session, actor=actor, unit=body.unit,
                                 owner_id=body.owner_id, area_m2=body.area_m2
                                 ).model_dump(mode="json")


@router.get("/units")
def list_units(session: SessionDep, _actor: StaffActor) -> list[dict[str, Any]]:
    """Recorded units (staff)."""
    return [u.model_dump(mode="json") for u in proposals.get_units(session=session)]
