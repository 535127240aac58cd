"""Proposals: drafting from a summary, the status path, and Civil Code art. 278 at its edges."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from sqlmodel import Session

from yishi.core.errors import Forbidden, Invalid
from yishi.deliberation import proposals, threads
from yishi.deliberation.proposals import art278_tally
from yishi.deliberation.service import vote

from .factories import Actors, pk

resident = Actors.resident
staff = Actors.staff

EQUAL6 = [(f"o{i}", 100.0) for i in range(6)]


def _ballots(agree: list[str], disagree: Sequence[str] = (), abstain: Sequence[str] = ()
             ) -> dict[str, str]:
    out = {o: "agree" for o in agree}
    out.update({o: "disagree" for o in disagree})
    out.update({o: "abstain" for o in abstain})
    return out


def test_participation_two_thirds_is_inclusive() -> None:
    # 4 of 6 owners holding 400 of 600 m²: exactly two thirds of both takes part
    t = art278_tally(units=EQUAL6, ballots=_ballots(["o0", "o1", "o2"], ["o3"]), majority="half")
    assert t.quorum_area and t.quorum_owners and t.passed
    # 3 of 6: below two thirds
    t = art278_tally(units=EQUAL6, ballots=_ballots(["o0", "o1", "o2"]), majority="half")
    assert not t.quorum_owners and not t.passed


def test_participation_needs_area_and_owners_both() -> None:
    # o0 holds most of the area: area quorum met, owner quorum not
    units = [("o0", 500.0), ("o1", 50.0), ("o2", 50.0), ("o3", 50.0)]
    t = art278_tally(units=units, ballots=_ballots(["o0"]), majority="half")
    assert t.quorum_area and not t.quorum_owners and not t.passed
    # three small owners: owner quorum (3/4) met, area (150/650) not
    t = art278_tally(units=units, ballots=_ballots(["o1", "o2", "o3"]), majority="half")
    assert t.quorum_owners and not t.quorum_area and not t.passed


def test_simple_majority_excludes_exactly_half() -> None:
    # all 6 vote, 3 agree: exactly half is not 过半数
    t = art278_tally(units=EQUAL6, ballots=_ballots(["o0", "o1", "o2"], ["o3", "o4", "o5"]),
                     majority="half")
    assert not t.agreed_owners and not t.agreed_area and not t.passed
    t = art278_tally(units=EQUAL6, ballots=_ballots(["o0", "o1", "o2", "o3"], ["o4", "o5"]),
                     majority="half")
    assert t.passed


def test_abstentions_count_as_participating_not_agreeing() -> None:
    t = art278_tally(units=EQUAL6, ballots=_ballots(["o0", "o1", "o2"], [], ["o3", "o4"]),
                     majority="half")
    assert t.voted_owners == 5 and t.agree_owners == 3 and t.passed
    t = art278_tally(units=EQUAL6, ballots=_ballots(["o0", "o1"], [], ["o2", "o3", "o4"]),
                     majority="half")
    assert not t.passed


def test_three_quarters_is_inclusive_and_needs_both() -> None:
    units = [(f"o{i}", 100.0) for i in range(4)]
    t = art278_tally(units=units, ballots=_ballots(["o0", "o1", "o2"], ["o3"]),
                     majority="three_quarters")
    assert t.agreed_owners and t.agreed_area and t.passed  # exactly 3/4
    # same head count, but the disagreeing owner holds more area: 300/400.01 < 3/4
    units2 = [("o0", 100.0), ("o1", 100.0), ("o2", 100.0), ("o3", 100.01)]
    t = art278_tally(units=units2, ballots=_ballots(["o0", "o1", "o2"], ["o3"]),
                     majority="three_quarters")
    assert t.agreed_owners and not t.agreed_area and not t.passed


def test_two_thirds_rule_is_inclusive() -> None:
    units = [(f"o{i}", 90.0) for i in range(3)]
    t = art278_tally(units=units, ballots=_ballots(["o0", "o1"], ["o2"]), majority="two_thirds")
    assert t.passed
    units = [("o0", 90.0), ("o1", 90.0), ("o2", 90.01)]
    t = art278_tally(units=units, ballots=_ballots(["o0", "o1"], ["o2"]), majority="two_thirds")
    assert not t.agreed_area


def test_decimal_areas_are_exact() -> None:
    # 20.2 of 30.3 m² is exactly two thirds, which binary floats get wrong
    units = [("o0", 10.1), ("o1", 10.1), ("o2", 10.1)]
    t = art278_tally(units=units, ballots=_ballots(["o0", "o1"]), majority="half")
    assert t.quorum_area and t.quorum_owners


def test_owner_with_two_units_counts_once() -> None:
    units = [("o0", 100.0), ("o0", 100.0), ("o1", 100.0), ("o2", 100.0)]
    t = art278_tally(units=units, ballots=_ballots(["o0", "o1"]), majority="half")
    assert t.total_owners == 3 and t.voted_owners == 2
    assert t.voted_area == 300 and t.total_area == 400
    assert t.quorum_owners and t.quorum_area


def test_ballots_from_non_owners_are_ignored() -> None:
    t = art278_tally(units=EQUAL6, ballots=_ballots(["x1", "x2", "x3", "x4"]), majority="half")
    assert t.voted_owners == 0 and not t.passed


def _discussed_thread(session: Session) -> int:
    t = threads.create_thread(session=session, actor=staff(), title="电梯加装",
                              question="3栋是否加装电梯？",
                              statements=["应当加装电梯", "费用按楼层分摊"])
    sids = [pk(s) for s in threads.get_statements(session=session, thread_id=pk(t))]
    for i in range(5):
        vote(session=session, actor=resident(i), statement_id=sids[0], value="agree")
    return pk(t)


def test_draft_vote_and_status_path(session: Session) -> None:
    tid = _discussed_thread(session)
    p = proposals.draft_from_summary(session=session, actor=staff(), thread_id=tid,
                                     proposal_type="rebuild")
    assert p.status == "draft" and p.summary_id is not None
    assert p.options[0]["key"] == "A" and "应当加装电梯" in p.options[0]["text"]
    assert {x["party"] for x in p.responsible_parties} >= {"业委会", "居委会"}
    assert [x["step"] for x in p.timetable][:2] == ["公示征求意见", "表决"]
    assert p.tasks and p.tasks[0]["party"] == "业委会"
    with pytest.raises(Invalid):
        proposals.change_status(session=session, actor=staff(), proposal_id=pk(p),
                                to_status="adopted")
    proposals.edit(session=session, actor=staff(), proposal_id=pk(p),
                   changes={"title": "3栋加装电梯"})
    proposals.change_status(session=session, actor=staff(), proposal_id=pk(p),
                            to_status="voting")
    with pytest.raises(Invalid):
        proposals.edit(session=session, actor=staff(), proposal_id=pk(p), changes={"title": "x"})
    for i, area in enumerate([100.0, 100.0, 100.0, 100.0]):
        proposals.record_unit(session=session, actor=staff(), unit=f"3-1-{i + 1}01",
                              owner_id=resident(i).user_id, area_m2=area)
    with pytest.raises(Forbidden):
        proposals.cast_ballot(session=session, actor=resident(9), proposal_id=pk(p),
                              choice="agree")
    for i in range(3):
        proposals.cast_ballot(session=session, actor=resident(i), proposal_id=pk(p),
                              choice="disagree")
    for i in range(3):  # ballots are changeable until voting closes
        proposals.cast_ballot(session=session, actor=resident(i), proposal_id=pk(p),
                              choice="agree")
    proposals.cast_ballot(session=session, actor=resident(3), proposal_id=pk(p),
                          choice="disagree")
    done = proposals.close_voting(session=session, actor=staff(), proposal_id=pk(p))
    assert done.status == "adopted" and done.result["passed"]
    assert done.result["agree_owners"] == 3 and done.result["voted_owners"] == 4
    proposals.change_status(session=session, actor=staff(), proposal_id=pk(p),
                            to_status="in_progress", note="已委托施工单位")
    proposals.add_update(session=session, actor=staff(), proposal_id=pk(p), note="完成图纸")
    proposals.change_status(session=session, actor=staff(), proposal_id=pk(p), to_status="done")
    updates = proposals.get_updates(session=session, proposal_id=pk(p))
    assert [u.to_status for u in updates] == \
        ["draft", "voting", "adopted", "in_progress", None, "done"]


def test_consultation_counts_participants(session: Session) -> None:
    tid = _discussed_thread(session)
    p = proposals.draft_from_summary(session=session, actor=staff(), thread_id=tid)
    proposals.change_status(session=session, actor=staff(), proposal_id=pk(p),
                            to_status="voting")
    proposals.cast_ballot(session=session, actor=resident(1), proposal_id=pk(p), choice="agree")
    proposals.cast_ballot(session=session, actor=resident(2), proposal_id=pk(p),
                          choice="disagree")
    done = proposals.close_voting(session=session, actor=staff(), proposal_id=pk(p))
    assert done.status == "rejected"  # one of two is not more than half


def test_only_staff_manage_proposals(session: Session) -> None:
    tid = _discussed_thread(session)
    with pytest.raises(Forbidden):
        proposals.draft_from_summary(session=session, actor=resident(), thread_id=tid)
    with pytest.raises(Invalid):
        proposals.draft_from_summary(session=session, actor=staff(), thread_id=tid,
                                     proposal_type="nonsense")
