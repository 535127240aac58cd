"""The staff console: the issue board and its filters, issue status changes, threads with
summaries, proposals, the responsibility list and undelivered messages."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlmodel import select

from yishi.bot.models import InboundMessage, InboundStatus, OutboundMessage, OutboundStatus
from yishi.core.auth import Actor
from yishi.core.clock import utcnow
from yishi.core.config import Settings
from yishi.core.db import session_scope
from yishi.core.models import Role
from yishi.deliberation import issues, threads
from yishi.deliberation.models import Issue, IssueEvent, Proposal

from .conftest import login

STAFF = Actor(user_id="web:s1", role=Role.staff)


def _issue(settings: Settings, text: str, reporter: str, category: str | None = None) -> int:
    with session_scope(settings) as session:
        recorded = issues.record_issue(
            session=session, actor=Actor(user_id=reporter), text=text, category=category
        )
        assert recorded.issue.id is not None
        return recorded.issue.id


def _board_ids(html: str) -> set[int]:
    return {int(n) for n in re.findall(r'<td><a href="/console/issues/(\d+)">', html)}


def test_issue_board_filters(
    client: TestClient, yishi_env: Settings, make_token: Callable[..., str]
) -> None:
    lamp = _issue(yishi_env, "3栋2单元楼道灯坏了一周了", "wechat_mp:oA", "repairs")
    noise = _issue(yishi_env, "5栋楼下广场舞太吵，晚上十点还在放音乐", "wechat_mp:oB", "noise")
    lift = _issue(yishi_env, "3栋1单元电梯停了", "wechat_mp:oC", "repairs")
    with session_scope(yishi_env) as session:
        late = session.get(Issue, lift)
        assert late is not None
        late.due_at = utcnow() - timedelta(hours=2)
        session.add(late)
        lamp_party = session.get(Issue, lamp).responsible_party  # type: ignore[union-attr]
        noise_party = session.get(Issue, noise).responsible_party  # type: ignore[union-attr]
        issues.transition(session=session, actor=STAFF, issue_id=noise, to_status="in_progress")
    assert lamp_party and noise_party and lamp_party != noise_party

    login(client, make_token(Role.staff, "工作人员", "web:s1"))
    everything = client.get("/console/issues")
    assert everything.status_code == 200
    assert _board_ids(everything.text) == {lamp, noise, lift}
    assert "超期" in everything.text

    assert _board_ids(client.get("/console/issues", params={"party": lamp_party}).text) == {
        lamp, lift}
    assert _board_ids(client.get("/console/issues", params={"party": noise_party}).text) == {
        noise}
    assert _board_ids(client.get("/console/issues", params={"status": "in_progress"}).text) == {
        noise}
    assert _board_ids(client.get("/console/issues", params={"building": "3"}).text) == {
        lamp, lift}
    assert _board_ids(client.get("/console/issues", params={"overdue": "yes"}).text) == {lift}
    assert _board_ids(client.get("/console/issues", params={"overdue": "no"}).text) == {
        lamp, noise}
    combined = client.get("/console/issues", params={"building": "3栋", "overdue": "no"})
    assert _board_ids(combined.text) == {lamp}
    # Unknown filter values are ignored rather than breaking the page.
    assert _board_ids(client.get("/console/issues", params={"status": "<x>"}).text) == {
        lamp, noise, lift}


def test_issue_detail_status_change_and_timeline(
    client: TestClient, yishi_env: Settings, make_token: Callable[..., str]
) -> None:
    issue_id = _issue(yishi_env, "3栋2单元楼道灯坏了 <img src=x onerror=alert(1)>",
                      "wechat_mp:oA", "repairs")
    csrf = login(client, make_token(Role.staff, "工作人员", "web:s1"))
    page = client.get(f"/console/issues/{issue_id}")
    assert page.status_code == 200
    assert "<img src=x" not in page.text and "&lt;img" in page.text
    assert "自动分派" in page.text  # the timeline

    done = client.post(f"/console/issues/{issue_id}/status",
                       data={"csrf_token": csrf, "status": "in_progress", "note": "电工已出发"})
    assert done.status_code == 303
    assert "已改为“处理中”" in client.get(done.headers["location"]).text
    with session_scope(yishi_env) as session:
        issue = session.get(Issue, issue_id)
        assert issue is not None and issue.status == "in_progress"
        events = session.exec(select(IssueEvent).where(IssueEvent.issue_id == issue_id)).all()
        notes = session.exec(
            select(OutboundMessage).where(OutboundMessage.user_id == "wechat_mp:oA")
        ).all()
    assert events[-1].kind == "status" and events[-1].note == "电工已出发"
    assert events[-1].actor_id == "web:s1"
    assert notes and "处理中" in notes[-1].text  # the reporter is told

    refused = client.post(f"/console/issues/{issue_id}/status",
                          data={"csrf_token": csrf, "status": "rejected"})
    assert "不受理需要写明原因" in client.get(refused.headers["location"]).text
    assert client.get("/console/issues/9999").status_code == 404

    assigned = client.post(f"/console/issues/{issue_id}/assign",
                           data={"csrf_token": csrf, "party": "街道城管科", "note": "转办"})
    assert assigned.status_code == 303
    with session_scope(yishi_env) as session:
        issue = session.get(Issue, issue_id)
        assert issue is not None and issue.responsible_party == "街道城管科"
    board = client.get("/console/issues", params={"party": "街道城管科"}).text
    assert _board_ids(board) == {issue_id} and '<option value="街道城管科" selected>' in board


def test_thread_summary_and_proposal_from_the_console(
    client: TestClient, yishi_env: Settings, make_token: Callable[..., str]
) -> None:
    with session_scope(yishi_env) as session:
        thread = threads.create_thread(
            session=session, actor=STAFF, title="停车收费调整", question="地面车位是否按月收费？",
            statements=["应当按月收费", "外来车辆应限时免费", "收费标准要公示"],
        )
        assert thread.id is not None
        thread_id = thread.id
        statements = threads.get_statements(session=session, thread_id=thread_id)
        for n in range(8):
            voter = Actor(user_id=f"wechat_mp:v{n}")
            for k, s in enumerate(statements):
                assert s.id is not None
                value = "agree" if k == 2 or (n + k) % 2 == 0 else "disagree"
                threads.vote(session=session, actor=voter, statement_id=s.id, value=value)
    csrf = login(client, make_token(Role.staff, "工作人员", "web:s1"))
    detail = client.get(f"/console/threads/{thread_id}")
    assert detail.status_code == 200 and "收费标准要公示" in detail.text
    assert re.search(r'<td class="num agree">8</td>', detail.text)  # s3: everyone agreed
    assert "停车收费调整" in client.get("/console/threads").text

    made = client.post(f"/console/threads/{thread_id}/summarise", data={"csrf_token": csrf})
    assert made.status_code == 303 and "/summary?id=" in made.headers["location"]
    summary = client.get(made.headers["location"])
    assert summary.status_code == 200
    assert "共识" in summary.text and "收费标准要公示" in summary.text
    assert f'href="/console/threads/{thread_id}#s' in summary.text  # cited ids link back

    summary_id = made.headers["location"].rsplit("=", 1)[1]
    drafted = client.post("/console/proposals", data={
        "csrf_token": csrf, "thread_id": str(thread_id), "summary_id": summary_id,
        "proposal_type": "consultation"})
    assert drafted.status_code == 303, drafted.text
    proposal_url = drafted.headers["location"]
    proposal_id = int(proposal_url.rsplit("/", 1)[1])
    page = client.get(proposal_url)
    assert page.status_code == 200 and "责任表" in page.text and "时间表" in page.text
    client.post(f"{proposal_url}/status", data={"csrf_token": csrf, "status": "voting"})
    client.post(f"{proposal_url}/notes", data={"csrf_token": csrf, "note": "已在公告栏公示"})
    with session_scope(yishi_env) as session:
        proposal = session.get(Proposal, proposal_id)
        assert proposal is not None and proposal.status == "voting"
    listing = client.get("/console/proposals", params={"status": "voting"}).text
    assert f'href="/console/proposals/{proposal_id}"' in listing
    voting = client.get(proposal_url).text
    assert "已在公告栏公示" in voting and "结束表决并计票" in voting and "参与人数" in voting
    assert "还没有人投票" in voting  # the warning stands before the close button
    refused = client.post(f"{proposal_url}/close", data={"csrf_token": csrf})
    assert "还没有人投票" in client.get(refused.headers["location"]).text
    with session_scope(yishi_env) as session:
        proposal = session.get(Proposal, proposal_id)
        assert proposal is not None and proposal.status == "voting"
    closed = client.post(f"{proposal_url}/close", data={"csrf_token": csrf, "confirm": "yes"})
    assert "表决已结束，结果：未通过" in client.get(closed.headers["location"]).text


def test_responsibility_list_is_editable_by_admins_only(
    client: TestClient, yishi_env: Settings, make_token: Callable[..., str]
) -> None:
    csrf = login(client, make_token(Role.staff, "工作人员", "web:s1"))
    page = client.get("/console/responsibility")
    assert page.status_code == 200 and "物业公司" in page.text
    assert 'action="/console/responsibility/repairs"' not in page.text
    denied = client.post("/console/responsibility/repairs", data={
        "csrf_token": csrf, "party": "维修班", "sla_hours": "12"})
    assert "此操作需要以下角色之一" in client.get(denied.headers["location"]).text

    client.cookies.clear()
    csrf = login(client, make_token(Role.admin, "管理员"))
    client.post("/console/responsibility/repairs", data={
        "csrf_token": csrf, "party": "维修班", "sla_hours": "12", "urgent_sla_hours": "2"})
    edited = client.get("/console/responsibility").text
    assert "维修班" in edited and "已调整" in edited
    bad = client.post("/console/responsibility/repairs", data={
        "csrf_token": csrf, "party": "维修班", "sla_hours": "-3"})
    assert "正整数" in client.get(bad.headers["location"]).text
    client.post("/console/responsibility/repairs/reset", data={"csrf_token": csrf})
    assert "维修班" not in client.get("/console/responsibility").text


def test_failed_messages_are_listed_for_staff(
    client: TestClient, yishi_env: Settings, make_token: Callable[..., str]
) -> None:
    with session_scope(yishi_env) as session:
        session.add(InboundMessage(dedupe_key="wechat_mp:1", channel="wechat_mp",
                                   user_id="wechat_mp:oX", sender="oX", content="电梯又坏了<b>",
                                   status=InboundStatus.failed, attempts=3, error="timeout"))
        session.add(InboundMessage(dedupe_key="wechat_mp:2", channel="wechat_mp",
                                   user_id="wechat_mp:oY", sender="oY", content="已经答复的消息",
                                   status=InboundStatus.replied))
        session.add(OutboundMessage(channel="wechat_mp", user_id="wechat_mp:oZ",
                                    text="您的问题已解决", status=OutboundStatus.failed,
                                    errcode=45015, last_error="response out of time limit"))
    login(client, make_token(Role.staff, "工作人员", "web:s1"))
    page = client.get("/console/failures")
    assert page.status_code == 200
    assert "电梯又坏了&lt;b&gt;" in page.text and "处理出错" in page.text
    assert "timeout" not in page.text  # raw error strings stay in the logs
    assert "已经答复的消息" not in page.text
    assert "45015" in page.text and "您的问题已解决" in page.text


def test_staff_open_a_thread_and_ask_for_a_summary_in_plain_words(
    client: TestClient, yishi_env: Settings, make_token: Callable[..., str]
) -> None:
    csrf = login(client, make_token(Role.staff, "工作人员", "web:s1"))
    opened = client.post("/console/threads", data={
        "csrf_token": csrf, "title": "停车收费调整", "question": "地面车位是否按月收费？",
        "statements": "应当按月收费\n\n外来车辆应限时免费\n"})
    assert opened.status_code == 303
    thread_id = int(opened.headers["location"].rsplit("/", 1)[1])
    with session_scope(yishi_env) as session:
        texts = [s.text for s in threads.get_statements(session=session, thread_id=thread_id)]
    assert texts == ["应当按月收费", "外来车辆应限时免费"]

    asked = client.post("/console/threads/summarise",
                        data={"csrf_token": csrf, "topic": "总结一下停车收费的讨论"})
    assert asked.status_code == 303
    assert asked.headers["location"].startswith(f"/console/threads/{thread_id}/summary?id=")
    assert "讨论总结：停车收费调整" in client.get(asked.headers["location"]).text
    empty = client.post("/console/threads/summarise", data={"csrf_token": csrf, "topic": " "})
    assert "请写下要总结的话题" in client.get(empty.headers["location"]).text
