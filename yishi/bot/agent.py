"""The LLM engine: a LangChain tool-calling agent (chat model + bound tools + a small bounded loop)
that falls back to the offline engine on any LLM error or timeout."""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session

from yishi.bot import memory as memory_service
from yishi.bot.engine import EngineReply
from yishi.bot.intents import classify, injection_signals
from yishi.bot.offline import CATEGORY_LABELS, INJECTION_REFUSAL, OfflineEngine
from yishi.bot.prompts import MEMORY_FRAME, SYSTEM_PROMPT, TOOL_RESULT_NOTE, system_prompt
from yishi.bot.text import citation_dicts, finalise_reply
from yishi.bot.tools import ToolContext, openai_tool_schemas, run_tool
from yishi.core.auth import Actor
from yishi.core.config import Settings
from yishi.core.llm import Usage, bind_tools, build_chat_model

log = logging.getLogger(__name__)

MAX_STEPS = 5  # model calls per turn: enough for search → answer, or list → post → answer
SIDE_EFFECTS = ("record_issue", "post_to_thread", "vote", "handoff")
_TOOL_INTENTS = {
    "record_issue": "report", "record_issue_failed": "report", "search_knowledge": "question",
    "list_issues": "status", "get_issue": "status", "list_threads": "discussion",
    "post_to_thread": "discussion", "post_refused": "discussion", "summarise_thread": "discussion",
    "vote": "vote", "vote_refused": "vote", "handoff": "command",
}
_REFUSAL = ("抱歉，这个我不能提供。我可以帮您查政策、反映问题、查进度或参与议题讨论，"
            "回复“帮助”查看用法。")


class TurnTimeout(Exception):
    """The whole turn ran past its deadline (e.g. a slow stream that never ends)."""


class AgentEngine:
    """LLM agent with tools; the offline engine answers whenever the LLM cannot."""

    def __init__(self, settings: Settings, *, fallback: OfflineEngine | None = None,
                 model: Any | None = None, turn_timeout: float | None = None) -> None:
        self.settings = settings
        self.fallback = fallback or OfflineEngine(settings)
        self._model = model
        # A per-read timeout does not bound a stream that trickles forever: bound the turn too.
        self.turn_timeout = turn_timeout or settings.llm_timeout * 3

    @property
    def model(self) -> Any:
        """The tool-bound chat model (built on first use)."""
        if self._model is None:
            self._model = bind_tools(build_chat_model(self.settings), openai_tool_schemas())
        return self._model

    def respond(
        self, *, session: Session, actor: Actor, text: str, message_ref: str | None = None
    ) -> EngineReply:
        """Answer with the LLM and tools; on any LLM failure, the offline engine answers."""
        text = (text or "").strip()
        routed = classify(text) if text else None
        if routed is not None and routed.command in {"clear", "erase", "erase_confirm", "export"}:
            # Forgetting must not depend on a model's goodwill.
            return self.fallback.respond(session=session, actor=actor, text=text,
                                         message_ref=message_ref)
        signals = injection_signals(text)
        if signals:
            # Refused before any model call: the model never sees the attempt, tools never run.
            return self._refuse(session, actor, text, message_ref, signals)
        ctx = ToolContext(session=session, actor=actor, settings=self.settings, user_text=text,
                          context_text=text, message_ref=message_ref)
        usage = Usage()
        started = time.perf_counter()
        try:
            mem = memory_service.load(session=session, user_id=actor.user_id,
                                      settings=self.settings)
            recent = [t.text for t in mem.turns[-6:] if t.speaker == "user"]
            ctx.context_text = "\n".join([*recent, text])
            reply, passages = self._loop(ctx, mem, text, usage)
        except Exception as exc:
            return self._fall_back(session, actor, text, message_ref, ctx, usage, exc)
        reply = finalise_reply(reply)
        if _leaks_prompt(reply):
            ctx.actions.append({"type": "reply_replaced", "reason": "system_prompt_leak"})
            reply = _REFUSAL
        unverified = _unverified_titles(reply, ctx.titles)
        if unverified:
            # Cited something no tool retrieved this turn: flag it for staff review.
            ctx.actions.append({"type": "unverified_citation", "titles": unverified})
        reply, grounded = self._ground(ctx, text, reply, passages)
        intent = _intent_from(ctx.actions, routed.name if routed else "chat")
        ctx.actions.append({"type": "llm_usage", **usage.as_dict(),
                            "seconds": round(time.perf_counter() - started, 3)})
        try:
            if mem.pending:  # an offline step left waiting is stale once the LLM has answered
                memory_service.set_pending(session=session, user_id=actor.user_id, pending=None)
            memory_service.record_exchange(
                session=session, user_id=actor.user_id, user_text=text, reply=reply,
                intent=intent, engine="llm", message_ref=message_ref,
                prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
                settings=self.settings,
            )
        except Exception:
            log.exception("could not record memory for %s", actor.user_id)
            memory_service.recover(session)
        return EngineReply(reply=reply, intent=intent, actions=ctx.actions,
                           citations=grounded, engine="llm")

    def _refuse(self, session: Session, actor: Actor, text: str, message_ref: str | None,
                signals: list[str]) -> EngineReply:
        try:
            memory_service.record_exchange(
                session=session, user_id=actor.user_id, user_text=text, reply=INJECTION_REFUSAL,
                intent="chat", engine="llm", message_ref=message_ref, settings=self.settings)
        except Exception:
            log.exception("could not record memory for %s", actor.user_id)
            memory_service.recover(session)
        return EngineReply(reply=INJECTION_REFUSAL, intent="chat", engine="llm",
                           actions=[{"type": "injection_refused", "signals": signals}])

    # ------------------------------------------------------------------ the loop
    def _messages(self, ctx: ToolContext, mem: memory_service.Memory, text: str) -> list[Any]:
        from yishi.core.adapters import AIMessage, HumanMessage, SystemMessage

        messages: list[Any] = [SystemMessage(system_prompt(
            community=self.settings.community_name, role=ctx.actor.role.value))]
        if mem.summary:
            messages.append(SystemMessage(MEMORY_FRAME.format(summary=mem.summary)))
        for turn in mem.turns:
            if turn.speaker == "user":
                messages.append(HumanMessage(turn.text))
            else:
                messages.append(AIMessage(turn.text))
        messages.append(HumanMessage(text or "（空消息）"))
        return messages

    def _loop(self, ctx: ToolContext, mem: memory_service.Memory, text: str,
              usage: Usage) -> tuple[str, list[dict[str, str]]]:
        """The model's final text and every passage the searches this turn handed it."""
        from yishi.core.adapters import ToolMessage

        passages: list[dict[str, str]] = []
        messages = self._messages(ctx, mem, text)
        _ = self.model  # build the client (imports, TLS set-up) before the turn's clock starts
        deadline = time.monotonic() + self.turn_timeout
        for _ in range(MAX_STEPS):
            ai = self._call(messages, deadline)
            usage.add(ai)
            messages.append(ai)
            calls = list(getattr(ai, "tool_calls", None) or [])
            invalid = list(getattr(ai, "invalid_tool_calls", None) or [])
            if not calls and not invalid:
                content = ai.content if isinstance(ai.content, str) else _text_of(ai.content)
                if not content.strip():
                    raise ValueError("empty reply from the model")
                return content, passages
            # Streaming parses arguments leniently (a cut-off JSON is silently closed); hand the
            # tools the raw text instead, so a truncated call is refused rather than half-run.
            raw = {c.get("id"): c.get("args") for c in getattr(ai, "tool_call_chunks", None) or []
                   if c.get("id") and isinstance(c.get("args"), str)}
            for call in calls:
                args = raw.get(call.get("id"), call.get("args") or {})
                result = run_tool(ctx, call["name"], args)
                if call["name"] == "search_knowledge":
                    passages.extend(_passages_in(result))
                messages.append(ToolMessage(result, tool_call_id=call.get("id") or call["name"]))
            for bad in invalid:
                result = run_tool(ctx, bad.get("name") or "?", bad.get("args") or "")
                messages.append(ToolMessage(result, tool_call_id=bad.get("id") or "invalid"))
        raise RuntimeError("the model kept calling tools without answering")

    def _call(self, messages: list[Any], deadline: float) -> Any:
        """One streamed model call, aggregated; abandoned once the turn's deadline passes."""
        stream = self.model.stream(messages)
        acc: Any = None
        try:
            for chunk in stream:
                acc = chunk if acc is None else acc + chunk
                if time.monotonic() > deadline:
                    raise TurnTimeout(f"turn exceeded {self.turn_timeout:.1f}s")
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        if acc is None:
            raise ValueError("empty stream from the model")
        return acc

    # ------------------------------------------------------------------ grounding
    def _ground(self, ctx: ToolContext, text: str, reply: str,
                passages: list[dict[str, str]]) -> tuple[str, list[dict[str, str]]]:
        """Check every article the reply cites (and every passage it quotes) against what the
        searches retrieved; a reply that cites what it was not given is not sent as is."""
        check = check_citations(reply, passages)
        if not check.problems:
            return reply, check.grounded
        ctx.actions.append({"type": "citation_not_grounded", "citations": check.problems})
        extractive = self._extractive(text)
        if extractive is not None:
            body, citations = extractive
            ctx.actions.append({"type": "reply_replaced", "reason": "ungrounded_citation",
                                "with": "extractive"})
            return body, citations
        stripped = strip_sentences(reply, check.problems)
        ctx.actions.append({"type": "reply_replaced", "reason": "ungrounded_citation",
                            "with": "stripped" if stripped else "not_found"})
        if stripped:
            return (f"{stripped}\n（原回答中有一处引用在检索到的条文里找不到，已删去。）",
                    check_citations(stripped, passages).grounded)
        return UNGROUNDED_NOTICE, []

    def _extractive(self, text: str) -> tuple[str, list[dict[str, str]]] | None:
        """The offline engine's extractive, cited answer when a passage answers the question."""
        try:
            from yishi.knowledge import service as knowledge_service

            result = knowledge_service.answer(text, k=3)
        except Exception:
            log.exception("extractive answer failed")
            return None
        if not result.confident or not result.citations:
            return None
        return finalise_reply(result.text), citation_dicts(result.citations)

    # ------------------------------------------------------------------ fallback
    def _fall_back(self, session: Session, actor: Actor, text: str, message_ref: str | None,
                   ctx: ToolContext, usage: Usage, exc: Exception) -> EngineReply:
        log.warning("LLM turn failed (%s: %s); offline engine answers", type(exc).__name__, exc)
        note = {"type": "llm_fallback", "error": type(exc).__name__, "detail": str(exc)[:200],
                **usage.as_dict()}
        done = [a for a in ctx.actions if a.get("type") in SIDE_EFFECTS]
        if not done:
            try:
                memory_service.recover(session)
            except Exception:
                log.exception("rollback failed")
            return self.fallback.respond(session=session, actor=actor, text=text,
                                         message_ref=message_ref,
                                         extra_actions=[*ctx.actions, note])
        # A tool already acted (e.g. the issue is recorded): running the offline engine would
        # do it twice, so report what was done instead.
        reply = finalise_reply(_reply_from_actions(done))
        intent = _intent_from(ctx.actions, "chat")
        try:
            memory_service.record_exchange(session=session, user_id=actor.user_id,
                                           user_text=text, reply=reply, intent=intent,
                                           engine="offline", message_ref=message_ref,
                                           settings=self.settings)
        except Exception:
            memory_service.recover(session)
        return EngineReply(reply=reply, intent=intent, actions=[*ctx.actions, note],
                           citations=ctx.citations, engine="offline")


def _text_of(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return str(content or "")


def _intent_from(actions: list[dict[str, Any]], default: str) -> str:
    for action in reversed(actions):
        intent = _TOOL_INTENTS.get(str(action.get("type")))
        if intent:
            return intent
    return default if default != "command" else "chat"


def _unverified_titles(reply: str, retrieved: set[str]) -> list[str]:
    """Titles the reply cites in 《》 that were not retrieved this turn."""
    cited = {m.strip() for m in re.findall(r"《([^》]{2,60})》", reply)}
    return sorted(t for t in cited if not any(t in r or r in t for r in retrieved))


def _leaks_prompt(reply: str, window: int = 14) -> bool:
    """True if the reply reproduces a stretch of the system prompt's fixed text."""
    # Only the rules section: the capability list has examples a normal reply may well echo.
    fixed = SYSTEM_PROMPT.split("必须遵守", 1)[1]
    compact = "".join(reply.split())
    body = "".join(fixed.split())
    return any(body[i:i + window] in compact for i in range(0, len(body) - window, 4))


def _reply_from_actions(done: list[dict[str, Any]]) -> str:
    parts = []
    for a in done:
        if a["type"] == "record_issue":
            label = CATEGORY_LABELS.get(str(a.get("category")), "其他")
            parts.append(f"已记录您反映的问题（编号 {a.get('issue_id')}，{label}），"
                         "回复“我的问题”可查看进度。")
        elif a["type"] == "post_to_thread":
            parts.append(f"已把您的意见发到议题{a.get('thread_id')}。")
        elif a["type"] == "vote":
            word = {"agree": "同意", "disagree": "反对", "pass": "跳过"}.get(str(a.get("value")))
            parts.append(f"已记录您对观点{a.get('statement_id')}的投票：{word}。")
        elif a["type"] == "handoff":
            parts.append(f"已为您转人工（编号 {a.get('handoff_id')}），工作人员会尽快联系您。")
    return "".join(parts)


UNGROUNDED_NOTICE = ("抱歉，我没能在检索到的条文里核实这个答案的出处，不想给您不准确的说法。"
                     "您可以回复“转人工”请工作人员解答，或换个说法再问我。")
_NUM = "零〇一二三四五六七八九十百千两0-9"
_CITE_RE = re.compile(
    rf"《([^》]{{2,60}})》\s*([^\s，。、《》“”]{{0,6}}?)(第[{_NUM}]+条(?:之[{_NUM}]+)?)"
)
_QUOTE_RE = re.compile(r"[“「]([^”」]{6,300})[”」]")


@dataclass
class CitationCheck:
    """What a reply cites: the grounded passages and the claims no passage supports."""

    grounded: list[dict[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _norm_title(title: str) -> str:
    return re.sub(r"[《》〈〉·\s]|中华人民共和国", "", title)


def _compact(text: str) -> str:
    return re.sub(r"[\s，。、；：,.;:！？!?（）()]", "", text)


def _passages_in(result: str) -> list[dict[str, str]]:
    """The passages a search tool result handed to the model."""
    try:
        data = json.loads(result[len(TOOL_RESULT_NOTE):] if result.startswith(TOOL_RESULT_NOTE)
                          else result)
    except ValueError:
        return []
    found = data.get("passages") if isinstance(data, dict) else None
    return [p for p in found or [] if isinstance(p, dict)]


def _matches(title: str, article: str, passage: dict[str, str]) -> bool:
    cite = str(passage.get("cite", ""))
    m = re.match(r"《([^》]*)》(.*)$", cite)
    p_title, p_rest = (m.group(1), m.group(2)) if m else (cite, "")
    want, have = _norm_title(title), _norm_title(p_title)
    return bool(want and have) and (want in have or have in want) and p_rest.endswith(article)


def check_citations(reply: str, passages: list[dict[str, str]]) -> CitationCheck:
    """Every 《title》第X条 in the reply must be a retrieved passage, and every quotation in
    “…” must be found in a retrieved passage's text."""
    check = CitationCheck()
    seen: set[tuple[str, str]] = set()
    for m in _CITE_RE.finditer(reply):
        title, article = m.group(1), m.group(3)
        match = next((p for p in passages if _matches(title, article, p)), None)
        if match is None:
            check.problems.append(m.group(0))
            continue
        key = (str(match.get("source", "")), article)
        if key not in seen:
            seen.add(key)
            check.grounded.append({"source": key[0], "article": article})
    texts = [_compact(str(p.get("text", ""))) for p in passages]
    for m in _QUOTE_RE.finditer(reply):
        parts = [_compact(x) for x in re.split(r"…+|\.{3,}", m.group(1))]
        if not all(len(x) < 4 or any(x in t for t in texts) for x in parts):
            check.problems.append(m.group(0))
    return check


def strip_sentences(reply: str, problems: list[str]) -> str:
    """The reply without the sentences that carry an unsupported citation or quotation."""
    sentences = re.split(r"(?<=[。！？!?\n])", reply)
    kept = [s for s in sentences if s.strip() and not any(p in s for p in problems)]
    return "".join(kept).strip()
