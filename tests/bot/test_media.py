"""Photos and locations in reports: fetched through the media API, stored by hash, attached.

Messages come through the real Official Account route (plaintext mode) and the worker is driven
by hand; the photo is served by the local fake WeChat server's `media/get`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from tests.fakes.wechat_server import MEDIA_GET, CallbackSigner, FakeWeChatServer, text_xml
from yishi.bot import media, pipeline
from yishi.bot.channel_models import ReportMedia
from yishi.bot.channels import routes
from yishi.bot.models import InboundMessage
from yishi.core import jobs
from yishi.core.config import Settings, get_settings
from yishi.core.db import get_engine, init_db
from yishi.deliberation.models import Issue

TOKEN = "mp-token"
signer = CallbackSigner(token=TOKEN)
# The smallest real images: a JPEG's start-of-image marker and a PNG signature, then filler.
JPEG = b"\xff\xd8\xff\xe0" + b"photo-of-a-broken-lamp" * 20
PNG = b"\x89PNG\r\n\x1a\n" + b"another-photo" * 20


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
             wx: FakeWeChatServer) -> Iterator[Settings]:
    request.getfixturevalue("yishi_env" if request.param == "sqlite" else "pg_env")
    monkeypatch.setenv("YISHI_WECHAT_TOKEN", TOKEN)
    monkeypatch.setenv("YISHI_WECHAT_APP_ID", wx.app_id)
    monkeypatch.setenv("YISHI_WECHAT_APP_SECRET", wx.app_secret)
    monkeypatch.setenv("YISHI_WECHAT_API_BASE_URL", wx.base_url)
    monkeypatch.setenv("YISHI_MEDIA_MAX_BYTES", "2000")
    get_settings.cache_clear()
    pipeline.reset_caches()
    settings = get_settings()
    init_db(settings)
    jobs.configure(settings, immediate=False)
    yield settings


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    app = FastAPI()
    app.include_router(routes.router)
    app.state.settings = settings
    with TestClient(app) as c:
        yield c


_ids = iter(range(5000, 6000))


def _send(client: TestClient, settings: Settings, xml_body: str) -> str:
    """POST a callback, run the worker on it, and return the reply it produced."""
    q = signer.plain_query(int(time.time()))
    assert client.post("/wechat/mp", params=q, content=xml_body.encode()).status_code == 200
    with Session(get_engine(settings)) as session:
        row = session.exec(
            select(InboundMessage).order_by(col(InboundMessage.id).desc())
        ).first()
        assert row is not None and row.id is not None
        inbound_id = row.id
    pipeline.process_inbound(inbound_id)
    with Session(get_engine(settings)) as session:
        done = session.get(InboundMessage, inbound_id)
        assert done is not None
        return done.reply_text or ""


def _head(msg_type: str) -> str:
    return (
        "<xml><ToUserName><![CDATA[gh_account]]></ToUserName>"
        "<FromUserName><![CDATA[oResident]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[{msg_type}]]></MsgType>"
    )


def image_xml(media_id: str) -> str:
    return (
        _head("image") + "<PicUrl><![CDATA[http://mmbiz.qpic.cn/not-fetched]]></PicUrl>"
        f"<MediaId><![CDATA[{media_id}]]></MediaId><MsgId>{next(_ids)}</MsgId></xml>"
    )


def location_xml(label: str) -> str:
    return (
        _head("location") + "<Location_X>31.2304</Location_X><Location_Y>121.4737</Location_Y>"
        f"<Scale>15</Scale><Label><![CDATA[{label}]]></Label><MsgId>{next(_ids)}</MsgId></xml>"
    )


def report_xml(text: str) -> str:
    return text_xml(sender="oResident", content=text, msg_id=str(next(_ids)),
                    create_time=int(time.time()))


def _issues(settings: Settings) -> list[Issue]:
    with Session(get_engine(settings)) as session:
        return list(session.exec(select(Issue).order_by(col(Issue.id))).all())


REPORT = "3栋2单元楼道灯坏了一周了，晚上很黑"


def test_photo_after_a_report_lands_on_that_issue(
    client: TestClient, settings: Settings, wx: FakeWeChatServer
) -> None:
    _send(client, settings, report_xml(REPORT))
    [issue] = _issues(settings)
    wx.put_media("MEDIA1", JPEG)
    reply = _send(client, settings, image_xml("MEDIA1"))
    assert reply == media.PHOTO_ATTACHED.format(issue_id=issue.id)
    sha = hashlib.sha256(JPEG).hexdigest()
    [issue] = _issues(settings)
    assert issue.media == [f"{sha}.jpg"]
    stored = settings.data_dir / "media" / sha[:2] / f"{sha}.jpg"
    assert stored.read_bytes() == JPEG
    assert len(wx.calls(MEDIA_GET + ":ok")) == 1  # through the API with a token, never the PicUrl


def test_photo_before_a_report_waits_and_joins_the_next_report(
    client: TestClient, settings: Settings, wx: FakeWeChatServer
) -> None:
    wx.put_media("MEDIA2", PNG, "image/png")
    assert _send(client, settings, image_xml("MEDIA2")) == media.PHOTO_HELD
    assert _issues(settings) == []
    reply = _send(client, settings, report_xml(REPORT))
    [issue] = _issues(settings)
    assert issue.media == [f"{hashlib.sha256(PNG).hexdigest()}.png"]
    assert "照片1张" in reply


def test_photo_from_long_ago_does_not_join_a_new_report(
    client: TestClient, settings: Settings, wx: FakeWeChatServer
) -> None:
    wx.put_media("MEDIA3", JPEG)
    _send(client, settings, image_xml("MEDIA3"))
    with Session(get_engine(settings)) as session:  # sent an hour before the report
        [item] = session.exec(select(ReportMedia)).all()
        item.created_at = item.created_at - timedelta(hours=1)
        session.add(item)
        session.commit()
    _send(client, settings, report_xml(REPORT))
    [issue] = _issues(settings)
    assert issue.media == []


def test_location_pin_answers_where_and_records_the_report(
    client: TestClient, settings: Settings, wx: FakeWeChatServer
) -> None:
    asked = _send(client, settings, report_xml("路灯坏了好几天了，晚上看不见路"))
    assert _issues(settings) == [] and asked  # the assistant asks where it is
    reply = _send(client, settings, location_xml("幸福里小区北门"))
    [issue] = _issues(settings)
    assert issue.location == "幸福里小区北门"
    assert f"编号 {issue.id}" in reply and "幸福里小区北门" in reply
    with Session(get_engine(settings)) as session:
        [item] = session.exec(select(ReportMedia)).all()
        assert item.issue_id == issue.id and item.latitude == pytest.approx(31.2304)


def test_location_after_a_report_keeps_its_place_and_is_noted(
    client: TestClient, settings: Settings, wx: FakeWeChatServer
) -> None:
    _send(client, settings, report_xml(REPORT))
    [issue] = _issues(settings)
    reply = _send(client, settings, location_xml("幸福里小区北门"))
    assert reply.startswith("位置已收到") and f"编号 {issue.id}" in reply
    [after] = _issues(settings)
    assert after.location == issue.location  # the place the resident typed stays


def test_wrong_type_and_oversize_photos_are_refused_with_a_reason(
    client: TestClient, settings: Settings, wx: FakeWeChatServer
) -> None:
    wx.put_media("GIF", b"GIF89a" + b"x" * 100, "image/jpeg")  # the header lies; bytes do not
    assert "JPG" in _send(client, settings, image_xml("GIF"))
    wx.put_media("BIG", b"\xff\xd8\xff" + b"x" * 5000)
    assert "MB" in _send(client, settings, image_xml("BIG"))
    wx.put_media("PDF", b"%PDF-1.4", "application/pdf")
    assert "JPG" in _send(client, settings, image_xml("PDF"))
    assert "稍后" in _send(client, settings, image_xml("MISSING"))  # WeChat says 40007
    assert not (settings.data_dir / "media").exists()


def test_other_types_get_a_clear_answer(client: TestClient, settings: Settings) -> None:
    video = _head("video") + f"<MediaId>v</MediaId><MsgId>{next(_ids)}</MsgId></xml>"
    assert _send(client, settings, video) == media.notice_for_type("video")
    link = _head("link") + f"<Title>t</Title><Url>http://x</Url><MsgId>{next(_ids)}</MsgId></xml>"
    reply = _send(client, settings, link)
    assert "链接" in reply and "文字" in reply
