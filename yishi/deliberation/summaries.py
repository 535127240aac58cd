"""Thread summaries for staff, built on the consensus math, with a citation check.

Every claim cites message ids (``m12``) or statement ids (``s5``) of the thread and may quote
them; `check_citations` drops claims whose ids do not exist in the thread or whose quotes are not
verbatim substrings of what they cite. Offline, the summary is extractive; with an LLM (a
LangChain chat model passed in as `llm`), the model writes it from the math's output and the
cited messages, and the same check runs on what it wrote.
"""

from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from yishi.core.auth import Actor
from yishi.core.config import get_settings
from yishi.core.errors import Invalid
from yishi.core.models import Role
from yishi.deliberation import threads
from yishi.deliberation.models import Statement, SummaryRecord, Thread, ThreadMessage
from yishi.deliberation.schemas import (
    Claim,
    GroupView,
    Participation,
    Quote,
    RejectedClaim,
    ThreadSummary,
)

log = logging.getLogger(__name__)

_REF_RE = re.compile(r"^([ms])(\d+)$")
MIN_VOTES_FOR_CONSENSUS = 3
DIVISIVE_SIDE = 0.5  # a group "mostly" agrees (or disagrees) from this share of its votes
_SENTENCE_RE = re.compile(r"[^。！？!?\n]*[？?]")


# --- the math, as this module needs it ---------------------------------------------------


@dataclass
class StatementFigures:
    """Vote counts of one statement, overall and per opinion group."""

    agree: int = 0
    disagree: int = 0
    passed: int = 0

    @property
    def total(self) -> int:
        return self.agree + self.disagree + self.passed

    @property
    def agree_rate(self) -> float:
        return self.agree / self.total if self.total else 0.0

    @property
    def disagree_rate(self) -> float:
        return self.disagree / self.total if self.total else 0.0


@dataclass
class MathView:
    """What the summary needs from the consensus math."""

    groups: dict[str, list[str]]  # group label -> participants
    repness: dict[str, list[tuple[int, str]]]  # group label -> [(statement id, "agree"|...)]
    consensus: list[tuple[int, str]]  # (statement id, side)
    overall: dict[int, StatementFigures]
    by_group: dict[str, dict[int, StatementFigures]]
    note: str = ""  # why no (or few) groups are shown, in plain words


VoteRow = tuple[str, int, int]  # (voter, statement id, +1 | -1 | 0)


def run_math(votes: Sequence[VoteRow], *, min_group: int | None = None) -> MathView:
    """Polis groups, repness and consensus over the thread's votes (plain counts if too few).

    Groups smaller than `min_group` are never shown: they join their nearest group, or the
    thread is reported as too small (or too undivided) to group.
    """
    overall: dict[int, StatementFigures] = defaultdict(StatementFigures)
    for _voter, sid, value in votes:
        _count(overall[sid], value)
    groups: dict[str, list[str]] = {}
    repness: dict[str, list[tuple[int, str]]] = {}
    consensus: list[tuple[int, str]] = []
    voters = {voter for voter, _sid, _value in votes}
    result = None
    note = ""
    if len(voters) >= 2 and votes:
        from yishi.deliberation import consensus as consensus_math

        try:
            result = consensus_math.compute(list(votes))
            shown = consensus_math.shown_groups(
                result, list(votes),
                min_group=min_group if min_group is not None else consensus_math.MIN_SHOWN_GROUP,
            )
            note = shown.note
            if shown.groups:
                result = consensus_math.compute(list(votes), groups=shown.groups)
            else:
                consensus = [(int(_cid(s.comment)), s.side) for s in result.consensus]
                result = None
        except Exception:  # tiny or degenerate matrices; the counts still make a summary
            log.warning("consensus math failed; summarising from counts", exc_info=True)
            result = None
    elif votes:
        note = "参与投票的人太少，不分组。"
    if result is not None:
        label = {g: _group_label(i) for i, g in enumerate(sorted(result.repness, key=_gkey))}
        for participant, g in result.groups.items():
            groups.setdefault(label[g], []).append(str(participant))
        for g, reps in result.repness.items():
            # A best-agree pick is shown for what the group agrees with, whatever its repful side;
            # the list is then ordered by representativeness so the group's view leads.
            ranked = sorted(reps, key=lambda r: -float(r.repness))
            repness[label[g]] = [
                (int(_cid(r.comment)), "agree" if r.best_agree else r.repful_for) for r in ranked
            ]
        consensus = [(int(_cid(s.comment)), s.side) for s in result.consensus]
    elif not consensus:
        consensus = [
            (sid, "agree" if f.agree_rate >= f.disagree_rate else "disagree")
            for sid, f in overall.items()
            if f.total >= MIN_VOTES_FOR_CONSENSUS and max(f.agree_rate, f.disagree_rate) >= 0.7
        ]
    member = {p: g for g, ps in groups.items() for p in ps}
    by_group: dict[str, dict[int, StatementFigures]] = defaultdict(
        lambda: defaultdict(StatementFigures))
    for voter, sid, value in votes:
        g = member.get(voter)
        if g is not None:
            _count(by_group[g][sid], value)
    return MathView(groups=groups, repness=repness, consensus=consensus, overall=dict(overall),
                    by_group={g: dict(f) for g, f in by_group.items()}, note=note)


def _gkey(g: Hashable) -> tuple[int, str]:
    return (0, f"{int(g):09d}") if isinstance(g, int) else (1, str(g))


def _cid(value: Hashable) -> int:
    return int(value)  # type: ignore[call-overload]


def _group_label(i: int) -> str:
    return "ABCDEFGH"[i] if i < 8 else str(i + 1)


def _count(fig: StatementFigures, value: int | float) -> None:
    if value > 0:
        fig.agree += 1
    elif value < 0:
        fig.disagree += 1
    else:
        fig.passed += 1


# --- the citation check ---------------------------------------------------------------------


def check_claim(
    claim: Claim, *, messages: dict[int, str], statements: dict[int, str]
) -> str | None:
    """Why a claim fails the citation check, or None when every cited id exists and the claim
    quotes at least one cited item verbatim (an unquoted claim cannot be checked: dropped)."""
    if not claim.text.strip():
        return "空的论断"
    if not claim.cites:
        return "没有引用任何留言或观点"
    for ref in claim.cites:
        if _lookup(ref, messages, statements) is None:
            return f"引用的编号 {ref} 在本议题中不存在"
    if not claim.quotes:
        return "没有附上所引用内容的原文"
    for quote in claim.quotes:
        if quote.ref not in claim.cites:
            return f"引文出处 {quote.ref} 不在该论断的引用列表中"
        source = _lookup(quote.ref, messages, statements)
        if source is None:
            return f"引用的编号 {quote.ref} 在本议题中不存在"
        if not quote.text.strip() or quote.text not in source:
            return f"引文与 {quote.ref} 的原文不一致"
    return None


def _lookup(ref: str, messages: dict[int, str], statements: dict[int, str]) -> str | None:
    m = _REF_RE.match(ref.strip())
    if not m:
        return None
    table = messages if m.group(1) == "m" else statements
    return table.get(int(m.group(2)))


def check_citations(summary: ThreadSummary, *, messages: dict[int, str],
                    statements: dict[int, str]) -> ThreadSummary:
    """The summary without the claims that fail the check; those are listed in `rejected`."""
    rejected = list(summary.rejected)

    def keep(section: str, claims: list[Claim]) -> list[Claim]:
        out = []
        for claim in claims:
            why = check_claim(claim, messages=messages, statements=statements)
            if why is None:
                out.append(claim)
            else:
                rejected.append(RejectedClaim(section=section, claim=claim, reason=why))
        return out

    groups = []
    for group in summary.groups:
        why = check_claim(group.view, messages=messages, statements=statements)
        if why is not None:
            rejected.append(RejectedClaim(section=f"group:{group.group}", claim=group.view,
                                          reason=why))
            continue
        groups.append(group.model_copy(update={
            "representative": keep(f"group:{group.group}", group.representative)}))
    return summary.model_copy(update={
        "groups": groups,
        "consensus": keep("consensus", summary.consensus),
        "divisive": keep("divisive", summary.divisive),
        "open_questions": keep("open_questions", summary.open_questions),
        "next_steps": keep("next_steps", summary.next_steps),
        "rejected": rejected,
    })


# --- building the summary -------------------------------------------------------------------


@dataclass
class ThreadMaterial:
    """Everything a summary is made from."""

    thread: Thread
    messages: list[ThreadMessage]
    statements: list[Statement]
    votes: list[VoteRow]
    math: MathView

    @property
    def message_texts(self) -> dict[int, str]:
        return {m.id: m.text for m in self.messages if m.id is not None}

    @property
    def statement_texts(self) -> dict[int, str]:
        return {s.id: s.text for s in self.statements if s.id is not None}

    def participation(self) -> Participation:
        voters = {voter for voter, _sid, _value in self.votes}
        people = voters | {m.author_id for m in self.messages}
        people |= {s.author_id for s in self.statements if s.message_id is not None}
        return Participation(participants=len(people), voters=len(voters),
                             messages=len(self.messages), statements=len(self.statements),
                             votes=len(self.votes))


def load_material(*, session: Session, thread: Thread) -> ThreadMaterial:
    """A thread's visible messages, statements and votes, and the math over the votes."""
    assert thread.id is not None
    votes = threads.get_vote_rows(session=session, thread_id=thread.id)
    return ThreadMaterial(
        thread=thread,
        messages=threads.get_messages(session=session, thread_id=thread.id),
        statements=threads.get_statements(session=session, thread_id=thread.id),
        votes=votes,
        math=run_math(votes, min_group=get_settings().deliberation_min_group_size),
    )


def _pct(x: float) -> str:
    return f"{round(x * 100)}%"


def _stmt_claim(text: str, sid: int, quote: str) -> Claim:
    ref = f"s{sid}"
    return Claim(text=text, cites=[ref], quotes=[Quote(ref=ref, text=quote)])


def divisive_statements(math: MathView) -> list[int]:
    """Statements on which opinion groups split (or, without groups, the whole room splits)."""
    out: list[tuple[float, int]] = []
    for sid, fig in math.overall.items():
        figs = [g[sid] for g in math.by_group.values() if sid in g and g[sid].total]
        if len(figs) >= 2:
            # Divided means one group mostly agrees while another mostly disagrees; a group
            # that mostly passes is undecided, not opposed.
            scores = [a.agree_rate + d.disagree_rate for a in figs for d in figs
                      if a is not d and a.agree_rate >= DIVISIVE_SIDE
                      and d.disagree_rate >= DIVISIVE_SIDE]
            if scores:
                out.append((max(scores), sid))
        elif (not math.by_group and fig.total >= MIN_VOTES_FOR_CONSENSUS
              and min(fig.agree_rate, fig.disagree_rate) >= 0.3):
            out.append((1 - abs(fig.agree_rate - fig.disagree_rate), sid))
    return [sid for _score, sid in sorted(out, key=lambda t: (-t[0], t[1]))]


def offline_summary(material: ThreadMaterial) -> ThreadSummary:
    """An extractive summary: groups, consensus and division straight from the math."""
    texts = material.statement_texts
    math = material.math
    groups: list[GroupView] = []
    for label in sorted(math.groups):
        reps = [(sid, side) for sid, side in math.repness.get(label, []) if sid in texts]
        figures = math.by_group.get(label, {})
        if not reps:
            # No statement sets this group apart; still show it (the divisive points name every
            # group) with what it agrees with most, so the reader can place it.
            voted = [(f.agree_rate, sid) for sid, f in figures.items() if f.total and sid in texts]
            if not voted:
                continue
            rate, sid = max(voted, key=lambda t: (t[0], -t[1]))
            text = f"没有明显区别于其他组的立场；最认同「{texts[sid]}」（{_pct(rate)}）"
            view = _stmt_claim(text, sid, texts[sid])
            groups.append(GroupView(group=label, size=len(math.groups[label]), view=view))
            continue
        claims = []
        for sid, side in reps[1:]:  # the first is the group's view, quoted once above
            fig = figures.get(sid, StatementFigures())
            rate = fig.agree_rate if side == "agree" else fig.disagree_rate
            verb = "同意" if side == "agree" else "反对"
            claims.append(_stmt_claim(f"本组 {_pct(rate)} {verb}：「{texts[sid]}」", sid,
                                      texts[sid]))
        sid, side = reps[0]
        verb = "认同" if side == "agree" else "不认同"
        view = _stmt_claim(f"最鲜明的立场是{verb}「{texts[sid]}」", sid, texts[sid])
        groups.append(GroupView(group=label, size=len(math.groups[label]), view=view,
                                representative=claims))

    consensus = []
    for sid, side in math.consensus:
        if sid not in texts:
            continue
        fig = math.overall.get(sid, StatementFigures())
        verb = "同意" if side == "agree" else "反对"
        consensus.append(_stmt_claim(
            f"多数参与者{verb}「{texts[sid]}」（同意 {fig.agree}、反对 {fig.disagree}、"
            f"跳过 {fig.passed}）", sid, texts[sid]))

    divisive = []
    for sid in divisive_statements(math)[:5]:
        if sid not in texts:
            continue
        parts = [f"{g}组同意 {_pct(f[sid].agree_rate)}" for g, f in sorted(math.by_group.items())
                 if sid in f and f[sid].total]
        detail = "，".join(parts) if parts else (
            f"同意 {math.overall[sid].agree}、反对 {math.overall[sid].disagree}")
        divisive.append(_stmt_claim(f"分歧点「{texts[sid]}」：{detail}", sid, texts[sid]))

    open_questions = []
    for message in material.messages:
        if message.id is None:
            continue
        for sentence in _SENTENCE_RE.findall(message.text):
            sentence = sentence.strip()
            if len(sentence) >= 4:
                ref = f"m{message.id}"
                open_questions.append(Claim(text=f"居民提问：{sentence}", cites=[ref],
                                            quotes=[Quote(ref=ref, text=sentence)]))
                break
        if len(open_questions) >= 5:
            break
    for sid, fig in sorted(math.overall.items()):
        if sid in texts and fig.total >= MIN_VOTES_FOR_CONSENSUS and fig.passed / fig.total >= 0.4:
            open_questions.append(_stmt_claim(
                f"不少人对「{texts[sid]}」还拿不定主意（跳过 {fig.passed}/{fig.total}）",
                sid, texts[sid]))

    next_steps = []
    agreed = [sid for sid, side in math.consensus if side == "agree" and sid in texts]
    if agreed:
        refs = [f"s{sid}" for sid in agreed[:3]]
        next_steps.append(Claim(
            text="把已有共识整理成提案，明确责任方和时间表：" + "；".join(
                f"「{texts[sid]}」" for sid in agreed[:3]),
            cites=refs, quotes=[Quote(ref=f"s{sid}", text=texts[sid]) for sid in agreed[:3]]))
    for claim in divisive[:2]:
        next_steps.append(Claim(
            text="就分歧点组织面对面协商或补充信息后再表决：" + claim.quotes[0].text,
            cites=claim.cites, quotes=claim.quotes))
    if open_questions:
        first = open_questions[0]
        next_steps.append(Claim(text="请相关责任方公开答复居民的疑问", cites=first.cites,
                                quotes=first.quotes))

    return ThreadSummary(
        thread_id=material.thread.id or 0,
        title=material.thread.title,
        question=material.thread.question,
        participation=material.participation(),
        groups=groups,
        consensus=consensus,
        divisive=divisive,
        open_questions=open_questions,
        next_steps=next_steps,
        engine="offline",
        grouping_note=math.note,
    )


# --- with an LLM ----------------------------------------------------------------------------

_LLM_INSTRUCTIONS = """You summarise a residential community discussion for community staff.
Write in natural Simplified Chinese. Use ONLY the material given. Output one JSON object:
{"groups": [{"group": "A", "view": CLAIM, "representative": [CLAIM, ...]}],
 "consensus": [CLAIM], "divisive": [CLAIM], "open_questions": [CLAIM], "next_steps": [CLAIM]}
where CLAIM = {"text": "...", "cites": ["s3", "m7"], "quotes": [{"ref": "s3", "text": "..."}]}.
Every claim must cite the ids (s = statement, m = message) it rests on; every quote must be copied
character for character from the cited item. Claims with unknown ids or altered quotes are removed.
Keep the group labels of the analysis. No text outside the JSON."""


def _material_for_llm(material: ThreadMaterial, offline: ThreadSummary) -> str:
    math = material.math
    texts = material.statement_texts
    lines = [f"议题：{material.thread.title}", f"问题：{material.thread.question}",
             "", "观点（statements）与投票："]
    for sid, text in texts.items():
        fig = math.overall.get(sid, StatementFigures())
        per_group = "；".join(
            f"{g}组 同意{f[sid].agree}/反对{f[sid].disagree}/跳过{f[sid].passed}"
            for g, f in sorted(math.by_group.items()) if sid in f)
        lines.append(f"s{sid}: {text} | 全体 同意{fig.agree}/反对{fig.disagree}/跳过{fig.passed}"
                     + (f" | {per_group}" if per_group else ""))
    lines.append("")
    lines.append("意见分组（Polis 方法）：")
    for g in sorted(math.groups):
        reps = ", ".join(f"s{sid}({side})" for sid, side in math.repness.get(g, []))
        lines.append(f"{g}组 {len(math.groups[g])}人，代表性观点：{reps}")
    lines.append("共识观点：" + ", ".join(f"s{sid}({side})" for sid, side in math.consensus))
    lines.append("分歧观点：" + ", ".join(f"s{sid}" for sid in divisive_statements(math)))
    lines.append("")
    lines.append("留言（messages，最近的 80 条）：")
    for m in material.messages[-80:]:
        lines.append(f"m{m.id}: {m.text[:300]}")
    lines.append("")
    lines.append("离线摘要草稿（可改写）：")
    lines.append(offline.model_dump_json(include={"groups", "consensus", "divisive",
                                                  "open_questions", "next_steps"}))
    return "\n".join(lines)


def _parse_llm_json(content: str) -> dict[str, Any]:
    text = content.strip()
    fence = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    if fence:
        text = fence.group(1)
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        raise ValueError("no JSON object in the model's reply")
    data = json.loads(text[start:end + 1])
    if not isinstance(data, dict):
        raise ValueError("the model's reply is not a JSON object")
    return data


def _claims(raw: object) -> list[Claim]:
    if not isinstance(raw, list):
        return []
    out = []
    for item in raw:
        try:
            out.append(Claim.model_validate(item))
        except Exception:
            out.append(Claim(text=str(item)[:200]))  # kept so the check records its rejection
    return out


def llm_summary(material: ThreadMaterial, llm: Any, offline: ThreadSummary) -> ThreadSummary:
    """The LLM's summary from the math's output and the messages (not yet checked)."""
    reply = llm.invoke([("system", _LLM_INSTRUCTIONS),
                        ("human", _material_for_llm(material, offline))])
    content = reply.content if hasattr(reply, "content") else str(reply)
    if isinstance(content, list):  # some chat models return content blocks
        content = "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    data = _parse_llm_json(str(content))
    sizes = {g: len(ps) for g, ps in material.math.groups.items()}
    groups = []
    for raw in data.get("groups") or []:
        if not isinstance(raw, dict):
            continue
        label = str(raw.get("group", ""))
        view = _claims([raw.get("view")])
        groups.append(GroupView(group=label, size=sizes.get(label, 0),
                                view=view[0] if view else Claim(text=""),
                                representative=_claims(raw.get("representative"))))
    return offline.model_copy(update={
        "groups": groups,
        "consensus": _claims(data.get("consensus")),
        "divisive": _claims(data.get("divisive")),
        "open_questions": _claims(data.get("open_questions")),
        "next_steps": _claims(data.get("next_steps")),
        "engine": "llm",
    })


# --- the public function ---------------------------------------------------------------------


def summarise_thread(
    *,
    session: Session,
    actor: Actor,
    thread_id: int | None = None,
    topic: str | None = None,
    llm: Any = None,
    save: bool = True,
) -> ThreadSummary:
    """Staff: a cited summary of a thread, found by id or by topic text."""
    actor.require(Role.staff)
    if thread_id is not None:
        thread = threads.get_thread(session=session, thread_id=thread_id)
    elif topic:
        thread = threads.find_thread_by_topic(session=session, topic=topic)
    else:
        raise Invalid("请指定议题编号或话题", hint="例如：总结一下停车收费的讨论")
    material = load_material(session=session, thread=thread)
    summary = offline_summary(material)
    if llm is not None:
        try:
            summary = llm_summary(material, llm, summary)
        except Exception:  # an unusable reply must not cost staff their summary
            log.warning("LLM summary failed; using the offline summary", exc_info=True)
    summary = check_citations(summary, messages=material.message_texts,
                              statements=material.statement_texts)
    if save:
        record = SummaryRecord(thread_id=thread.id or 0, engine=summary.engine,
                               content=summary.model_dump(mode="json"),
                               created_by=actor.user_id)
        session.add(record)
        session.commit()
        session.refresh(record)
        summary = summary.model_copy(update={"summary_id": record.id})
    return summary


def render_text(summary: ThreadSummary) -> str:
    """The summary as a short WeChat-friendly text with its citations."""
    p = summary.participation
    lines = [f"【{summary.title}】{summary.question}",
             f"参与：{p.participants} 人，留言 {p.messages} 条，观点 {p.statements} 条，"
             f"投票 {p.votes} 次"]

    def cite(claim: Claim) -> str:
        return f"{claim.text}〔{','.join(claim.cites)}〕"

    if summary.groups:
        lines.append("意见分组：")
        lines += [f"· {g.group}组（{g.size}人）：{cite(g.view)}" for g in summary.groups]
    if summary.consensus:
        lines.append("共识：")
        lines += [f"· {cite(c)}" for c in summary.consensus]
    if summary.divisive:
        lines.append("分歧：")
        lines += [f"· {cite(c)}" for c in summary.divisive]
    if summary.open_questions:
        lines.append("待解答：")
        lines += [f"· {cite(c)}" for c in summary.open_questions[:3]]
    if summary.next_steps:
        lines.append("建议下一步：")
        lines += [f"· {cite(c)}" for c in summary.next_steps]
    if not (summary.groups or summary.consensus or summary.divisive):
        lines.append("投票还不多，暂时看不出明确的共识或分歧。")
    return "\n".join(lines)
