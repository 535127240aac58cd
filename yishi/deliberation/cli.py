"""`yishi issues ...`, `yishi responsibility ...`, `yishi threads ...`, `yishi proposals ...`
for staff at the server, plus the consensus math's own commands."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from sqlmodel import Session

from yishi.core.auth import Actor
from yishi.core.clock import COMPACT_FORMAT, local_time
from yishi.core.config import get_settings
from yishi.core.models import Role

# Commands run on the server itself: the operator acts with the admin role.
OPERATOR = Actor(user_id="cli:operator", role=Role.admin, channel="cli", display_name="运维")

issues_app = typer.Typer(help="Reported issues: the board, status changes, the overdue sweep.",
                         no_args_is_help=True)
responsibility_app = typer.Typer(help="The responsibility list (category → party + SLA).",
                                 no_args_is_help=True)
threads_app = typer.Typer(help="Discussion threads (议题), statements and summaries.",
                          no_args_is_help=True)
proposals_app = typer.Typer(help="Proposals drafted from summaries and their votes.",
                            no_args_is_help=True)


@contextmanager
def _session() -> Iterator[Session]:
    from yishi.core.db import init_db, session_scope

    settings = get_settings()
    init_db(settings)
    with session_scope(settings) as session:
        yield session


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


# --- issues ---------------------------------------------------------------------------------


@issues_app.command("list")
def issues_list(
    party: Annotated[str | None, typer.Option(help="Responsible party, e.g. 物业公司.")] = None,
    status: Annotated[str | None, typer.Option(help="reported|assigned|in_progress|...")] = None,
    building: Annotated[str | None, typer.Option(help="Building number, e.g. 3.")] = None,
    overdue: Annotated[bool, typer.Option("--overdue", help="Only overdue issues.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The issue board, by party, status, building and overdue."""
    from yishi.deliberation import issues
    from yishi.deliberation.schemas import STATUS_LABELS

    with _session() as session:
        rows = issues.list_issues(session=session, actor=OPERATOR, party=party, status=status,
                                  building=building, overdue=True if overdue else None)
        if as_json:
            _echo_json([r.model_dump(mode="json") | {"overdue": issues.is_overdue(r)}
                        for r in rows])
            return
        if not rows:
            typer.echo("没有符合条件的问题")
        for r in rows:
            late = " 【超期】" if issues.is_overdue(r) else ""
            due = local_time(r.due_at, COMPACT_FORMAT) if r.due_at else "-"
            typer.echo(f"#{r.id}\t{STATUS_LABELS.get(r.status, r.status)}\t"
                       f"{r.responsible_party or '未派单'}\t{due}{late}\t{r.text[:40]}")


@issues_app.command("show")
def issues_show(issue_id: Annotated[int, typer.Argument(help="Issue number.")]) -> None:
    """One issue with its timeline."""
    from yishi.deliberation import issues

    with _session() as session:
        issue = issues.get_issue(session=session, actor=OPERATOR, issue_id=issue_id)
        events = issues.get_timeline(session=session, actor=OPERATOR, issue_id=issue_id)
        _echo_json({"issue": issue.model_dump(mode="json"),
                    "supporters": issues.get_supporters(session=session, issue_id=issue_id),
                    "timeline": [e.model_dump(mode="json") for e in events]})


@issues_app.command("status")
def issues_status(
    issue_id: Annotated[int, typer.Argument(help="Issue number.")],
    status: Annotated[str, typer.Argument(help="assigned|in_progress|resolved|closed|rejected")],
    note: Annotated[str, typer.Option(help="A note for the reporter.")] = "",
    reason: Annotated[str | None, typer.Option(help="Why (required for rejected).")] = None,
) -> None:
    """Change an issue's status; the reporter and supporters are notified."""
    from yishi.deliberation import flows

    with _session() as session:
        issue = flows.change_issue_status(session=session, actor=OPERATOR, issue_id=issue_id,
                                          to_status=status, note=note, reason=reason)
        typer.echo(f"#{issue.id} → {issue.status}")


@issues_app.command("assign")
def issues_assign(
    issue_id: Annotated[int, typer.Argument(help="Issue number.")],
    party: Annotated[str, typer.Argument(help="Responsible party.")],
) -> None:
    """Hand an issue to a party (due time from the responsibility list)."""
    from yishi.deliberation import flows

    with _session() as session:
        issue = flows.assign_issue(session=session, actor=OPERATOR, issue_id=issue_id,
                                   party=party)
        due = local_time(issue.due_at, COMPACT_FORMAT) if issue.due_at else "-"
        typer.echo(f"#{issue.id} → {issue.responsible_party}，{due} 前（北京时间）")


@issues_app.command("sweep")
def issues_sweep() -> None:
    """Flag overdue issues now and notify staff (the worker does this every 5 minutes)."""
    from yishi.deliberation import flows

    with _session() as session:
        flagged = flows.flag_overdue_and_notify(session=session)
        typer.echo(f"新标记超期 {len(flagged)} 个")


# --- responsibility list -----------------------------------------------------------------------


@responsibility_app.command("list")
def responsibility_list() -> None:
    """The effective responsibility list."""
    from yishi.deliberation import responsibility

    with _session() as session:
        for e in responsibility.get_list(session=session).values():
            urgent = f"（紧急 {e.urgent_sla_hours} 小时）" if e.urgent_sla_hours else ""
            label = responsibility.CATEGORY_LABELS.get(e.category, e.category)
            typer.echo(f"{e.category}\t{label}\t{e.party}\t{e.sla_hours} 小时{urgent}\t"
                       f"[{e.source}]")


@responsibility_app.command("set")
def responsibility_set(
    category: Annotated[str, typer.Argument(help="Category, e.g. repairs.")],
    party: Annotated[str, typer.Argument(help="Responsible party.")],
    sla_hours: Annotated[int, typer.Argument(help="Service-level time in hours.")],
    urgent_sla_hours: Annotated[int | None, typer.Option(help="SLA for urgent issues.")] = None,
) -> None:
    """Override one category (stored in the database)."""
    from yishi.deliberation import responsibility

    with _session() as session:
        responsibility.set_rule(session=session, actor=OPERATOR, category=category, party=party,
                                sla_hours=sla_hours, urgent_sla_hours=urgent_sla_hours)
        typer.echo(f"{category} → {party}，{sla_hours} 小时")


# --- threads --------------------------------------------------------------------------------


@threads_app.command("list")
def threads_list(all_threads: Annotated[bool, typer.Option("--all", help="Closed too.")] = False
                 ) -> None:
    """Open threads (or all)."""
    from yishi.deliberation import threads

    with _session() as session:
        rows = (threads.get_all_threads(session=session) if all_threads
                else threads.get_open_threads(session=session))
        for t in rows:
            typer.echo(f"#{t.id}\t{t.status}\t{t.title}\t{t.question}")


@threads_app.command("create")
def threads_create(
    title: Annotated[str, typer.Argument(help="Short title.")],
    question: Annotated[str, typer.Argument(help="The question under discussion.")],
    statement: Annotated[list[str] | None, typer.Option(help="Seed statement (repeatable).")
                         ] = None,
) -> None:
    """Open a thread."""
    from yishi.deliberation import threads

    with _session() as session:
        t = threads.create_thread(session=session, actor=OPERATOR, title=title,
                                  question=question, statements=statement or [])
        typer.echo(f"已创建议题 #{t.id}")


@threads_app.command("show")
def threads_show(thread_id: Annotated[int, typer.Argument(help="Thread number.")]) -> None:
    """A thread's statements with vote counts."""
    from yishi.deliberation import threads

    with _session() as session:
        t = threads.get_thread(session=session, thread_id=thread_id)
        counts = threads.tally(session=session, thread_id=thread_id)
        typer.echo(f"#{t.id} {t.title}：{t.question}")
        for s in threads.get_statements(session=session, thread_id=thread_id):
            c = counts.get(s.id or 0, {"agree": 0, "disagree": 0, "pass": 0})
            counts_text = f"同意 {c['agree']} 反对 {c['disagree']} 跳过 {c['pass']}"
            typer.echo(f"s{s.id}\t{counts_text}\t{s.text}")


@threads_app.command("close")
def threads_close(thread_id: Annotated[int, typer.Argument(help="Thread number.")]) -> None:
    """Close a thread."""
    from yishi.deliberation import threads

    with _session() as session:
        threads.close_thread(session=session, actor=OPERATOR, thread_id=thread_id)
        typer.echo(f"议题 #{thread_id} 已结束讨论")


@threads_app.command("summary")
def threads_summary(
    thread_id: Annotated[int | None, typer.Argument(help="Thread number.")] = None,
    topic: Annotated[str | None, typer.Option(help='Find the thread by topic, e.g. "停车收费".')
                     ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A cited summary (offline, extractive over the consensus math)."""
    from yishi.deliberation import summaries

    with _session() as session:
        s = summaries.summarise_thread(session=session, actor=OPERATOR, thread_id=thread_id,
                                       topic=topic)
        if as_json:
            _echo_json(s.model_dump(mode="json"))
        else:
            typer.echo(summaries.render_text(s))


# --- proposals ------------------------------------------------------------------------------


@proposals_app.command("draft")
def proposals_draft(
    thread_id: Annotated[int, typer.Argument(help="Thread number.")],
    proposal_type: Annotated[str, typer.Option("--type", help="consultation, rebuild, ...")
                             ] = "consultation",
) -> None:
    """Draft a proposal from the thread's latest summary."""
    from yishi.deliberation import proposals

    with _session() as session:
        p = proposals.draft_from_summary(session=session, actor=OPERATOR, thread_id=thread_id,
                                         proposal_type=proposal_type)
        _echo_json(p.model_dump(mode="json"))


@proposals_app.command("list")
def proposals_list() -> None:
    """Proposals, newest first."""
    from yishi.deliberation import proposals

    with _session() as session:
        for p in proposals.get_all(session=session):
            typer.echo(f"#{p.id}\t{proposals.STATUS_LABELS.get(p.status, p.status)}\t"
                       f"{p.proposal_type}\t{p.title}")


@proposals_app.command("tally")
def proposals_tally(proposal_id: Annotated[int, typer.Argument(help="Proposal number.")]
                    ) -> None:
    """The running count under the proposal's voting rule."""
    from yishi.deliberation import proposals

    with _session() as session:
        _echo_json(proposals.tally(session=session, proposal_id=proposal_id))


def register(app: typer.Typer, eval_app: typer.Typer) -> None:
    """Add the deliberation commands (and the consensus math's) to `yishi`."""
    app.add_typer(issues_app, name="issues")
    app.add_typer(responsibility_app, name="responsibility")
    app.add_typer(threads_app, name="threads")
    app.add_typer(proposals_app, name="proposals")
    from yishi.deliberation.consensus_cli import register_consensus

    register_consensus(app)
