"""What is shown of opinion groups on small threads: never a group below the minimum, a plain
note when there is nothing to group, each quote once, and proposals in residents' words."""

from __future__ import annotations

import random

import pytest
from sqlmodel import Session

from yishi.core.errors import Invalid
from yishi.deliberation import consensus, proposals, summaries, threads
from yishi.deliberation.service import vote

from .factories import Actors, pk

staff = Actors.staff
resident = Actors.resident

STATEMENTS = [
    "访客车位应当收费", "收费标准每小时两元", "收费收入用于维修道路", "业主车辆优先停放",
    "晚上十点后免费", "由业委会监督收费", "收费前先公示三十天", "外来车辆一律不得进入",
]


def _camps(n_a: int, n_b: int, n_odd: int = 0, seed: int = 3) -> list[tuple[str, int, int]]:
    """Two clear camps that vote opposite on most statements, plus `n_odd` contrarians."""
    rng = random.Random(seed)
    rows: list[tuple[str, int, int]] = []
    for i in range(n_a + n_b + n_odd):
        camp = 0 if i < n_a else (1 if i < n_a + n_b else 2)
        for sid in range(1, len(STATEMENTS) + 1):
            if camp == 2:
                value = rng.choice([1, -1, 0])
            else:
                base = 1 if (sid % 2 == 0) == (camp == 0) else -1
                value = base if rng.random() < 0.9 else -base
            rows.append((f"p{i}", sid, value))
    return rows


def test_fifteen_residents_in_two_camps_show_two_groups_of_at_least_five() -> None:
    math = summaries.run_math(_camps(8, 7), min_group=5)
    assert len(math.groups) == 2
    assert all(len(members) >= 5 for members in math.groups.values())
    assert "50" in math.note  # says the method is meant for larger conversations


def test_a_lone_contrarian_is_never_shown_as_a_group() -> None:
    rows = _camps(8, 7, n_odd=1)
    raw = consensus.compute(rows)
    math = summaries.run_math(rows, min_group=5)
    assert all(len(members) >= 5 for members in math.groups.values())
    shown = sum(len(m) for m in math.groups.values())
    assert shown == len(raw.participants)  # the small group joined a neighbour, not dropped


def test_too_few_voters_are_not_grouped_and_say_so() -> None:
    math = summaries.run_math(_camps(4, 3), min_group=5)
    assert math.groups == {}
    assert "人数太少" in math.note


def test_participants_with_few_votes_are_not_grouped() -> None:
    rows = [r for r in _camps(8, 7) if not (r[0] == "p0" and r[1] > 3)]
    math = summaries.run_math(rows, min_group=5)
    assert "p0" not in {p for members in math.groups.values() for p in members}


def test_undivided_room_has_no_groups() -> None:
    rows = [(f"p{i}", sid, 1) for i in range(20) for sid in range(1, 9)]
    math = summaries.run_math(rows, min_group=5)
    assert math.groups == {}


def _thread_with_camps(session: Session) -> int:
    t = threads.create_thread(session=session, actor=staff(), title="访客车位",
                              question="访客车位要不要收费？", statements=STATEMENTS)
    sids = [pk(s) for s in threads.get_statements(session=session, thread_id=pk(t))]
    for voter, sid, value in _camps(8, 7):
        n = int(voter[1:])
        choice = {1: "agree", -1: "disagree", 0: "pass"}[value]
        vote(session=session, actor=resident(n), statement_id=sids[sid - 1], value=choice)
    return pk(t)


def test_each_statement_is_quoted_once_per_group(session: Session) -> None:
    tid = _thread_with_camps(session)
    summary = summaries.summarise_thread(session=session, actor=staff(), thread_id=tid)
    assert summary.groups
    for group in summary.groups:
        view_refs = set(group.view.cites)
        rep_refs = {r for c in group.representative for r in c.cites}
        assert not view_refs & rep_refs


def test_proposal_is_written_for_residents(session: Session) -> None:
    tid = _thread_with_camps(session)
    p = proposals.draft_from_summary(session=session, actor=staff(), thread_id=tid)
    words = p.background + "".join(o["text"] for o in p.options)
    for internal in ("组同意", "%", "〔", "s1", "分歧点", "另行表决"):
        assert internal not in words, internal
    assert p.options[-1]["label"] == "维持现状"
    summary = summaries.summarise_thread(session=session, actor=staff(), thread_id=tid,
                                         save=False)
    for claim in summary.consensus:  # what most oppose is never offered as agreed
        if claim.text.startswith("多数参与者反对"):
            assert claim.quotes[0].text not in p.options[0]["text"]
    assert all(o.get("label") for o in p.options)


def test_closing_with_too_few_ballots_warns_first(session: Session) -> None:
    tid = _thread_with_camps(session)
    p = proposals.draft_from_summary(session=session, actor=staff(), thread_id=tid)
    proposals.change_status(session=session, actor=staff(), proposal_id=pk(p), to_status="voting")
    with pytest.raises(Invalid) as exc:
        proposals.close_voting(session=session, actor=staff(), proposal_id=pk(p),
                               confirm_low_turnout=False)
    assert "还没有人投票" in exc.value.message
    proposals.cast_ballot(session=session, actor=resident(1), proposal_id=pk(p), choice="agree")
    with pytest.raises(Invalid) as exc:
        proposals.close_voting(session=session, actor=staff(), proposal_id=pk(p),
                               confirm_low_turnout=False)
    assert "只有 1 人投票" in exc.value.message
    done = proposals.close_voting(session=session, actor=staff(), proposal_id=pk(p),
                                  confirm_low_turnout=True)
    assert done.status == "adopted"
