"""Threads, statements and votes: one vote per person per statement, changeable."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from yishi.core.errors import Forbidden, Invalid, NotFound
from yishi.deliberation import service, threads
from yishi.deliberation.models import Vote

from .factories import Actors, pk

resident = Actors.resident
staff = Actors.staff


def _thread(session: Session) -> int:
    t = threads.create_thread(session=session, actor=staff(), title="停车收费调整",
                              question="地面停车位是否按月收费？", statements=["应当按月收费"])
    assert t.id is not None
    return t.id


def test_only_staff_open_threads(session: Session) -> None:
    with pytest.raises(Forbidden):
        threads.create_thread(session=session, actor=resident(), title="x", question="y")


def test_vote_is_changeable_and_unique(session: Session) -> None:
    tid = _thread(session)
    sid = pk(threads.get_statements(session=session, thread_id=tid)[0])
    service.vote(session=session, actor=resident(1), statement_id=sid, value="agree")
    service.vote(session=session, actor=resident(2), statement_id=sid, value="agree")
    changed = service.vote(session=session, actor=resident(1), statement_id=sid,
                           value="disagree")
    assert changed.value == -1
    assert threads.tally(session=session, thread_id=tid)[sid] == \
        {"agree": 1, "disagree": 1, "pass": 0}
    rows = session.exec(select(Vote).where(Vote.voter_id == resident(1).user_id)).all()
    assert len(rows) == 1
    # the database itself refuses a second row for the same person and statement
    session.add(Vote(statement_id=sid, thread_id=tid, voter_id=resident(2).user_id, value=0))
    with pytest.raises(IntegrityError):
        session.commit()
    session.rollback()


def test_vote_rejects_unknown_values_and_statements(session: Session) -> None:
    tid = _thread(session)
    sid = pk(threads.get_statements(session=session, thread_id=tid)[0])
    with pytest.raises(Invalid):
        service.vote(session=session, actor=resident(), statement_id=sid, value="maybe")
    with pytest.raises(NotFound):
        service.vote(session=session, actor=resident(), statement_id=999, value="agree")


def test_post_and_statement_and_closed_thread(session: Session) -> None:
    tid = _thread(session)
    m = service.post_to_thread(session=session, actor=resident(), thread_id=tid,
                               text="夜间能不能免费？", as_statement=False)
    assert m.id and m.visible
    m2 = service.post_to_thread(session=session, actor=resident(2), thread_id=tid,
                                text="夜间停车应当免费", as_statement=True)
    st = threads.statement_for_message(session=session, message_id=pk(m2))
    assert st is not None and st.text == "夜间停车应当免费"
    with pytest.raises(Invalid):
        threads.add_statement(session=session, actor=resident(), thread_id=tid, text="长" * 200)
    assert [pk(t) for t in service.get_open_threads(session=session)] == [tid]
    threads.close_thread(session=session, actor=staff(), thread_id=tid)
    assert service.get_open_threads(session=session) == []
    with pytest.raises(Invalid):
        service.post_to_thread(session=session, actor=resident(), thread_id=tid, text="还有")
    with pytest.raises(Invalid):
        service.vote(session=session, actor=resident(), statement_id=pk(st), value="agree")


def test_hidden_messages_are_not_listed(session: Session) -> None:
    tid = _thread(session)
    m = service.post_to_thread(session=session, actor=resident(), thread_id=tid, text="待审核",
                               visible=False, as_statement=True)
    assert threads.get_messages(session=session, thread_id=tid) == []
    assert len(threads.get_statements(session=session, thread_id=tid)) == 1
    threads.set_message_visible(session=session, message_id=pk(m), visible=True)
    assert len(threads.get_statements(session=session, thread_id=tid)) == 2


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("同意 12", (12, "agree")), ("反对#3", (3, "disagree")), ("跳过 s7", (7, "pass")),
     ("不同意第5条", (5, "disagree")), ("我同意大家的看法", None)],
)
def test_parse_vote_command(text: str, parsed: tuple[int, str] | None) -> None:
    assert threads.parse_vote_command(text) == parsed


def test_find_thread_by_topic(session: Session) -> None:
    tid = _thread(session)
    threads.create_thread(session=session, actor=staff(), title="加装电梯",
                          question="3栋是否加装电梯？")
    assert threads.find_thread_by_topic(session=session, topic="总结一下停车收费的讨论").id == tid
    with pytest.raises(NotFound):
        threads.find_thread_by_topic(session=session, topic="总结一下垃圾分类的讨论")
