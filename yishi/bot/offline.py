"""The offline engine: serves every message without an LLM (learned heads + exact-command rules +
retrieval + domain services), and is the agent's fallback when the LLM fails or times out."""

from __future__ import annotations

import logging
import re
from typing import Any

from sqlmodel import Session

from yishi.bot import memory as memory_service
from yishi.bot.engine import EngineReply
from yishi.bot.intents import (
    ENGINE_INTENT,
    Intent,
    classify,
    extract_category,
    extract_location,
    extract_urgency,
    injection_signals,
    normalise,
    parse_thread_ref,
)
from yishi.bot.text import citation_dicts, finalise_reply, format_citation
from yishi.core.auth import Actor
from yishi.core.clock import local_time
from yishi.core.config import Settings
from yishi.core.errors import YishiError
from yishi.core.models import Role
from yishi.deliberation.places import strip_location

log = logging.getLogger(__name__)

HELP_TEXT = (
    "您好，我是社区议事助手，可以帮您：\n"
    "1. 问政策：直接提问，如“加装电梯要多少业主同意？”，我会附上依据出处；\n"
    "2. 报问题：说明问题和位置，如“3栋2单元楼道灯坏了”；\n"
    "3. 查进度：回复“我的问题”；\n"
    "4. 参与讨论：回复“议题”查看正在讨论的事，对观点回复“同意 编号”“反对 编号”或“跳过 编号”；\n"
    "5. 回复“清除记录”删除我们的聊天记录，回复“转人工”联系工作人员。"
)
ASK_LOCATION = (
    "收到，为了尽快派人处理，请告诉我具体位置，比如“3栋2单元501”“5号楼楼道”或“地下车库”。"
)
CANCEL_WORDS = ("取消", "算了", "不用了", "不报了", "没事了", "不用")
HANDOFF_TEXT = (
    "已为您转人工，工作人员会尽快联系您（编号 {id}）。如情况紧急，请直接拨打物业或社区电话。"
)
INJECTION_REFUSAL = (
    "抱歉，我只能按社区的服务规则回答问题，不能更改设定或透露内部信息。"
    "您可以问政策、反映问题（请带上位置）、查进度或参与议题讨论，回复“帮助”查看用法。"
)
NOT_UNDERSTOOD = (
    "抱歉，我没太明白您的意思。您可以直接提问政策、描述要反映的问题（请带上位置），"
    "或回复“帮助”查看用法；需要工作人员帮忙请回复“转人工”。"
)
CATEGORY_LABELS = {
    "repairs": "维修", "cleaning": "保洁", "security": "治安", "parking": "停车", "noise": "噪音",
    "pets": "宠物", "garbage": "垃圾", "greenery": "绿化", "fire_safety": "消防安全",
    "neighbour_dispute": "邻里纠纷", "elderly_care": "为老服务",
    "illegal_construction": "违章搭建", "fees": "收费", "other": "其他",
}
STATUS_LABELS = {"reported": "已上报", "assigned": "已派单", "in_progress": "处理中",
                 "resolved": "已解决", "closed": "已关闭", "rejected": "未受理"}
OUT_OF_SCOPE_TEXT = (
    "这个问题超出了我能帮忙的范围。我是社区议事助手，可以回答社区政策、记录您反映的问题、"
    "查询处理进度和参与议题讨论，回复“帮助”查看用法。"
)
CHAT_TEXT = (
    "您好！有需要随时告诉我：可以问政策、反映问题（请带上位置）、查进度，回复“帮助”查看用法。"
)
VOTE_HOW_TEXT = (
    "投票请回复“同意 编号”“反对 编号”或“跳过 编号”，例如“同意 3”。回复“议题”可查看观点编号。"
)
# What each label means to a resident, for the clarifying question.
CLARIFY_OPTIONS = {
    "report": "反映一个需要处理的问题", "question": "咨询政策或规定",
    "status": "查询您反映过的问题的进度", "discussion": "对正在讨论的议题发表意见",
    "handoff": "联系工作人员", "vote": "对观点投票", "chat": "随便聊聊",
    "thanks": "表示感谢", "out_of_scope": "问点别的事", "command": "查看使用帮助",
}


class Turn:
    """What one turn accumulates: actions, citations, the intent finally served."""

    def __init__(self, intent: str) -> None:
        self.intent = intent
        self.actions: list[dict[str, Any]] = []
        self.citations: list[dict[str, str]] = []


class OfflineEngine:
    """Rules, retrieval and the domain services; no LLM."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    # ------------------------------------------------------------------ entry point
    def respond(
        self, *, session: Session, actor: Actor, text: str, message_ref: str | None = None,
        extra_actions: list[dict[str, Any]] | None = None,
    ) -> EngineReply:
        """Answer one message; domain errors become friendly replies, anything else a hand-off."""
        text = (text or "").strip()
        turn = Turn("chat")
        if extra_actions:
            turn.actions.extend(extra_actions)
        try:
            mem = memory_service.load(session=session, user_id=actor.user_id,
                                      settings=self.settings)
            reply = self._dispatch(session, actor, text, mem, turn, message_ref)
        except Exception as exc:  # never silence: any failure becomes a hand-off
            log.exception("offline engine failed for %s", actor.user_id)
            memory_service.recover(session)
            reply = self._handoff(session, actor, text, turn, message_ref,
                                  reason=f"系统错误：{type(exc).__name__}")
        reply = finalise_reply(reply)
        try:
            if turn.intent != "command" or not any(a.get("type") in {"memory_cleared", "erased"}
                                                   for a in turn.actions):
                memory_service.record_exchange(
                    session=session, user_id=actor.user_id, user_text=text, reply=reply,
                    intent=turn.intent, engine="offline", message_ref=message_ref,
                    settings=self.settings,
                )
        except Exception:  # memory is best effort; the reply still goes out
            log.exception("could not record memory for %s", actor.user_id)
            memory_service.recover(session)
        return EngineReply(reply=reply, intent=turn.intent, actions=turn.actions,
                           citations=turn.citations, engine="offline")

    def _dispatch(self, session: Session, actor: Actor, text: str,
                  mem: memory_service.Memory, turn: Turn, message_ref: str | None) -> str:
        if not text:
            turn.intent = "chat"
            return "您好，请问有什么可以帮您？回复“帮助”查看我能做什么。"
        signals = injection_signals(text)
        if signals:
            # Whatever else the message asks, it also tries to steer the bot: act on none of it.
            turn.intent = "chat"
            turn.actions.append({"type": "injection_refused", "signals": signals})
            return INJECTION_REFUSAL
        intent = classify(text)
        pending = mem.pending or {}
        if pending and not (intent.name == "command" and intent.command in {
                "clear", "help", "handoff", "erase", "erase_confirm", "export"}):
            handled = self._continue_pending(session, actor, text, intent, pending, turn,
                                             message_ref)
            if handled is not None:
                return handled
        turn.intent = intent.name
        if intent.uncertain:
            return self._clarify(session, actor, text, intent, turn)
        return self._handler(intent)(session, actor, text, intent, turn, message_ref)

    def _handler(self, intent: Intent) -> Any:
        return {
            "command": self._command, "question": self._question, "report": self._report,
            "status": self._status, "discussion": self._discussion, "vote": self._vote,
            "chat": self._chat,
        }[intent.name]

    def _clarify(self, session: Session, actor: Actor, text: str, intent: Intent,
                 turn: Turn) -> str:
        """Below the confidence threshold: ask a short question instead of guessing."""
        options = [intent.label, *[a for a in intent.alternatives if a != intent.label]][:2]
        memory_service.set_pending(session=session, user_id=actor.user_id,
                                   pending={"kind": "clarify", "text": text, "options": options})
        turn.actions.append({"type": "clarify", "options": options,
                             "confidence": round(intent.confidence, 3)})
        choices = "，还是".join(f"{n}. {CLARIFY_OPTIONS.get(o, o)}"
                               for n, o in enumerate(options, 1))
        return f"我想确认一下：您是想{choices}？请回复编号，也可以换个说法告诉我。"

    # ------------------------------------------------------------------ multi-turn
    def _continue_pending(self, session: Session, actor: Actor, text: str, intent: Intent,
                          pending: dict[str, Any], turn: Turn,
                          message_ref: str | None = None) -> str | None:
        kind = pending.get("kind")
        t = normalise(text).strip("。.!！")
        if kind == "clarify":
            memory_service.set_pending(session=session, user_id=actor.user_id, pending=None)
            options = [str(o) for o in pending.get("options", [])]
            chosen = _chosen_option(t, options)
            if chosen is None:
                return None  # a new message: served on its own
            original = str(pending.get("text", ""))
            routed = classify(original)
            routed.uncertain = False
            routed.name = ENGINE_INTENT[chosen]
            routed.label = chosen
            routed.command = {"handoff": "handoff", "command": "help"}.get(chosen)
            turn.intent = routed.name
            turn.actions.append({"type": "clarified", "label": chosen})
            return self._handler(routed)(session, actor, original, routed, turn, message_ref)
        if t in CANCEL_WORDS:
            memory_service.set_pending(session=session, user_id=actor.user_id, pending=None)
            turn.intent = "command"
            turn.actions.append({"type": "pending_cancelled", "kind": kind})
            return "好的，已取消。还有其他需要请随时告诉我。"
        if kind == "issue_location":
            location = extract_location(text)
            if location is None and re.fullmatch(r"\d{3,4}(室|号)?", t):
                location = t.rstrip("室号") + "室"
            says_more = len(re.sub(r"[\W_]", "", strip_location(text))) > 3
            new_problem = (intent.name == "report" and says_more
                           and intent.fields.category is not None
                           and pending.get("category") not in (None, intent.fields.category))
            # A place plus little else answers our question; a full question is a new topic.
            answers = intent.name != "question" or len(t) - len(location or "") <= 8
            if location is not None and answers and not new_problem:
                turn.intent = "report"
                original = str(pending.get("text", ""))
                combined = f"{original} {text}" if original else text
                memory_service.set_pending(session=session, user_id=actor.user_id, pending=None)
                return self._record(session, actor, combined, turn,
                                    category=pending.get("category") or extract_category(text),
                                    location=location,
                                    urgency=pending.get("urgency") or extract_urgency(text))
            if intent.label == "chat" or (intent.name == "report" and location is None
                                          and not new_problem and len(t) <= 8):
                asks = int(pending.get("asks", 1))
                turn.intent = "report"
                if asks >= 2:
                    memory_service.set_pending(session=session, user_id=actor.user_id,
                                               pending=None)
                    original = str(pending.get("text", ""))
                    return self._record(session, actor, f"{original}（补充：{text}）", turn,
                                        category=pending.get("category"), location=None,
                                        urgency=pending.get("urgency"), note_missing=True)
                memory_service.set_pending(session=session, user_id=actor.user_id,
                                           pending={**pending, "asks": asks + 1})
                turn.actions.append({"type": "ask", "field": "location"})
                return "还没找到位置信息哦。" + ASK_LOCATION + "不想报了请回复“取消”。"
            if intent.name != "report" or new_problem:
                memory_service.set_pending(session=session, user_id=actor.user_id, pending=None)
            return None
        if kind == "post_thread":
            ref = parse_thread_ref(text)
            if ref is None and re.fullmatch(r"\d{1,4}", t):
                ref = int(t)
            memory_service.set_pending(session=session, user_id=actor.user_id, pending=None)
            if ref is not None:
                turn.intent = "discussion"
                return self._post(session, actor, ref, str(pending.get("text", "")), turn)
            return None
        memory_service.set_pending(session=session, user_id=actor.user_id, pending=None)
        return None

    # ------------------------------------------------------------------ handlers
    def _command(self, session: Session, actor: Actor, text: str, intent: Intent, turn: Turn,
                 message_ref: str | None) -> str:
        if intent.command == "help":
            turn.actions.append({"type": "help"})
            return HELP_TEXT
        if intent.command == "clear":
            removed = memory_service.clear(session=session, user_id=actor.user_id)
            turn.actions.append({"type": "memory_cleared", "turns": removed})
            return (f"已清除我们的对话记忆（{removed} 条），我不会再参考之前的对话。"
                    f"您发来的消息原文仍按规定保存 {self.settings.retention_days} 天，"
                    "反映的问题和投票不受影响；要删除您的全部信息，请回复“删除我的信息”。")
        if intent.command in {"erase", "erase_confirm", "export"}:
            from yishi.privacy import service as privacy_service

            reply, action = privacy_service.chat_command(
                session=session, user_id=actor.user_id, command=intent.command,
                message_ref=message_ref)
            turn.actions.append(action)
            return reply
        if intent.command == "handoff":
            return self._handoff(session, actor, text, turn, message_ref, reason="居民要求转人工")
        if intent.command == "my_issues":
            return self._my_issues(session, actor, turn)
        if intent.command == "threads":
            return self._threads(session, turn)
        if intent.command == "appeal":
            return self._appeal(session, actor, intent.topic or "", turn)
        return HELP_TEXT

    def _appeal(self, session: Session, actor: Actor, reason: str, turn: Turn) -> str:
        from yishi.moderation import service as moderation_service

        if not reason:
            return "请在“申诉”后面写上理由，例如：申诉 我是在转述别人的话。"
        try:
            appeal = moderation_service.appeal_latest(
                session=session, actor=actor, reason=reason
            )
        except YishiError as exc:
            return _error_text(exc)
        turn.actions.append({"type": "appeal", "appeal_id": appeal.id})
        return f"已收到您的申诉（编号 {appeal.id}），审核员会尽快复核并告诉您结果。"

    def _question(self, session: Session, actor: Actor, text: str, intent: Intent, turn: Turn,
                  message_ref: str | None) -> str:
        answer = self._relevant_answer(text, turn)
        if answer is not None:
            return answer
        turn.actions.append({"type": "knowledge_not_found"})
        handoff = self._handoff(session, actor, text, turn, message_ref,
                                reason="政策问题未找到依据", announce=False)
        return ("抱歉，我在现有的政策文件里没有找到能回答这个问题的依据，不敢乱说。"
                f"已转给工作人员（编号 {handoff}），他们会尽快答复您。")

    def _relevant_answer(self, text: str, turn: Turn) -> str | None:
        """The knowledge answer with its citations, only when it reports that it answers."""
        try:
            from yishi.knowledge import service as knowledge_service

            result = knowledge_service.answer(text, k=3)
        except Exception:
            log.exception("knowledge answer failed")
            turn.actions.append({"type": "knowledge_unavailable"})
            return None
        answers = knowledge_answers(result)
        turn.actions.append({"type": "knowledge_answer", "confident": answers,
                             "citations": len(result.citations)})
        if not answers:
            return None
        turn.citations.extend(citation_dicts(result.citations))
        body = result.text.strip()
        cited = "、".join(format_citation(c.title, c.article) for c in result.citations[:3])
        if "《" not in body:
            body = f"{body}\n依据：{cited}"
        return body  # the knowledge answer already carries its "excerpt only" caveat

    def _report(self, session: Session, actor: Actor, text: str, intent: Intent, turn: Turn,
                message_ref: str | None) -> str:
        fields = intent.fields
        if fields.location and len(re.sub(r"[\W_]", "", strip_location(text))) <= 1:
            # Only a place, nothing about a problem: ask what is wrong there, record nothing.
            turn.actions.append({"type": "ask", "field": "problem"})
            return f"请问{fields.location}这个位置遇到了什么问题？请描述一下，比如“楼道灯坏了”。"
        if not fields.location:
            memory_service.set_pending(session=session, user_id=actor.user_id, pending={
                "kind": "issue_location", "text": text, "category": fields.category,
                "urgency": fields.urgency, "asks": 1,
            })
            turn.actions.append({"type": "ask", "field": "location",
                                 "category": fields.category, "urgency": fields.urgency})
            prefix = ""
            if fields.urgency == "urgent":
                prefix = "情况紧急的话，请先注意安全，必要时拨打110/119/120。"
            return prefix + ASK_LOCATION + self._also_answer(text, intent, turn)
        recorded = self._record(session, actor, text, turn, category=fields.category,
                                location=fields.location, urgency=fields.urgency)
        return recorded + self._also_answer(text, intent, turn)

    def _also_answer(self, text: str, intent: Intent, turn: Turn) -> str:
        """A report that also asks something gets the rule that answers it, and only that."""
        if not intent.asks:
            return ""
        answer = self._relevant_answer(text, turn)
        return f"\n\n关于您问的：{answer}" if answer else ""

    def _record(self, session: Session, actor: Actor, text: str, turn: Turn, *,
                category: str | None, location: str | None, urgency: str | None,
                note_missing: bool = False) -> str:
        from yishi.deliberation import service as deliberation_service

        try:
            result = deliberation_service.record_issue(
                session=session, actor=actor, text=text, category=category, location=location,
                urgency=urgency,
            )
        except YishiError as exc:
            turn.actions.append({"type": "record_issue_failed", "error": exc.message})
            return _error_text(exc)
        issue = result.issue
        turn.actions.append({
            "type": "record_issue", "issue_id": issue.id, "category": issue.category,
            "location": issue.location, "urgency": issue.urgency,
            "joined_existing": result.joined_existing, "missing": list(result.missing),
        })
        if result.notice:
            return result.notice
        party = issue.responsible_party or "相关负责方"
        if result.joined_existing:
            return (f"这个问题已经有邻居反映过（编号 {issue.id}），已把您加为支持者，"
                    f"由{party}处理。回复“我的问题”可查看进度。")
        due = f"，预计 {local_time(issue.due_at)} 前处理" if issue.due_at else ""
        tail = "（未提供具体位置，工作人员可能会联系您确认）" if note_missing else ""
        label = CATEGORY_LABELS.get(issue.category, "其他")
        return (f"已记录您反映的问题（编号 {issue.id}，{label}），"
                f"已转交{party}{due}。{tail}回复“我的问题”可随时查看进度。")

    def _my_issues(self, session: Session, actor: Actor, turn: Turn) -> str:
        from yishi.deliberation import service as deliberation_service

        issues = deliberation_service.get_issues_for_reporter(session=session, actor=actor)
        turn.actions.append({"type": "list_issues", "count": len(issues)})
        if not issues:
            return "您还没有反映过问题。遇到问题可以直接告诉我，比如“3栋2单元楼道灯坏了”。"
        lines = ["您反映的问题："]
        for issue in issues[:8]:
            lines.append(_issue_line(issue))
        if len(issues) > 8:
            lines.append(f"……共 {len(issues)} 条，回复“报修+编号”查看某一条。")
        return "\n".join(lines)

    def _status(self, session: Session, actor: Actor, text: str, intent: Intent, turn: Turn,
                message_ref: str | None) -> str:
        from yishi.deliberation import service as deliberation_service

        if intent.number is None:
            return self._my_issues(session, actor, turn)
        try:
            issue = deliberation_service.get_issue(session=session, actor=actor,
                                                   issue_id=intent.number)
        except YishiError as exc:
            turn.actions.append({"type": "get_issue_failed", "issue_id": intent.number})
            return _error_text(exc)
        turn.actions.append({"type": "get_issue", "issue_id": issue.id})
        return _issue_line(issue)

    def _threads(self, session: Session, turn: Turn) -> str:
        from yishi.deliberation import service as deliberation_service

        threads = deliberation_service.get_open_threads(session=session)
        turn.actions.append({"type": "list_threads", "count": len(threads)})
        if not threads:
            return "目前没有正在讨论的议题。有想法可以直接告诉我，我会转给社区。"
        lines = ["正在讨论的议题："]
        for thread in threads[:5]:
            assert thread.id is not None
            lines.append(f"议题{thread.id}：{thread.title}——{thread.question}")
            statements = deliberation_service.get_statements(session=session,
                                                             thread_id=thread.id)
            for st in statements[:5]:
                lines.append(f"  观点{st.id}：{st.text}")
        lines.append("对观点投票请回复“同意 编号”“反对 编号”或“跳过 编号”；"
                     "发表看法请回复“议题编号：您的看法”。")
        return "\n".join(lines)

    def _discussion(self, session: Session, actor: Actor, text: str, intent: Intent, turn: Turn,
                    message_ref: str | None) -> str:
        if intent.command == "summarise":
            return self._summarise(session, actor, intent.topic or "", turn)
        from yishi.deliberation import service as deliberation_service

        if intent.number is not None:
            body = re.sub(r"^\s*议题\s*(?:#|第)?[\d一二三四五六七八九十]+(?:号)?\s*[:：,，]?\s*",
                          "", text).strip()
            if not body:
                return self._threads(session, turn)
            return self._post(session, actor, intent.number, body, turn)
        threads = deliberation_service.get_open_threads(session=session)
        if not threads:
            turn.actions.append({"type": "list_threads", "count": 0})
            return ("目前没有正在讨论的议题。想反映问题请描述问题并附上位置；"
                    "想提议新的议题可以回复“转人工”。")
        match = _best_thread(text, threads)
        if match is not None:
            return self._post(session, actor, int(match.id), text, turn)
        memory_service.set_pending(session=session, user_id=actor.user_id,
                                   pending={"kind": "post_thread", "text": text})
        turn.actions.append({"type": "ask", "field": "thread"})
        lines = ["您想把这条意见发到哪个议题？请回复议题编号："]
        lines += [f"议题{t.id}：{t.title}" for t in threads[:5]]
        return "\n".join(lines)

    def _post(self, session: Session, actor: Actor, thread_id: int, body: str, turn: Turn) -> str:
        from yishi.deliberation import service as deliberation_service

        try:
            message = deliberation_service.post_to_thread(
                session=session, actor=actor, thread_id=thread_id, text=body,
                as_statement=len(body) <= 140,
            )
        except YishiError as exc:
            turn.actions.append({"type": "post_failed", "thread_id": thread_id})
            return _error_text(exc)
        statement_id = None
        lookup = getattr(deliberation_service, "statement_for_message", None)
        if lookup is not None and message.id is not None:  # not in the contract: use if exported
            statement = lookup(session=session, message_id=message.id)
            statement_id = statement.id if statement is not None else None
        turn.actions.append({"type": "post_to_thread", "thread_id": thread_id,
                             "message_id": message.id, "statement_id": statement_id})
        extra = f"，其他居民可以对观点{statement_id}投票" if statement_id else ""
        return f"已把您的意见发到议题{thread_id}{extra}。感谢参与社区讨论！"

    def _vote(self, session: Session, actor: Actor, text: str, intent: Intent, turn: Turn,
              message_ref: str | None) -> str:
        from yishi.deliberation import service as deliberation_service

        if intent.number is None or intent.vote_value is None:
            turn.actions.append({"type": "vote_help"})
            return VOTE_HOW_TEXT
        try:
            deliberation_service.vote(session=session, actor=actor, statement_id=intent.number,
                                      value=intent.vote_value)
        except YishiError as exc:
            turn.actions.append({"type": "vote_failed", "statement_id": intent.number})
            return _error_text(exc)
        turn.actions.append({"type": "vote", "statement_id": intent.number,
                             "value": intent.vote_value})
        word = {"agree": "同意", "disagree": "反对", "pass": "跳过"}[intent.vote_value]
        return f"已记录：您对观点{intent.number}选择了“{word}”。想改主意可以重新回复。"

    def _summarise(self, session: Session, actor: Actor, topic: str, turn: Turn) -> str:
        if not actor.has_role(Role.staff):
            turn.actions.append({"type": "summarise_denied"})
            return ("讨论总结目前只对社区工作人员开放。您可以回复“议题”查看正在讨论的内容，"
                    "并对观点投票。")
        from yishi.deliberation import service as deliberation_service

        try:
            summary = deliberation_service.summarise_thread(
                session=session, actor=actor, topic=topic or None)
        except YishiError as exc:
            turn.actions.append({"type": "summarise_failed", "topic": topic})
            return _error_text(exc)
        turn.actions.append({"type": "summarise_thread", "thread_id": summary.thread_id,
                             "topic": topic})
        return format_summary(summary)

    def _chat(self, session: Session, actor: Actor, text: str, intent: Intent, turn: Turn,
              message_ref: str | None) -> str:
        if intent.label == "thanks":
            return "不客气，有需要随时找我。"
        if intent.label == "out_of_scope":
            turn.actions.append({"type": "out_of_scope"})
            return OUT_OF_SCOPE_TEXT
        return CHAT_TEXT

    def _handoff(self, session: Session, actor: Actor, text: str, turn: Turn,
                 message_ref: str | None, *, reason: str, announce: bool = True) -> str:
        handoff_id: int | str = "待分配"
        try:
            row = memory_service.record_handoff(session=session, user_id=actor.user_id,
                                                channel=actor.channel, reason=reason, text=text,
                                                message_ref=message_ref)
            handoff_id = int(row.id or 0)
        except Exception:
            log.exception("could not record hand-off")
            memory_service.recover(session)
        turn.actions.append({"type": "handoff", "handoff_id": handoff_id, "reason": reason})
        if not announce:
            return str(handoff_id)
        return HANDOFF_TEXT.format(id=handoff_id)


def knowledge_answers(result: Any) -> bool:
    """Whether a knowledge answer answers the question: its own `answered` verdict when it gives
    one (calibrated relevance), else its confident state with citations."""
    answered = getattr(result, "answered", None)
    if answered is not None:
        return bool(answered) and bool(result.citations)
    return bool(result.confident) and bool(result.citations)


def _chosen_option(t: str, options: list[str]) -> str | None:
    """Which option a reply to our clarifying question picks: its number, or its words."""
    t = t.strip("。.!！ ")
    if t.isdigit() and 1 <= int(t) <= len(options):
        return options[int(t) - 1]
    for option in options:
        if t and t in CLARIFY_OPTIONS.get(option, ""):
            return option
    return None


def _error_text(exc: YishiError) -> str:
    return exc.message + (f"。{exc.hint}" if exc.hint else "")


def _issue_line(issue: Any) -> str:
    status = STATUS_LABELS.get(str(issue.status), str(issue.status))
    where = f"（{issue.location}）" if issue.location else ""
    party = f"，负责方：{issue.responsible_party}" if issue.responsible_party else ""
    due = f"，时限 {local_time(issue.due_at)}" if issue.due_at else ""
    text = issue.text if len(issue.text) <= 30 else issue.text[:30] + "…"
    return f"编号{issue.id} {text}{where}：{status}{party}{due}"


def _grams(text: str) -> set[str]:
    t = re.sub(r"[^\w]", "", normalise(text))
    return {t[i:i + 2] for i in range(len(t) - 1)}


def _best_thread(text: str, threads: list[Any]) -> Any | None:
    """The open thread the text is clearly about (shared word pairs with its title/question)."""
    wanted = _grams(text)
    scored = sorted(((len(wanted & _grams(t.title + t.question)), t) for t in threads),
                    key=lambda p: -p[0])
    if not scored or scored[0][0] < 2:
        return None
    if len(scored) > 1 and scored[1][0] == scored[0][0]:
        return None
    return scored[0][1]


def format_summary(summary: Any) -> str:
    """A thread summary as WeChat text: participation, groups, consensus, division, next steps."""
    p = summary.participation
    lines = [f"议题{summary.thread_id}“{summary.title}”讨论总结",
             f"参与 {p.participants} 人，投票 {p.votes} 次，观点 {p.statements} 条。"]

    def claims(title: str, items: list[Any]) -> None:
        if items:
            lines.append(title)
            for c in items[:5]:
                refs = f"（{'、'.join(c.cites[:3])}）" if c.cites else ""
                lines.append(f"- {c.text}{refs}")

    if summary.groups:
        lines.append("意见分组：")
        for g in summary.groups[:5]:  # Polis forms at most five groups
            lines.append(f"- {g.group}组（{g.size}人）：{g.view.text}")
    claims("共识：", summary.consensus)
    claims("分歧：", summary.divisive)
    claims("待解决的问题：", summary.open_questions)
    claims("下一步建议：", summary.next_steps)
    return "\n".join(lines)
