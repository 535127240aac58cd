"""People and papers in the console: users and roles, names instead of ids, audited phone views,
hand-off replies through the resident's channel, the owners' roster, statements, merging issues,
and a Chinese 404."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlmodel import select

from yishi.bot import memory
from yishi.bot.models import OutboundMessage
from yishi.core import auth as auth_service
from yishi.core.auth import Actor
from yishi.core.config import Settings
from yishi.core.db import session_scope
from yishi.core.models import ApiToken, Role, User
from yishi.deliberation import issues, threads
from yishi.deliberation.models import Issue, IssueSupporter, OwnerUnit, Statement
from yishi.moderation.models import ModerationDecision

from .conftest import login, visible

STAFF = Actor(user_id="web:s1", role=Role.staff)


def _resident(settings: Settings, external_id: str, name: str, unit: str, phone: str) -> None:
    with session_scope(settings) as session:
        user = auth_service.create(session=session, name=name, role=Role.resident,
                                   external_id=external_id)
        assert user.id is not None
        auth_service.update_profile(session=session, user_id=user.id, unit=unit, phone=phone)


def test_admin_manages_users_roles_and_tokens(
    client: TestClient, yishi_env: Settings, make_token: Callable[..., str]
) -> None:
    csrf = login(client, make_token(Role.admin, "李主任"))
    page = client.get("/console/users")
    assert page.status_code == 200 and "用户与角色" in page.text
    client.post("/console/users", data={"csrf_token": csrf, "name": "王审核", "role": "moderator",
                                        "unit": "", "phone": "13912345678"})
    with session_scope(yishi_env) as session:
        user = session.exec(select(User).where(User.name == "王审核")).one()
        uid = user.id
    listing = client.get("/console/users").text
    assert "王审核" in listing and "139****5678" in listing and "13912345678" not in listing
    client.post(f"/console/users/{uid}", data={"csrf_token": csrf, "name": "王审核",
                                               "role": "staff", "unit": "1栋101", "phone": ""})
    issued = client.post(f"/console/users/{uid}/token", data={"csrf_token": csrf})
    assert issued.status_code == 200 and "只显示这一次" in issued.text
    token = issued.text.split('<p class="message token">', 1)[1].split("<", 1)[0].strip()
    with session_scope(yishi_env) as session:
        saved = session.get(User, uid)
        assert saved is not None and saved.role == Role.staff and saved.unit == "1栋101"
        assert saved.phone == "13912345678"  # an empty field keeps the number
        assert auth_service.authenticate(session=session, token=token).id == uid
    client.post(f"/console/users/{uid}/revoke", data={"csrf_token": csrf})
    client.post(f"/console/users/{uid}/active", data={"csrf_token": csrf, "active": "no"})
    with session_scope(yishi_env) as session:
        assert all(t.revoked for t in session.exec(select(ApiToken).where(ApiToken.user_id == uid)))
        stopped = session.get(User, uid)
        assert stopped is not None and not stopped.active


def test_staff_cannot_open_the_users_page(
    client: TestClient, make_token: Callable[..., str]
) -> None:
    login(client, make_token(Role.staff, "工作人员"))
    assert client.get("/console/users").status_code == 303


def test_issue_shows_the_reporter_by_name_and_phone_views_are_audited(
    client: TestClient, yishi_env: Settings, make_token: Callable[..., str]
) -> None:
    _resident(yishi_env, "wechat_mp:oWANG", "王阿姨", "3栋2单元501", "13900001111")
    with session_scope(yishi_env) as session:
        issue = issues.record_issue(session=session, actor=Actor(user_id="wechat_mp:oWANG"),
                                    text="3栋2单元楼道灯坏了", category="repairs").issue
        unknown = issues.record_issue(session=session, actor=Actor(user_id="wechat_mp:oNEW"),
                                      text="5栋门禁坏了", category="repairs").issue
    csrf = login(client, make_token(Role.staff, "张工", "web:s1"))
    page = visible(client.get(f"/console/issues/{issue.id}").text)
    assert "王阿姨（3栋2单元501）" in page and "oWANG" not in page
    assert "139****1111" in page and "13900001111" not in page
    other = visible(client.get(f"/console/issues/{unknown.id}").text)
    assert "公众号居民（未登记" in other and "oNEW" not in other
    shown = client.post("/console/people/phone", data={
        "csrf_token": csrf, "person": "wechat_mp:oWANG", "next": f"/console/issues/{issue.id}"})
    assert shown.status_code == 200 and "13900001111" in shown.text
    with session_scope(yishi_env) as session:
        views = session.exec(select(ModerationDecision).where(
            ModerationDecision.action == "view_phone")).all()
    assert len(views) == 1 and views[0].actor_id == "web:s1"
    assert views[0].details["user_id"] == "wechat_mp:oWANG"


def test_moderators_do_not_see_phone_numbers(
    client: TestClient, yishi_env: Settings, make_token: Callable[..., str]
) -> None:
    _resident(yishi_env, "wechat_mp:oLI", "李伯", "2栋101", "13800002222")
    csrf = login(client, make_token(Role.moderator, "审核员"))
    refused = client.post("/console/people/phone", data={"csrf_token": csrf,
                                                          "person": "wechat_mp:oLI"})
    assert refused.status_code == 303 and "login" in refused.headers["location"]


def test_staff_reply_to_a_handoff_reaches_the_resident_channel(
    client: TestClient, yishi_env: Settings, make_token: Callable[..., str]
) -> None:
    _resident(yishi_env, "wechat_mp:oZHAO", "赵先生", "6栋302", "13700003333")
    with session_scope(yishi_env) as session:
        handoff = memory.record_handoff(session=session, user_id="wechat_mp:oZHAO",
                                        channel="wechat_mp", reason="居民要求转人工",
                                        text="我想找人问问装修押金")
    csrf = login(client, make_token(Role.staff, "张工", "web:s1"))
    page = visible(client.get("/console/failures").text)
    assert "赵先生（6栋302）" in page and "回复居民" in page and "oZHAO" not in page
    sent = client.post(f"/console/handoffs/{handoff.id}/reply", data={
        "csrf_token": csrf, "text": "装修押金在物业前台办理，明天上午我给您打电话。",
        "resolve": "yes"})
    assert sent.status_code == 303
    with session_scope(yishi_env) as session:
        out = session.exec(select(OutboundMessage).where(
            OutboundMessage.user_id == "wechat_mp:oZHAO")).one()
        assert out.channel == "wechat_mp" and "装修押金在物业前台办理" in out.text
        assert "张工" in out.text
        assert memory.get_open_handoffs(session=session) == []


def test_roster_import_records_owners_and_rejects_bad_rows(
    client: TestClient, yishi_env: Settings, make_token: Callable[..., str]
) -> None:
    csrf = login(client, make_token(Role.staff, "张工"))
    data = "房号,姓名,面积,电话\n1-101,陈业主,88.5,13600004444\n1-102,林业主,abc,\n".encode()
    done = client.post("/console/owners/import", data={"csrf_token": csrf},
                       files={"file": ("名册.csv", data, "text/csv")})
    assert done.status_code == 200
    assert "新增 1 位" in done.text and "第 3 行：面积不是数字" in done.text
    assert "陈业主（1-101）" in done.text
    with session_scope(yishi_env) as session:
        unit = session.exec(select(OwnerUnit)).one()
        assert unit.unit == "1-101" and unit.area_m2 == 88.5
    missing = client.post("/console/owners/import", data={"csrf_token": csrf},
                          files={"file": ("x.csv", "姓名\n张三\n".encode(), "text/csv")})
    assert "缺少列" in client.get(missing.headers["location"]).text


def test_statements_are_added_and_hidden_with_a_reason(
    client: TestClient, yishi_env: Settings, make_token: Callable[..., str]
) -> None:
    with session_scope(yishi_env) as session:
        thread = threads.create_thread(session=session, actor=STAFF, title="停车",
                                       question="访客车位怎么管？", statements=["访客车位收费"])
    csrf = login(client, make_token(Role.staff, "张工", "web:s1"))
    client.post(f"/console/threads/{thread.id}/statements",
                data={"csrf_token": csrf, "text": "访客停车限时两小时"})
    with session_scope(yishi_env) as session:
        added = session.exec(select(Statement).where(Statement.text == "访客停车限时两小时")).one()
    no_reason = client.post(f"/console/statements/{added.id}/hide", data={"csrf_token": csrf})
    assert "请写明隐藏的原因" in client.get(no_reason.headers["location"]).text
    client.post(f"/console/statements/{added.id}/hide",
                data={"csrf_token": csrf, "reason": "与已有观点重复"})
    with session_scope(yishi_env) as session:
        row = session.get(Statement, added.id)
        assert row is not None and not row.visible and row.hidden_reason == "与已有观点重复"
    page = client.get(f"/console/threads/{thread.id}").text
    assert "隐藏原因：与已有观点重复" in page


def test_merging_duplicates_joins_supporters_and_timelines(
    client: TestClient, yishi_env: Settings, make_token: Callable[..., str]
) -> None:
    with session_scope(yishi_env) as session:
        first = issues.record_issue(session=session, actor=Actor(user_id="wechat_mp:oA"),
                                    text="3栋电梯停了", category="repairs").issue
        second = issues.record_issue(session=session, actor=Actor(user_id="wechat_mp:oB"),
                                     text="东门岗亭旁边的电梯不动了",
                                     category="other", location="东门岗亭").issue
        assert first.id != second.id
    csrf = login(client, make_token(Role.staff, "张工", "web:s1"))
    merged = client.post(f"/console/issues/{second.id}/merge",
                         data={"csrf_token": csrf, "into": str(first.id)})
    assert merged.headers["location"] == f"/console/issues/{first.id}"
    with session_scope(yishi_env) as session:
        dup = session.get(Issue, second.id)
        target = session.get(Issue, first.id)
        assert dup is not None and dup.status == "closed" and dup.merged_into_id == first.id
        assert target is not None and target.supporter_count == 1
        supporters = session.exec(select(IssueSupporter).where(
            IssueSupporter.issue_id == first.id)).all()
        assert [s.user_id for s in supporters] == ["wechat_mp:oB"]
    page = client.get(f"/console/issues/{first.id}").text
    assert f"原问题 #{second.id}" in page
    again = client.post(f"/console/issues/{second.id}/merge",
                        data={"csrf_token": csrf, "into": str(first.id)})
    assert client.get(again.headers["location"]).status_code == 200


def test_unknown_console_paths_get_a_chinese_page_and_the_site_has_an_icon(
    client: TestClient, make_token: Callable[..., str]
) -> None:
    login(client, make_token(Role.staff, "张工"))
    missing = client.get("/console/nothing-here")
    assert missing.status_code == 404 and "没有这个页面" in missing.text
    assert missing.headers["content-type"].startswith("text/html")
    icon = client.get("/favicon.svg")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg")
    assert 'rel="icon"' in client.get("/console/issues").text


def test_api_docs_use_only_local_assets(client: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        assert "cdn." not in html and "https://" not in html.split("<body", 1)[-1].split(
            "openapi", 1)[0]
        for src in re.findall(r'(?:src|href)="([^"]+)"', html):
            assert src.startswith("/"), src
            assert client.get(src).status_code in (200, 301), src
