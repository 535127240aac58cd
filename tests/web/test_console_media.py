"""The console shows a report's photos to signed-in staff only, and only that report's photos."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from yishi.bot import media
from yishi.core.auth import Actor
from yishi.core.config import Settings
from yishi.core.db import session_scope
from yishi.core.models import Role
from yishi.deliberation import issues
from yishi.deliberation.models import Issue

from .conftest import login

JPEG = b"\xff\xd8\xff\xe0" + b"lamp" * 50
OTHER = b"\x89PNG\r\n\x1a\n" + b"other" * 50


def _issue_with_photo(settings: Settings) -> tuple[int, str, str]:
    sha, content_type = media.store_photo(settings=settings, data=JPEG)
    other_sha, other_type = media.store_photo(settings=settings, data=OTHER)
    with session_scope(settings) as session:
        recorded = issues.record_issue(
            session=session, actor=Actor(user_id="wechat_mp:oA"), text="3栋2单元楼道灯坏了"
        )
        issue = session.get(Issue, recorded.issue.id)
        assert issue is not None and issue.id is not None
        issue.media = [media.media_key(sha, content_type)]
        session.add(issue)
        return issue.id, media.media_key(sha, content_type), media.media_key(other_sha, other_type)


def test_staff_see_the_photo_on_the_issue_page(
    client: TestClient, yishi_env: Settings, make_token: Callable[..., str]
) -> None:
    issue_id, key, other = _issue_with_photo(yishi_env)
    url = f"/console/issues/{issue_id}/photos/{key}"
    assert client.get(url).status_code in (303, 401)  # not signed in: no photo
    login(client, make_token(Role.staff, "工作人员", "web:s1"))
    page = client.get(f"/console/issues/{issue_id}")
    assert page.status_code == 200 and f'src="{url}"' in page.text
    photo = client.get(url)
    assert photo.status_code == 200 and photo.content == JPEG
    assert photo.headers["content-type"] == "image/jpeg"
    # a stored photo of another report is not served through this issue
    assert client.get(f"/console/issues/{issue_id}/photos/{other}").status_code == 404
    assert client.get(f"/console/issues/{issue_id}/photos/..%2F..%2Fyishi.db").status_code == 404


def test_a_moderator_without_the_staff_role_gets_no_photo(
    client: TestClient, yishi_env: Settings, make_token: Callable[..., str]
) -> None:
    issue_id, key, _ = _issue_with_photo(yishi_env)
    login(client, make_token(Role.moderator, "版主", "web:m1"))
    response = client.get(f"/console/issues/{issue_id}/photos/{key}")
    assert response.status_code in (303, 403)
    assert response.content != JPEG
