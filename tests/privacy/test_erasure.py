"""Erasure: the goal test (no byte of the phone number or the channel id is left in the data
directory, the reported problem stays on the board), and what stays anonymous."""

from __future__ import annotations

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from tests.privacy.conftest import OPENID, PHONE, USER_ID, History, files_containing, say
from yishi.bot import pipeline
from yishi.bot.models import OutboundMessage
from yishi.cli import app as cli_app
from yishi.core import jobs
from yishi.core.auth import Actor
from yishi.core.config import Settings
from yishi.core.db import get_engine, session_scope
from yishi.deliberation import issues as issue_service
from yishi.deliberation import threads as thread_service
from yishi.deliberation.models import Issue, Statement
from yishi.moderation.models import ReviewItem
from yishi.privacy import service as privacy_service
from yishi.privacy.models import PrivacyEvent


@pytest.mark.sqlite_only  # the byte search reads the embedded stack's files (SQLite, huey)
def test_after_erasure_no_byte_of_phone_or_channel_id_is_left_and_the_issue_stays(
    env: Settings, history: History
) -> None:
    root = env.data_dir
    # The data is really there first, in the database and in the job queue.
    assert files_containing(root, OPENID)
    assert files_containing(root, PHONE)
    assert any(name.startswith("jobs.db") for name in files_containing(root, PHONE))

    with session_scope(env) as session:
        done = privacy_service.erase(session=session, user_id=USER_ID, actor="web:admin1",
                                     settings=env)
    assert done.counts["messages"] >= 3 and done.counts["issues_reported"] == 2
    assert done.counts["queued_jobs"] == 1
    get_engine(env).dispose()
    jobs.get_huey().storage.close()

    assert files_containing(root, OPENID) == []
    assert files_containing(root, PHONE) == []
    assert files_containing(root, "110101199003074514") == []

    # The problems are still on the board, unlinked from anyone.
    neighbour = Actor(user_id="wechat_mp:oNeighbour", role="resident",  # type: ignore[arg-type]
                      channel="wechat_mp")
    with session_scope(env) as session:
        board = issue_service.list_issues(session=session, actor=neighbour)
        assert any("路灯" in i.text for i in board)
        assert all(i.reporter_id == "" for i in board)
        kept = session.get(Issue, history.issue_id)
        assert kept is not None and kept.status in {"assigned", "reported"}
        # The statement and the vote stay as anonymous counts.
        st = session.get(Statement, history.statement_id)
        assert st is not None and st.author_id.startswith("anon:") and st.text
        tally = thread_service.tally(session=session, thread_id=history.thread_id)
        assert tally[history.statement_id]["agree"] == 1
        # The review item (other people's ID number) is gone, the audit says only who erased.
        assert all(i.text == "" for i in session.exec(select(ReviewItem)).all())
        events = session.exec(select(PrivacyEvent)).all()
        erased = [e for e in events if e.action == "erase"]
        assert len(erased) == 1 and erased[0].actor == "web:admin1"
        assert OPENID not in str(erased[0].counts)


def test_cli_erase_and_export(env: Settings, history: History) -> None:
    runner = CliRunner()
    exported = runner.invoke(cli_app, ["privacy", "export", "--user", USER_ID])
    assert exported.exit_code == 0, exported.output
    assert "3栋2单元楼道灯坏了一周了" in exported.output and '"votes"' in exported.output
    refused = runner.invoke(cli_app, ["privacy", "erase", "--user", USER_ID], input="n\n")
    assert refused.exit_code == 1
    with session_scope(env) as session:
        assert privacy_service.holdings(session=session, user_id=USER_ID).counts["messages"]
    erased = runner.invoke(cli_app, ["privacy", "erase", "--user", USER_ID, "--yes"])
    assert erased.exit_code == 0, erased.output
    assert "已删除" in erased.output and "消息" in erased.output
    with session_scope(env) as session:
        held = privacy_service.holdings(session=session, user_id=USER_ID)
        assert sum(held.counts.values()) == 0
        audit = session.exec(select(PrivacyEvent)).all()
        assert [e.actor for e in audit if e.action == "erase"] == ["cli"]


def test_residents_erase_in_chat_after_confirming(env: Settings, history: History) -> None:
    assert "没有待确认的删除请求" in say("确认删除")
    asked = say("删除我的信息")
    assert "确认删除" in asked and "无法恢复" in asked
    done = say("确认删除")
    assert done.startswith("已删除您的个人信息") and "消息" in done
    with session_scope(env) as session:
        held = privacy_service.holdings(session=session, user_id=USER_ID)
        # Only the confirming message itself waits for its answer to go out.
        assert held.counts["messages"] == 1 and held.counts["issues_reported"] == 0
        assert held.counts["votes"] == 0 and held.counts["memory_turns"] == 0
        # Not while its answer waits to go out ...
        privacy_service.retention_sweep(session=session, settings=env)
        assert privacy_service.holdings(session=session, user_id=USER_ID).counts["messages"]
        waiting = session.exec(select(OutboundMessage.id).where(
            OutboundMessage.user_id == USER_ID)).one()
    # ... but once the channel has had it (no sender here: it ends as failed), it goes.
    pipeline.deliver_outbound(waiting)
    with session_scope(env) as session:
        privacy_service.retention_sweep(session=session, settings=env)
        held = privacy_service.holdings(session=session, user_id=USER_ID)
        assert held.counts["messages"] == 0 and held.counts["outbound"] == 0


def test_clear_command_says_exactly_what_it_cleared(env: Settings) -> None:
    say("3栋2单元楼道灯坏了")
    reply = say("清除记录")
    assert "对话记忆" in reply and "条" in reply and "删除我的信息" in reply
    assert "聊天记录" not in reply


def test_a_held_report_and_the_audit_lose_the_resident_on_erasure(env: Settings) -> None:
    """A report held for review keeps its place in its own table, and the audit names residents
    by a pseudonym: erasure drops both links, and the append-only log stays intact."""
    from yishi.deliberation import flows
    from yishi.deliberation.models import HeldIssue
    from yishi.moderation import audit as moderation_audit
    from yishi.moderation import service as moderation_service
    from yishi.moderation.models import AuditSubject

    resident = Actor(user_id=USER_ID, role="resident", channel="wechat_mp")  # type: ignore[arg-type]
    moderator = Actor(user_id="web:mod1", role="moderator", channel="web")  # type: ignore[arg-type]
    with session_scope(env) as session:
        held = flows.record_screened_issue(
            session=session, actor=resident, location="7栋3单元",
            text="楼下邻居的身份证号是110101199003074514，他家漏水淹了我家",
        )
        assert held.held
        session.commit()
        item = session.exec(select(ReviewItem).where(ReviewItem.sender_id == USER_ID)).first()
        assert item is not None and item.id is not None
        moderation_service.mute(session=session, actor=moderator, sender_id=USER_ID, hours=1,
                                reason="测试")
        assert session.exec(select(HeldIssue)).first() is not None
        entries = moderation_service.get_audit(session=session)
        assert any(e.details.get("sender_id") == USER_ID for e in entries)

    with session_scope(env) as session:
        privacy_service.erase(session=session, user_id=USER_ID, actor="web:admin1", settings=env)

    with session_scope(env) as session:
        assert session.exec(select(HeldIssue)).first() is None
        assert session.exec(select(AuditSubject)).first() is None
        entries = moderation_service.get_audit(session=session)
        assert all(e.details.get("sender_id") != USER_ID for e in entries)
        assert any(e.details.get("sender_id") == moderation_audit.ERASED_SUBJECT for e in entries)
        assert moderation_audit.verify(session=session).broken_id is None
