"""Summaries: built on the math, every claim cited, invented citations rejected."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlmodel import Session

from yishi.core.errors import Forbidden
from yishi.deliberation import summaries, threads
from yishi.deliberation.schemas import Claim, Quote
from yishi.deliberation.service import post_to_thread, summarise_thread, vote

from .factories import Actors, pk

resident = Actors.resident
staff = Actors.staff

STATEMENTS = [
    "停车收费应当公开账目",  # everyone agrees
    "地面车位应当涨价",  # camp A agrees, camp B disagrees
    "应当优先保障业主车位",  # camp B agrees, camp A disagrees
    "访客车辆限时免费",
    "收费标准由业主大会决定",
    "夜间停车减半收费",
]


def _camp_votes(i: int) -> list[str]:
    camp_a = i < 10
    return [
        "agree",
        "agree" if camp_a else "disagree",
        "disagree" if camp_a else "agree",
        "pass" if i in (3, 15) else "agree",
        "agree" if camp_a else "pass",
        "disagree" if camp_a else "agree",
    ]


def _discussion(session: Session) -> tuple[int, list[int], list[int]]:
    t = threads.create_thread(session=session, actor=staff(), title="停车收费调整",
                              question="小区地面停车该怎么收费？", statements=STATEMENTS)
    assert t.id is not None
    sids = [pk(s) for s in threads.get_statements(session=session, thread_id=pk(t))]
    posted = [
        post_to_thread(session=session, actor=resident(1), thread_id=pk(t),
                       text="去年的停车费用到哪里去了？希望物业说明"),
        post_to_thread(session=session, actor=resident(12), thread_id=pk(t),
                       text="业主自己的车都停不下，外来车太多"),
    ]
    mids = [pk(m) for m in posted]
    for i in range(20):
        for sid, value in zip(sids, _camp_votes(i), strict=True):
            vote(session=session, actor=resident(i), statement_id=sid, value=value)
    return pk(t), sids, mids


def test_offline_summary_from_the_math(session: Session) -> None:
    tid, sids, mids = _discussion(session)
    s = summarise_thread(session=session, actor=staff(), thread_id=tid)
    assert s.engine == "offline"
    assert s.participation.voters == 20 and s.participation.votes == 120
    assert s.participation.messages == 2
    assert len(s.groups) == 2
    assert sorted(g.size for g in s.groups) == [10, 10]
    assert f"s{sids[0]}" in {c for claim in s.consensus for c in claim.cites}
    divisive = {c for claim in s.divisive for c in claim.cites}
    assert {f"s{sids[1]}", f"s{sids[2]}"} <= divisive
    assert f"s{sids[0]}" not in divisive
    assert f"s{sids[4]}" not in divisive  # one group agrees, the other passes: undecided
    assert any(f"m{mids[0]}" in q.cites for q in s.open_questions)
    assert s.rejected == []
    assert s.summary_id is not None
    # every claim that survived cites something real and quotes verbatim
    messages = {m: t for m, t in zip(mids, ["去年的停车费用到哪里去了？希望物业说明",
                                            "业主自己的车都停不下，外来车太多"], strict=True)}
    statements = dict(zip(sids, STATEMENTS, strict=True))
    for claim in s.consensus + s.divisive + s.open_questions + s.next_steps:
        assert summaries.check_claim(claim, messages=messages, statements=statements) is None
    assert "停车收费调整" in summaries.render_text(s)


def test_summary_by_topic_and_role(session: Session) -> None:
    tid, _, _ = _discussion(session)
    assert summarise_thread(session=session, actor=staff(),
                            topic="总结一下停车收费的讨论").thread_id == tid
    with pytest.raises(Forbidden):
        summarise_thread(session=session, actor=resident(), thread_id=tid)


def test_citation_check_rejects_invented_ids_and_quotes() -> None:
    messages = {1: "电梯维修费用谁出？"}
    statements = {5: "维修费用按面积分摊"}
    ok = Claim(text="有人问费用", cites=["m1"], quotes=[Quote(ref="m1", text="电梯维修费用谁出")])
    assert summaries.check_claim(ok, messages=messages, statements=statements) is None
    bad = [
        Claim(text="无引用"),
        Claim(text="编号不存在", cites=["s99"]),
        Claim(text="格式不对", cites=["x1"]),
        Claim(text="改写引文", cites=["s5"], quotes=[Quote(ref="s5", text="维修费用平均分摊")]),
        Claim(text="引文出处未列出", cites=["m1"], quotes=[Quote(ref="s5", text="按面积分摊")]),
        Claim(text="跨议题编号", cites=["m2"]),
        Claim(text="真实编号但没有引文", cites=["m1"]),
        Claim(text="引文为空白", cites=["m1"], quotes=[Quote(ref="m1", text=" ")]),
    ]
    for claim in bad:
        assert summaries.check_claim(claim, messages=messages, statements=statements) is not None


class ScriptedChatModel:
    """A deterministic stand-in for a LangChain chat model: `invoke` replays queued replies."""

    def __init__(self) -> None:
        self.replies: list[str] = []
        self.history: list[Any] = []

    def enqueue(self, text: str) -> None:
        self.replies.append(text)

    def invoke(self, messages: Any) -> Any:
        self.history.append(messages)

        class Reply:
            content = self.replies.pop(0)

        return Reply()


def test_llm_summary_goes_through_the_check(session: Session) -> None:
    tid, sids, mids = _discussion(session)
    llm = ScriptedChatModel()
    llm.enqueue("```json\n" + json.dumps({
        "groups": [{"group": "A", "view": {"text": "A组支持涨价", "cites": [f"s{sids[1]}"],
                                           "quotes": [{"ref": f"s{sids[1]}",
                                                       "text": "地面车位应当涨价"}]},
                    "representative": []}],
        "consensus": [
            {"text": "大家都要求公开账目", "cites": [f"s{sids[0]}"],
             "quotes": [{"ref": f"s{sids[0]}", "text": "停车收费应当公开账目"}]},
            {"text": "编造的共识", "cites": ["s9999"]},
            {"text": "改写的引文", "cites": [f"m{mids[0]}"],
             "quotes": [{"ref": f"m{mids[0]}", "text": "停车费去哪了"}]},
        ],
        "divisive": [], "open_questions": [], "next_steps": [],
    }, ensure_ascii=False) + "\n```")
    s = summarise_thread(session=session, actor=staff(), thread_id=tid, llm=llm)
    assert s.engine == "llm"
    assert [c.text for c in s.consensus] == ["大家都要求公开账目"]
    assert len(s.rejected) == 2
    assert [g.group for g in s.groups] == ["A"] and s.groups[0].size == 10
    prompt = llm.history[0][1][1]
    assert f"s{sids[0]}" in prompt and f"m{mids[0]}" in prompt


def test_unusable_llm_reply_falls_back_to_offline(session: Session) -> None:
    tid, _, _ = _discussion(session)
    llm = ScriptedChatModel()
    llm.enqueue("抱歉，我无法完成")
    s = summarise_thread(session=session, actor=staff(), thread_id=tid, llm=llm)
    assert s.engine == "offline" and s.consensus


def test_small_thread_summarises_without_groups(session: Session) -> None:
    t = threads.create_thread(session=session, actor=staff(), title="健身器材",
                              question="换新器材吗？", statements=["应当更换"])
    sid = pk(threads.get_statements(session=session, thread_id=pk(t))[0])
    for i in range(3):
        vote(session=session, actor=resident(i), statement_id=sid, value="agree")
    s = summarise_thread(session=session, actor=staff(), thread_id=pk(t))
    assert s.participation.voters == 3
    assert [c.cites for c in s.consensus] == [[f"s{sid}"]]


def test_summary_with_a_real_langchain_client(session: Session) -> None:
    """The real ChatOpenAI client over HTTP to a local scripted server; the check still runs."""
    from tests.fakes.openai_server import FakeOpenAIServer
    from tests.fakes.openai_server import text as scripted
    from yishi.core.config import Settings
    from yishi.core.llm import build_chat_model

    tid, sids, _mids = _discussion(session)
    reply = {
        "groups": [],
        "consensus": [{"text": "大家都要求公开账目", "cites": [f"s{sids[0]}"],
                       "quotes": [{"ref": f"s{sids[0]}", "text": "停车收费应当公开账目"}]}],
        "divisive": [{"text": "涨价有分歧", "cites": [f"s{sids[1]}"],
                      "quotes": [{"ref": f"s{sids[1]}", "text": "车位应当大幅涨价"}]}],
        "open_questions": [], "next_steps": [],
    }
    with FakeOpenAIServer() as server:
        server.enqueue(scripted(json.dumps(reply, ensure_ascii=False)))
        llm = build_chat_model(Settings(llm_base_url=server.base_url, llm_model="fake-model"),
                               max_retries=0)
        s = summarise_thread(session=session, actor=staff(), thread_id=tid, llm=llm)
        sent = json.dumps(server.history[0], ensure_ascii=False)
    assert s.engine == "llm"
    assert [c.text for c in s.consensus] == ["大家都要求公开账目"]
    assert s.divisive == [] and s.rejected[0].section == "divisive"
    assert "停车收费应当公开账目" in sent


def test_every_group_gets_a_cited_view_even_without_representative_statements() -> None:
    from yishi.deliberation.summaries import MathView, StatementFigures, offline_summary

    figs = StatementFigures(agree=2)
    math = MathView(
        groups={"A": ["p1", "p2"], "B": ["p3"]},
        repness={"A": [(1, "agree")], "B": []},
        consensus=[],
        overall={1: figs},
        by_group={"A": {1: figs}, "B": {1: figs}},
    )
    from yishi.deliberation.models import Statement, Thread
    from yishi.deliberation.summaries import ThreadMaterial

    material = ThreadMaterial(
        thread=Thread(id=1, title="停车", question="访客怎么停车？", created_by="web:staff"),
        messages=[],
        statements=[
            Statement(id=1, thread_id=1, author_id="web:a", text="访客车辆应该免费停两小时")
        ],
        votes=[("p1", 1, 1), ("p2", 1, 1), ("p3", 1, 1)],
        math=math,
    )
    summary = offline_summary(material)
    assert [g.group for g in summary.groups] == ["A", "B"]
    assert summary.groups[1].view.cites == ["s1"]
