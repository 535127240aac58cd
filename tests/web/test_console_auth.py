"""Console login, logout, role checks and CSRF, through the real app."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from fastapi.testclient import TestClient
from pydantic import SecretStr

from yishi.api import create_app
from yishi.core.config import Settings
from yishi.core.models import Role

from .conftest import csrf_from, login


def _is_login_redirect(response: object, reason: str) -> bool:
    status = getattr(response, "status_code", 0)
    location = getattr(response, "headers", {}).get("location", "")
    parts = urlsplit(location)
    return status == 303 and parts.path == "/console/login" and \
        parse_qs(parts.query).get("reason") == [reason]


def test_login_sets_a_strict_httponly_cookie_and_logout_clears_it(
    client: TestClient, make_token: Callable[..., str]
) -> None:
    anonymous = client.get("/console/moderation")
    assert _is_login_redirect(anonymous, "login")
    assert parse_qs(urlsplit(anonymous.headers["location"]).query)["next"] == [
        "/console/moderation"
    ]

    page = client.get("/console/login")
    csrf_cookie = page.headers["set-cookie"]
    assert "yishi_csrf=" in csrf_cookie and "HttpOnly" in csrf_cookie
    assert "samesite=strict" in csrf_cookie.lower()
    csrf = csrf_from(page.text)

    wrong = client.post("/console/login", data={"token": "ys_nope", "csrf_token": csrf})
    assert wrong.status_code == 303 and "yishi_console" not in client.cookies
    assert "令牌无效" in client.get(wrong.headers["location"]).text

    token = make_token(Role.moderator, "审核员小李", "web:m1")
    ok = client.post(
        "/console/login",
        data={"token": token, "csrf_token": csrf, "next": "/console/moderation/audit"},
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/console/moderation/audit"
    auth_cookie = next(c for c in ok.headers.get_list("set-cookie") if "yishi_console=" in c)
    assert "HttpOnly" in auth_cookie and "samesite=strict" in auth_cookie.lower()
    assert "Path=/console" in auth_cookie

    queue = client.get("/console/moderation")
    assert queue.status_code == 200 and "审核员小李" in queue.text
    assert queue.headers["cache-control"] == "no-store"

    csrf = client.cookies["yishi_csrf"]
    out = client.post("/console/logout", data={"csrf_token": csrf})
    assert out.status_code == 303
    assert "yishi_console" not in client.cookies
    assert _is_login_redirect(client.get("/console/moderation"), "login")


def test_login_refuses_residents_and_open_redirects(
    client: TestClient, make_token: Callable[..., str]
) -> None:
    csrf = csrf_from(client.get("/console/login").text)
    resident = make_token(Role.resident, "居民", "web:r1")
    refused = client.post("/console/login", data={"token": resident, "csrf_token": csrf})
    assert refused.status_code == 303 and "yishi_console" not in client.cookies
    assert "居民账号不能登录管理台" in client.get(refused.headers["location"]).text

    staff = make_token(Role.staff, "工作人员", "web:s1")
    evil = client.post(
        "/console/login",
        data={"token": staff, "csrf_token": csrf, "next": "//evil.example/console"},
    )
    assert evil.headers["location"] == "/console"
    assert client.get("/console").headers["location"] == "/console/issues"


def test_each_page_needs_the_right_role(
    client: TestClient, make_token: Callable[..., str]
) -> None:
    # A bearer token pasted into the cookie by hand is not a console session at all.
    client.cookies.set("yishi_console", make_token(Role.resident), path="/console")
    assert _is_login_redirect(client.get("/console/moderation"), "expired")
    assert _is_login_redirect(client.get("/console/issues"), "expired")

    client.cookies.clear()
    login(client, make_token(Role.moderator, "审核员", "web:m1"))
    assert client.get("/console/moderation").status_code == 200
    assert client.get("/console/moderation/audit").status_code == 200
    for staff_page in ("/console/issues", "/console/threads", "/console/proposals",
                       "/console/responsibility", "/console/failures"):
        assert _is_login_redirect(client.get(staff_page), "role"), staff_page

    client.cookies.clear()
    login(client, make_token(Role.staff, "工作人员", "web:s1"))
    assert client.get("/console/issues").status_code == 200
    for moderator_page in ("/console/moderation", "/console/moderation/appeals",
                           "/console/moderation/mutes", "/console/moderation/audit"):
        assert _is_login_redirect(client.get(moderator_page), "role"), moderator_page

    client.cookies.clear()
    login(client, make_token(Role.admin, "管理员"))
    assert client.get("/console/moderation").status_code == 200
    assert client.get("/console/issues").status_code == 200


def test_revoked_or_unknown_tokens_are_sent_to_login(client: TestClient) -> None:
    client.cookies.set("yishi_console", "ys_not-a-real-token", path="/console")
    assert _is_login_redirect(client.get("/console/issues"), "expired")


def test_posts_without_a_matching_csrf_token_are_refused(
    client: TestClient, make_token: Callable[..., str]
) -> None:
    page = client.get("/console/login")
    token = make_token(Role.staff, "工作人员", "web:s1")
    no_field = client.post("/console/login", data={"token": token})
    assert no_field.status_code == 403 and "安全校验" in no_field.text
    assert "yishi_console" not in client.cookies
    forged = client.post("/console/login", data={"token": token, "csrf_token": "x" * 43})
    assert forged.status_code == 403
    assert csrf_from(page.text)  # the real value still works
    login(client, token)
    client.cookies.delete("yishi_csrf", path="/console")
    missing_cookie = client.post("/console/logout", data={"csrf_token": csrf_from(page.text)})
    assert missing_cookie.status_code == 403
    assert client.get("/console/issues").status_code == 200  # still signed in


def test_static_assets_are_served_locally(client: TestClient) -> None:
    css = client.get("/console/static/console.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "http" not in css.text  # no remote assets
    assert client.get("/console/static/console.js").status_code == 200


def test_the_bootstrap_admin_token_signs_in(yishi_env: Settings, migrated_db: Path) -> None:
    yishi_env.ensure_data_dir()
    shutil.copyfile(migrated_db, yishi_env.data_dir / "yishi.db")
    settings = yishi_env.model_copy(update={"admin_token": SecretStr("boot-" + "x" * 30)})
    app = create_app(settings, run_worker=False, warm_knowledge=False)
    with TestClient(app, follow_redirects=False) as c:
        login(c, "boot-" + "x" * 30)
        assert c.get("/console/responsibility").status_code == 200
        assert c.get("/console/moderation/audit").status_code == 200
