"""The agent's tools: each validates its arguments, checks the caller's role, and calls a domain
service for the calling actor only (no tool takes a user id from the model)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlmodel import Session

from yishi.bot import memory as memory_service
from yishi.bot.intents import extract_location, normalise
from yishi.bot.prompts import TOOL_RESULT_NOTE
from yishi.bot.text import citation_dicts, format_citation
from yishi.core.auth import Actor
from yishi.core.clock import local_time
from yishi.core.config import Settings
from yishi.core.errors import Forbidden, YishiError
from yishi.core.models import Role

log = logging.getLogger(__name__)

CategoryName = Literal[
    "repairs", "cleaning", "security", "parking", "noise", "pets", "garbage", "greenery",
    "fire_safety", "neighbour_dispute", "elderly_care", "illegal_construction", "fees", "other",
]
ALL_ROLES = (Role.resident, Role.moderator, Role.staff)
VOTE_WORDS = ("同意", "赞成", "支持", "赞同", "反对", "不同意", "不赞成", "跳过", "弃权", "投票",
              "agree", "disagree", "pass")


@dataclass
class ToolContext:
    """Who the tools act for in this turn, and what they did (actions, citations)."""

    session: Session
    actor: Actor
    settings: Settings
    user_text: str = ""
    context_text: str = ""  # the user's recent messages (this one included): what grounds args
    message_ref: str | None = None
    actions: list[dict[str, Any]] = field(default_factory=list)
    citations: list[dict[str, str]] = field(default_factory=list)
    titles: set[str] = field(default_factory=set)  # document titles retrieved this turn


class _Args(BaseModel):
    # Unknown arguments (e.g. a "user_id" the model was talked into) are refused, not ignored.
    model_config = ConfigDict(extra="forbid")


class SearchArgs(_Args):
    query: str = Field(min_length=1, max_length=300, description="检索用的问题或关键词")


class RecordIssueArgs(_Args):
    description: str = Field(min_length=2, max_length=1000, description="问题描述，尽量用居民原话")
    location: str = Field(min_length=1, max_length=100,
                          description="具体位置，如 3栋2单元501、5号楼楼道、地下车库")
    category: CategoryName | None = Field(default=None, description="问题类别")
    urgency: Literal["low", "normal", "high", "urgent"] | None = Field(
        default=None, description="紧急程度")


class NoArgs(_Args):
    pass


class IssueStatusArgs(_Args):
    issue_id: int = Field(ge=1, description="问题编号")


class PostOpinionArgs(_Args):
    thread_id: int = Field(ge=1, description="议题编号")
    text: str = Field(min_length=1, max_length=1000, description="居民的看法，用其原话")


class VoteArgs(_Args):
    statement_id: int = Field(ge=1, description="观点编号")
    value: Literal["agree", "disagree", "pass"] = Field(
        description="同意 agree / 反对 disagree / 跳过 pass")


class SummariseArgs(_Args):
    topic: str | None = Field(default=None, max_length=100, description="议题主题，如 停车收费")
    thread_id: int | None = Field(default=None, ge=1, description="议题编号")


class EscalateArgs(_Args):
    reason: str = Field(min_length=1, max_length=300, description="转人工的原因")


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    args: type[_Args]
    run: Callable[[ToolContext, Any], Any]
    roles: tuple[Role, ...] = ALL_ROLES


def _data(payload: Any) -> str:
    return TOOL_RESULT_NOTE + json.dumps(payload, ensure_ascii=False, default=str)


# ---------------------------------------------------------------- tool bodies
RERANK_POOL = 20  # passages the model reads and reranks for one search
_FULL_TEXT = 5  # the best few go in full; the rest shortened to keep the prompt small


def _search(ctx: ToolContext, args: SearchArgs) -> Any:
    from yishi.knowledge import service as knowledge_service

    hits = list(knowledge_service.search(args.query, k=RERANK_POOL))
    # The model's rewrite and the resident's own words both search; the model reranks the union.
    own = (ctx.user_text or "").strip()
    if own and own != args.query.strip():
        hits += knowledge_service.search(own, k=RERANK_POOL)
    seen: set[tuple[str, str, str]] = set()
    merged = []
    for h in sorted(hits, key=lambda h: -float(getattr(h, "score", 0.0) or 0.0)):
        key = (h.source, h.article, h.text[:40])
        if key not in seen:
            seen.add(key)
            merged.append(h)
    hits = merged[:RERANK_POOL]
    ctx.actions.append({"type": "search_knowledge", "query": args.query, "hits": len(hits)})
    if not hits:
        return {"found": False, "note": "知识库中没有找到相关依据，请如实告诉用户并建议转人工"}
    ctx.citations.extend(citation_dicts(hits))
    ctx.titles.update(h.title.strip("《》") for h in hits)
    return {"found": True, "note": "按检索相关度排列；请判断哪些条文真正回答了问题，只依据它们作答",
            "passages": [
        {"n": n, "cite": format_citation(h.title, h.article), "source": h.source,
         "text": h.text[:600] if n <= _FULL_TEXT else h.text[:200]}
        for n, h in enumerate(hits, 1)
    ]}


def location_grounded(location: str, context: str) -> bool:
    """True if the user actually gave this place (verbatim, or as the same normalised address)."""
    loc, said = normalise(location), normalise(context)
    if loc and loc in said:
        return True
    found = extract_location(context)
    return found is not None and (extract_location(location) == found or found in loc)


def _record_issue(ctx: ToolContext, args: RecordIssueArgs) -> Any:
    from yishi.deliberation import service as deliberation_service

    # A model may fill in a plausible place the resident never gave: ask instead of guessing.
    if not location_grounded(args.location, ctx.context_text or ctx.user_text):
        ctx.actions.append({"type": "ask", "field": "location", "tool": "record_issue"})
        return {"recorded": False,
                "note": "用户没有说明这个位置，请先询问具体位置（如 3栋2单元501），不要猜测"}
    result = deliberation_service.record_issue(
        session=ctx.session, actor=ctx.actor, text=args.description, category=args.category,
        location=args.location, urgency=args.urgency,
    )
    issue = result.issue
    ctx.actions.append({
        "type": "record_issue", "issue_id": issue.id, "category": issue.category,
        "location": issue.location, "urgency": issue.urgency,
        "joined_existing": result.joined_existing, "missing": list(result.missing),
    })
    return {"issue_id": issue.id, "joined_existing": result.joined_existing,
            "responsible_party": issue.responsible_party,
            "due_beijing_time": local_time(issue.due_at) if issue.due_at else None,
            "status": issue.status, "notice": result.notice}


def _issue_dict(issue: Any) -> dict[str, Any]:
    return {"issue_id": issue.id, "text": issue.text[:80], "location": issue.location,
            "status": issue.status, "responsible_party": issue.responsible_party,
            "due_beijing_time": local_time(issue.due_at) if issue.due_at else None}


def _my_issues(ctx: ToolContext, _args: NoArgs) -> Any:
    from yishi.deliberation import service as deliberation_service

    issues = deliberation_service.get_issues_for_reporter(session=ctx.session, actor=ctx.actor)
    ctx.actions.append({"type": "list_issues", "count": len(issues)})
    return {"issues": [_issue_dict(i) for i in issues[:10]], "total": len(issues)}


def _issue_status(ctx: ToolContext, args: IssueStatusArgs) -> Any:
    from yishi.deliberation import service as deliberation_service

    issue = deliberation_service.get_issue(session=ctx.session, actor=ctx.actor,
                                           issue_id=args.issue_id)
    ctx.actions.append({"type": "get_issue", "issue_id": issue.id})
    return _issue_dict(issue)


def _list_threads(ctx: ToolContext, _args: NoArgs) -> Any:
    from yishi.deliberation import service as deliberation_service

    threads = deliberation_service.get_open_threads(session=ctx.session)
    ctx.actions.append({"type": "list_threads", "count": len(threads)})
    out = []
    for t in threads[:5]:
        assert t.id is not None
        statements = deliberation_service.get_statements(session=ctx.session, thread_id=t.id)
        out.append({"thread_id": t.id, "title": t.title, "question": t.question,
                    "statements": [{"statement_id": s.id, "text": s.text} for s in statements[:8]]})
    return {"threads": out}


def _post_opinion(ctx: ToolContext, args: PostOpinionArgs) -> Any:
    from yishi.deliberation import service as deliberation_service
    from yishi.moderation import service as moderation_service

    # The model may have reworded the resident's words: screen what will actually be posted.
    verdict = moderation_service.screen(args.text, context="message")
    if verdict.action != "allow":
        ctx.actions.append({"type": "post_refused", "thread_id": args.thread_id,
                            "moderation": verdict.action})
        return {"posted": False, "note": "该内容未通过内容审核，不能发布；请用户换一种文明的说法"}
    message = deliberation_service.post_to_thread(
        session=ctx.session, actor=ctx.actor, thread_id=args.thread_id,
        text=verdict.redacted or args.text, as_statement=len(args.text) <= 140,
    )
    ctx.actions.append({"type": "post_to_thread", "thread_id": args.thread_id,
                        "message_id": message.id})
    return {"posted": True, "thread_id": args.thread_id, "message_id": message.id}


def _vote(ctx: ToolContext, args: VoteArgs) -> Any:
    from yishi.deliberation import service as deliberation_service

    # A vote must come from the resident's own words this turn, not from retrieved text.
    if not any(w in normalise(ctx.user_text) for w in VOTE_WORDS):
        ctx.actions.append({"type": "vote_refused", "statement_id": args.statement_id})
        return {"voted": False, "note": "用户本轮没有表达投票意愿，不能代为投票；请先向用户确认"}
    deliberation_service.vote(session=ctx.session, actor=ctx.actor,
                              statement_id=args.statement_id, value=args.value)
    ctx.actions.append({"type": "vote", "statement_id": args.statement_id, "value": args.value})
    return {"voted": True, "statement_id": args.statement_id, "value": args.value}


def _summarise(ctx: ToolContext, args: SummariseArgs) -> Any:
    from yishi.bot.offline import format_summary
    from yishi.deliberation import service as deliberation_service

    kwargs: dict[str, Any] = {"thread_id": args.thread_id} if args.thread_id else {
        "topic": args.topic or ctx.user_text}
    summary = deliberation_service.summarise_thread(session=ctx.session, actor=ctx.actor,
                                                    **kwargs)
    ctx.actions.append({"type": "summarise_thread", "thread_id": summary.thread_id,
                        "topic": args.topic})
    return {"summary_text": format_summary(summary)}


def _escalate(ctx: ToolContext, args: EscalateArgs) -> Any:
    row = memory_service.record_handoff(
        session=ctx.session, user_id=ctx.actor.user_id, channel=ctx.actor.channel,
        reason=args.reason, text=ctx.user_text, message_ref=ctx.message_ref,
    )
    ctx.actions.append({"type": "handoff", "handoff_id": row.id, "reason": args.reason})
    return {"handoff_id": row.id, "note": "已转人工，请告诉用户工作人员会尽快联系"}


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec("search_knowledge", "检索政策法规和社区文件，回答政策问题前必须先调用", SearchArgs,
             _search),
    ToolSpec("record_issue", "为当前用户记录一个要处理的问题（必须有具体位置）", RecordIssueArgs,
             _record_issue),
    ToolSpec("my_issues", "列出当前用户反映过的问题及进度", NoArgs, _my_issues),
    ToolSpec("issue_status", "查询当前用户某个问题的进度", IssueStatusArgs, _issue_status),
    ToolSpec("list_threads", "列出正在讨论的议题和可投票的观点", NoArgs, _list_threads),
    ToolSpec("post_opinion", "把当前用户的看法发到某个议题", PostOpinionArgs, _post_opinion),
    ToolSpec("vote", "当前用户对某条观点投票", VoteArgs, _vote),
    ToolSpec("summarise_thread", "总结某个议题的讨论（仅限社区工作人员）", SummariseArgs,
             _summarise, roles=(Role.staff,)),
    ToolSpec("escalate", "转人工：记录下来交给社区工作人员跟进", EscalateArgs, _escalate),
)
TOOLS_BY_NAME = {t.name: t for t in TOOLS}


def openai_tool_schemas() -> list[dict[str, Any]]:
    """The tools in OpenAI function-calling form (what `bind_tools` sends)."""
    out = []
    for spec in TOOLS:
        params = spec.args.model_json_schema()
        params.pop("title", None)
        out.append({"type": "function", "function": {
            "name": spec.name, "description": spec.description, "parameters": params}})
    return out


def run_tool(ctx: ToolContext, name: str, raw_args: Any) -> str:
    """Validate, role-check and run one tool call; the result (or error) as text for the model."""
    spec = TOOLS_BY_NAME.get(name)
    if spec is None:
        ctx.actions.append({"type": "tool_error", "tool": name, "error": "unknown_tool"})
        return _data({"error": f"没有名为 {name} 的工具"})
    if isinstance(raw_args, str):
        try:
            raw_args = json.loads(raw_args or "{}")
        except json.JSONDecodeError:
            ctx.actions.append({"type": "tool_error", "tool": name, "error": "malformed_arguments"})
            return _data({"error": "参数不是合法的 JSON，请重新调用"})
    try:
        args = spec.args.model_validate(raw_args or {})
    except ValidationError as exc:
        fields = sorted({str(e["loc"][0]) if e["loc"] else "?" for e in exc.errors()})
        ctx.actions.append({"type": "tool_error", "tool": name, "error": "invalid_arguments",
                            "fields": fields})
        return _data({"error": "参数不正确", "fields": fields,
                      "hint": "缺少的信息请先询问用户；不要填写用户编号"})
    if not ctx.actor.has_role(*spec.roles):
        ctx.actions.append({"type": "tool_denied", "tool": name, "role": ctx.actor.role.value})
        return _data({"error": "当前用户没有权限使用这个功能", "tool": name})
    try:
        result = spec.run(ctx, args)
    except Forbidden as exc:
        ctx.actions.append({"type": "tool_denied", "tool": name, "error": exc.message})
        return _data({"error": exc.message})
    except YishiError as exc:
        ctx.actions.append({"type": "tool_error", "tool": name, "error": exc.message})
        return _data({"error": exc.message, "hint": exc.hint})
    except Exception as exc:
        log.exception("tool %s failed", name)
        memory_service.recover(ctx.session)
        ctx.actions.append({"type": "tool_error", "tool": name, "error": type(exc).__name__})
        return _data({"error": "该功能暂时不可用，可建议用户转人工"})
    return _data(result)
