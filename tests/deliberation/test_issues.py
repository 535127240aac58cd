"""Issues: recording, routing with SLA, duplicate joining, status machine, views, overdue."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from yishi.core.errors import Forbidden, Invalid, NotFound
from yishi.deliberation import issues, responsibility
from yishi.deliberation.places import normalise_location

from .factories import Actors, Clock, pk

resident = Actors.resident
staff = Actors.staff
admin = Actors.admin


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("3栋2单元楼道灯坏了", "b3/u2"),
        ("3号楼2单元的灯", "b3/u2"),
        ("三号楼二单元", "b3/u2"),
        ("3幢2单元", "b3/u2"),
        ("3#2单元", "b3/u2"),
        ("十二栋一单元", "b12/u1"),
        ("3-2-301漏水", "b3/u2/r301"),
        ("3号楼2单元301室", "b3/u2/r301"),
        ("地库B区灯不亮", "place:地下车库"),
        ("小区东门的路灯", "place:东门"),
        ("楼道灯坏了", None),
    ],
)
def test_location_normalisation(text: str, key: str | None) -> None:
    assert normalise_location(text).key == key


def test_record_routes_by_category_with_sla(session: Session, clock: Clock) -> None:
    out = issues.record_issue(session=session, actor=resident(), text="3栋2单元楼道灯坏了一周了")
    issue = out.issue
    assert not out.joined_existing
    assert issue.category == "repairs"
    assert issue.responsible_party == "物业公司"
    assert issue.status == "assigned"
    assert issue.building == "3"
    assert issue.due_at is not None
    assert (issue.due_at - issue.created_at).total_seconds() == 48 * 3600
    kinds = [e.kind for e in issues.get_timeline(session=session, actor=resident(),
                                                   issue_id=pk(issue))]
    assert kinds == ["reported", "routed"]
    assert str(issue.id) in out.notice


def test_urgent_issue_gets_the_shorter_sla(session: Session, clock: Clock) -> None:
    issue = issues.record_issue(session=session, actor=resident(),
                                text="5栋电梯被困人了，电梯故障").issue
    assert issue.urgency == "urgent" and issue.due_at is not None
    assert (issue.due_at - issue.created_at).total_seconds() == 4 * 3600


def test_routing_follows_admin_override_and_file(session: Session, clock: Clock,
                                                 tmp_path, monkeypatch) -> None:
    responsibility.set_rule(session=session, actor=admin(), category="noise",
                            party="街道/城管", sla_hours=12)
    issue = issues.record_issue(session=session, actor=resident(),
                                text="7栋楼下广场舞太吵扰民").issue
    assert issue.category == "noise"
    assert issue.responsible_party == "街道/城管" and issue.due_at is not None
    assert (issue.due_at - issue.created_at).total_seconds() == 12 * 3600

    custom = tmp_path / "resp.toml"
    custom.write_text('[pets]\nparty = "业委会"\nsla_hours = 6\n', encoding="utf-8")
    monkeypatch.setenv("YISHI_RESPONSIBILITY_PATH", str(custom))
    from yishi.core.config import get_settings

    get_settings.cache_clear()
    pet = issues.record_issue(session=session, actor=resident(2),
                              text="2栋有人遛狗不拴绳").issue
    assert pet.responsible_party == "业委会"
    entries = responsibility.get_list(session=session)
    assert entries["noise"].source == "admin" and entries["pets"].party == "业委会"


def test_only_admin_edits_responsibility(session: Session) -> None:
    with pytest.raises(Forbidden):
        responsibility.set_rule(session=session, actor=staff(), category="noise",
                                party="x", sla_hours=1)
    with pytest.raises(Invalid):
        responsibility.set_rule(session=session, actor=admin(), category="nope",
                                party="x", sla_hours=1)


def test_duplicate_report_joins_open_issue(session: Session, clock: Clock) -> None:
    first = issues.record_issue(session=session, actor=resident(1),
                                text="3栋2单元楼道灯坏了一周了").issue
    again = issues.record_issue(session=session, actor=resident(2),
                                text="3号楼2单元的楼道灯不亮")
    assert again.joined_existing
    assert again.issue.id == first.id
    assert again.issue.supporter_count == 1
    assert "支持者" in again.notice
    # the supporter follows the issue too
    mine = issues.get_issues_for_reporter(session=session, actor=resident(2))
    assert [pk(i) for i in mine] == [first.id]
    # the same person repeating does not count twice
    repeat = issues.record_issue(session=session, actor=resident(2), text="三号楼二单元楼道灯坏了")
    assert repeat.joined_existing and repeat.issue.supporter_count == 1


def test_different_problem_or_place_is_a_new_issue(session: Session, clock: Clock) -> None:
    first = issues.record_issue(session=session, actor=resident(1),
                                text="3栋2单元楼道灯坏了").issue
    other_problem = issues.record_issue(session=session, actor=resident(2),
                                        text="3栋2单元电梯坏了")
    other_place = issues.record_issue(session=session, actor=resident(3),
                                      text="4栋2单元楼道灯坏了")
    assert not other_problem.joined_existing and other_problem.issue.id != first.id
    assert not other_place.joined_existing and other_place.issue.id != first.id


def test_unrecognised_place_dedupes_on_its_wording(session: Session, clock: Clock) -> None:
    first = issues.record_issue(session=session, actor=resident(1), text="路灯坏了",
                                location="小区后门小卖部旁").issue
    again = issues.record_issue(session=session, actor=resident(2), text="那边路灯不亮",
                                location="后门小卖部旁")
    assert again.joined_existing and again.issue.id == first.id


def test_closed_issue_is_not_joined(session: Session, clock: Clock) -> None:
    first = issues.record_issue(session=session, actor=resident(1),
                                text="3栋2单元楼道灯坏了").issue
    issues.transition(session=session, actor=staff(), issue_id=pk(first), to_status="resolved")
    issues.transition(session=session, actor=staff(), issue_id=pk(first), to_status="closed")
    again = issues.record_issue(session=session, actor=resident(2), text="3栋2单元楼道灯坏了")
    assert not again.joined_existing


def test_personal_data_is_redacted(session: Session, clock: Clock) -> None:
    issue = issues.record_issue(session=session, actor=resident(),
                                text="3栋2单元漏水，联系我13812345678").issue
    assert "13812345678" not in issue.text


def test_missing_location_is_reported(session: Session, clock: Clock) -> None:
    out = issues.record_issue(session=session, actor=resident(), text="楼道灯坏了")
    assert out.missing == ["location"]
    assert "位置" in out.notice


def test_status_machine(session: Session, clock: Clock) -> None:
    issue = issues.record_issue(session=session, actor=resident(), text="3栋垃圾没人清运").issue
    with pytest.raises(Forbidden):
        issues.transition(session=session, actor=resident(), issue_id=pk(issue),
                          to_status="in_progress")
    with pytest.raises(Invalid):
        issues.transition(session=session, actor=staff(), issue_id=pk(issue), to_status="closed")
    with pytest.raises(Invalid):
        issues.transition(session=session, actor=staff(), issue_id=pk(issue), to_status="rejected")
    issues.transition(session=session, actor=staff(), issue_id=pk(issue), to_status="in_progress")
    done, old = issues.transition(session=session, actor=staff(), issue_id=pk(issue),
                                  to_status="resolved", note="已清运")
    assert old == "in_progress" and done.resolved_at is not None
    reopened, _ = issues.transition(session=session, actor=staff(), issue_id=pk(issue),
                                    to_status="in_progress")
    assert reopened.resolved_at is None
    rejected, _ = issues.transition(session=session, actor=staff(), issue_id=pk(issue),
                                    to_status="rejected", reason="非小区范围")
    assert rejected.reject_reason == "非小区范围"
    with pytest.raises(Invalid):
        issues.transition(session=session, actor=staff(), issue_id=pk(issue), to_status="assigned")


def test_residents_see_only_their_issues(session: Session, clock: Clock) -> None:
    issue = issues.record_issue(session=session, actor=resident(1), text="3栋漏水").issue
    with pytest.raises(Forbidden):
        issues.get_issue(session=session, actor=resident(9), issue_id=pk(issue))
    with pytest.raises(NotFound):
        issues.get_issue(session=session, actor=resident(1), issue_id=9999)
    assert issues.get_issue(session=session, actor=staff(), issue_id=pk(issue)).id == issue.id
    issues.record_issue(session=session, actor=resident(2), text="8栋邻居吵架纠纷")
    board = issues.list_issues(session=session, actor=resident(1))
    assert [pk(i) for i in board] == [issue.id]  # the neighbour dispute stays off the board
    assert len(issues.list_issues(session=session, actor=staff())) == 2


def test_views_by_party_status_building_overdue(session: Session, clock: Clock) -> None:
    a = issues.record_issue(session=session, actor=resident(1), text="3栋2单元楼道灯坏了").issue
    b = issues.record_issue(session=session, actor=resident(2), text="5号楼门口垃圾没清运").issue
    c = issues.record_issue(session=session, actor=resident(3), text="8栋邻居吵架纠纷").issue
    ids = lambda rows: sorted(pk(i) for i in rows)  # noqa: E731
    assert ids(issues.list_issues(session=session, actor=staff(), party="物业公司")) == \
        sorted([pk(a), pk(b)])
    assert ids(issues.list_issues(session=session, actor=staff(), party="居委会")) == [pk(c)]
    assert ids(issues.list_issues(session=session, actor=staff(), building="3")) == [pk(a)]
    assert ids(issues.list_issues(session=session, actor=staff(), building="五号楼")) == [pk(b)]
    clock.advance(hours=30)  # past garbage's 24 h, not repairs' 48 h
    assert ids(issues.list_issues(session=session, actor=staff(), overdue=True)) == [pk(b)]
    assert ids(issues.list_issues(session=session, actor=staff(), overdue=False)) == \
        sorted([pk(a), pk(c)])
    issues.transition(session=session, actor=staff(), issue_id=pk(b), to_status="resolved")
    assert issues.list_issues(session=session, actor=staff(), overdue=True) == []
    assert ids(issues.list_issues(session=session, actor=staff(), status="resolved")) == [pk(b)]


def test_flag_overdue_once(session: Session, clock: Clock) -> None:
    a = issues.record_issue(session=session, actor=resident(1), text="3栋2单元楼道灯坏了").issue
    clock.advance(hours=47)
    assert issues.flag_overdue(session=session) == []
    clock.advance(hours=2)
    flagged = issues.flag_overdue(session=session)
    assert [pk(i) for i in flagged] == [pk(a)]
    assert issues.flag_overdue(session=session) == []
    kinds = [e.kind for e in issues.get_timeline(session=session, actor=staff(), issue_id=pk(a))]
    assert kinds[-1] == "overdue"
    # reassigning resets the due time and the flag
    issues.assign(session=session, actor=staff(), issue_id=pk(a), party="业委会")
    assert not issues.is_overdue(issues.get_issue(session=session, actor=staff(), issue_id=pk(a)))
