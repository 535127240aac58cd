"""Official Account webhook: URL check, plaintext / compatible / safe modes, bad input, passive."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import xmltodict
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select
from wechatpy.crypto import WeChatCrypto

from tests.fakes.wechat_server import CallbackSigner, text_xml
from yishi.bot import pipeline
from yishi.bot.channels import routes
from yishi.bot.channels.crypto import sha1_signature
from yishi.bot.models import InboundMessage
from yishi.core.clock import set_clock
from yishi.core.config import Settings
from yishi.core.db import create_all, get_engine

TOKEN = "mp-token-for-tests"
AES_KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
PREVIOUS_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APP_ID = "wx49f0ab532d5d035a"


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path,
        "database_url": f"sqlite:///{tmp_path / 'yishi.db'}",
        "wechat_token": TOKEN,
        "wechat_aes_key": AES_KEY,
        "wechat_aes_key_previous": PREVIOUS_KEY,
        "wechat_app_id": APP_ID,
        "wechat_message_mode": "compatible",  # these tests post plaintext and encrypted bodies
        "redis_url": None,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def make_client(settings: Settings) -> TestClient:
    create_all(get_engine(settings))
    app = FastAPI()
    app.include_router(routes.router)
    app.state.settings = settings
    return TestClient(app)


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    if database_url:
        return make_settings(tmp_path, database_url=database_url)
    return make_settings(tmp_path)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with make_client(settings) as c:
        yield c


def stored(settings: Settings) -> list[InboundMessage]:
    with Session(get_engine(settings)) as session:
        return list(session.exec(select(InboundMessage).order_by(col(InboundMessage.id))).all())


signer = CallbackSigner(token=TOKEN, aes_key=AES_KEY, receive_id=APP_ID)


def now() -> int:
    return int(time.time())


# ---------------------------------------------------------------- GET URL check


def test_url_check_echoes_echostr(client: TestClient) -> None:
    q = signer.plain_query(now()) | {"echostr": "8817282"}
    r = client.get("/wechat/mp", params=q)
    assert r.status_code == 200
    assert r.text == "8817282"


def test_url_check_wrong_signature_is_403(client: TestClient) -> None:
    q = signer.plain_query(now()) | {"echostr": "8817282"}
    q["nonce"] = "other"
    r = client.get("/wechat/mp", params=q)
    assert r.status_code == 403
    assert "8817282" not in r.text


def test_url_check_stale_timestamp_is_403(client: TestClient) -> None:
    q = signer.plain_query(now() - 301) | {"echostr": "1"}
    assert client.get("/wechat/mp", params=q).status_code == 403


# ---------------------------------------------------------------- POST: the three modes


def test_plaintext_text_is_stored_once_across_retries(
    client: TestClient, settings: Settings
) -> None:
    body = text_xml(content="加装电梯需要多少业主同意？", msg_id="42", create_time=now())
    for _ in range(3):  # WeChat's retries
        r = client.post("/wechat/mp", params=signer.plain_query(now()), content=body)
        assert r.status_code == 200
        assert r.text == "success"
    rows = stored(settings)
    assert len(rows) == 1
    assert rows[0].content == "加装电梯需要多少业主同意？"
    assert rows[0].channel == "wechat_mp"
    assert rows[0].user_id == "wechat_mp:oUser1"
    assert rows[0].dedupe_key == "wechat_mp:msg:42"


def test_safe_mode_message_is_decrypted_and_stored(client: TestClient, settings: Settings) -> None:
    query, body = signer.encrypted(text_xml(content="3栋楼道灯坏了", msg_id="7"), now())
    r = client.post("/wechat/mp", params=query, content=body)
    assert r.status_code == 200 and r.text == "success"
    assert [m.content for m in stored(settings)] == ["3栋楼道灯坏了"]


def test_compatible_mode_uses_the_encrypted_part(client: TestClient, settings: Settings) -> None:
    query, envelope = signer.encrypted(text_xml(content="真实内容", msg_id="8"), now())
    encrypt = xmltodict.parse(envelope)["xml"]["Encrypt"]
    # Compatible mode carries the plaintext fields too; only the signed, encrypted part counts.
    body = text_xml(content="明文部分", msg_id="8").replace(
        "</xml>", f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    )
    r = client.post("/wechat/mp", params=query, content=body)
    assert r.status_code == 200
    assert [m.content for m in stored(settings)] == ["真实内容"]


def test_previous_aes_key_is_accepted_during_rotation(
    client: TestClient, settings: Settings
) -> None:
    old = CallbackSigner(token=TOKEN, aes_key=PREVIOUS_KEY, receive_id=APP_ID)
    query, body = old.encrypted(text_xml(content="旧密钥", msg_id="9"), now())
    assert client.post("/wechat/mp", params=query, content=body).status_code == 200
    assert [m.content for m in stored(settings)] == ["旧密钥"]


def test_unknown_aes_key_is_refused(client: TestClient, settings: Settings) -> None:
    other = CallbackSigner(token=TOKEN, aes_key="Z" * 42 + "A", receive_id=APP_ID)
    query, body = other.encrypted(text_xml(msg_id="10"), now())
    assert client.post("/wechat/mp", params=query, content=body).status_code in (400, 403)
    assert stored(settings) == []


def test_voice_event_and_other_types_reach_the_pipeline(
    client: TestClient, settings: Settings
) -> None:
    t = now()
    voice = (
        "<xml><ToUserName>gh</ToUserName><FromUserName>oOld</FromUserName>"
        f"<CreateTime>{t}</CreateTime><MsgType>voice</MsgType><MediaId>m</MediaId>"
        "<Format>amr</Format><Recognition>我的报修到哪一步了</Recognition><MsgId>11</MsgId></xml>"
    )
    subscribe = (
        "<xml><ToUserName>gh</ToUserName><FromUserName>oNew</FromUserName>"
        f"<CreateTime>{t}</CreateTime><MsgType>event</MsgType><Event>subscribe</Event></xml>"
    )
    image = (
        "<xml><ToUserName>gh</ToUserName><FromUserName>oImg</FromUserName>"
        f"<CreateTime>{t}</CreateTime><MsgType>image</MsgType><PicUrl>http://x/y</PicUrl>"
        "<MediaId>m</MediaId><MsgId>12</MsgId></xml>"
    )
    for xml in (voice, subscribe, image):
        query, body = signer.encrypted(xml, t)
        assert client.post("/wechat/mp", params=query, content=body).status_code == 200
    rows = {m.sender: m for m in stored(settings)}
    assert rows["oOld"].msg_type == "voice" and rows["oOld"].content == "我的报修到哪一步了"
    assert rows["oNew"].msg_type == "event" and rows["oNew"].event == "subscribe"
    assert rows["oImg"].msg_type == "image"


# ---------------------------------------------------------------- bad input


def test_missing_or_wrong_signature_is_403_and_nothing_stored(
    client: TestClient, settings: Settings
) -> None:
    body = text_xml(msg_id="20")
    assert client.post("/wechat/mp", content=body).status_code == 403
    q = signer.plain_query(now())
    q["signature"] = "0" * 40
    assert client.post("/wechat/mp", params=q, content=body).status_code == 403
    query, enc = signer.encrypted(text_xml(msg_id="21"), now())
    assert client.post("/wechat/mp", params=query | {"msg_signature": "f" * 40},
                       content=enc).status_code == 403
    del query["msg_signature"]
    assert client.post("/wechat/mp", params=query, content=enc).status_code == 403
    assert stored(settings) == []


def test_stale_timestamp_is_403(client: TestClient, settings: Settings) -> None:
    query, body = signer.encrypted(text_xml(msg_id="22"), now() - 600)
    assert client.post("/wechat/mp", params=query, content=body).status_code == 403
    plain_q = signer.plain_query(now() + 600)
    assert client.post("/wechat/mp", params=plain_q, content=text_xml()).status_code == 403
    assert stored(settings) == []


XXE = (
    '<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    "<xml><ToUserName>gh</ToUserName><FromUserName>o1</FromUserName><MsgType>text</MsgType>"
    "<Content>&xxe;</Content><MsgId>30</MsgId></xml>"
)
LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY a "aaaaaaaaaa">'
    '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
    "<xml><FromUserName>o1</FromUserName><MsgType>text</MsgType><Content>&c;</Content></xml>"
)


@pytest.mark.parametrize("payload", [XXE, LAUGHS, "<xml><Content>oops", "not xml at all"])
def test_unsafe_or_malformed_xml_is_400_and_nothing_stored(
    client: TestClient, settings: Settings, payload: str
) -> None:
    plain = client.post("/wechat/mp", params=signer.plain_query(now()), content=payload)
    assert plain.status_code == 400
    query, body = signer.encrypted(payload, now())
    assert client.post("/wechat/mp", params=query, content=body).status_code == 400
    assert stored(settings) == []


def test_doctype_in_the_envelope_is_400(client: TestClient, settings: Settings) -> None:
    query, body = signer.encrypted(text_xml(msg_id="31"), now())
    evil = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "1">]>' + body
    assert client.post("/wechat/mp", params=query, content=evil).status_code == 400
    assert stored(settings) == []


def test_body_over_64_kib_is_413(client: TestClient, settings: Settings) -> None:
    big = text_xml(content="长" * 30000, msg_id="40")  # ~90 KB of UTF-8
    r = client.post("/wechat/mp", params=signer.plain_query(now()), content=big)
    assert r.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: refused while streaming
        for _ in range(100):
            yield b"x" * 4096

    r = client.post("/wechat/mp", params=signer.plain_query(now()), content=chunks())
    assert r.status_code == 413
    assert stored(settings) == []


def test_unconfigured_channel_is_404(tmp_path: Path) -> None:
    with make_client(make_settings(tmp_path, wechat_token=None)) as c:
        assert c.post("/wechat/mp", content=text_xml()).status_code == 404


# ---------------------------------------------------------------- passive replies


def test_passive_reply_is_encrypted_in_safe_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path, wechat_reply_mode="passive")
    seen: dict[str, object] = {}

    async def fake_passive_reply(*, inbound_id: int, sender: str, wait_s: float) -> str | None:
        seen.update(inbound_id=inbound_id, sender=sender, wait_s=wait_s)
        return "您好，已收到"

    monkeypatch.setattr(pipeline, "passive_reply", fake_passive_reply)
    with make_client(settings) as c:
        query, body = signer.encrypted(text_xml(sender="oP", to="gh_me", msg_id="50"), now())
        r = c.post("/wechat/mp", params=query, content=body)
    assert r.status_code == 200
    assert seen["sender"] == "oP" and seen["wait_s"] == 4.5
    assert seen["inbound_id"] == stored(settings)[0].id
    envelope = xmltodict.parse(r.text)["xml"]
    plain = WeChatCrypto(TOKEN, AES_KEY, APP_ID).decrypt_message(
        r.text, envelope["MsgSignature"], envelope["TimeStamp"], query["nonce"]
    )
    reply = xmltodict.parse(plain)["xml"]
    assert reply["Content"] == "您好，已收到"
    assert reply["ToUserName"] == "oP" and reply["FromUserName"] == "gh_me"


def test_passive_reply_plaintext_and_success_when_not_ready(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path, wechat_reply_mode="passive")
    answers = iter(["明文回复", None])

    async def fake_passive_reply(*, inbound_id: int, sender: str, wait_s: float) -> str | None:
        return next(answers)

    monkeypatch.setattr(pipeline, "passive_reply", fake_passive_reply)
    with make_client(settings) as c:
        r1 = c.post("/wechat/mp", params=signer.plain_query(now()), content=text_xml(msg_id="51"))
        r2 = c.post("/wechat/mp", params=signer.plain_query(now()), content=text_xml(msg_id="52"))
    assert xmltodict.parse(r1.text)["xml"]["Content"] == "明文回复"
    assert r2.text == "success"


# ---------------------------------------------------------------- wechatpy's vectors, via MP


@pytest.fixture
def vector_client(tmp_path: Path) -> Iterator[TestClient]:
    settings = make_settings(tmp_path, wechat_token="123456", wechat_aes_key_previous=None)
    with make_client(settings) as c:
        yield c
    set_clock(None)


def test_wechatpy_decrypt_vector_through_mp_webhook(vector_client: TestClient) -> None:
    from tests.bot.test_crypto import (
        DECRYPT_NONCE,
        DECRYPT_SIGNATURE,
        DECRYPT_TIMESTAMP,
        DECRYPT_XML,
    )

    set_clock(lambda: 1411525903.0 + 10)
    q = {"encrypt_type": "aes", "msg_signature": DECRYPT_SIGNATURE,
         "timestamp": DECRYPT_TIMESTAMP, "nonce": DECRYPT_NONCE}
    r = vector_client.post("/wechat/mp", params=q, content=DECRYPT_XML)
    assert r.status_code == 200 and r.text == "success"
    rows = stored(vector_client.app.state.settings)  # type: ignore[attr-defined]
    assert [(m.sender, m.content, m.msg_id) for m in rows] == [
        ("messense", "test", "4363689963896700987")
    ]
    # the same request outside the replay window is refused
    set_clock(lambda: 1411525903.0 + 301)
    assert vector_client.post("/wechat/mp", params=q, content=DECRYPT_XML).status_code == 403


@pytest.mark.parametrize("nonce,status", [("437374425", 400), ("437374424", 403)])
def test_wechatpy_check_signature_vector_through_mp_webhook(
    vector_client: TestClient, nonce: str, status: int
) -> None:
    from tests.bot.test_crypto import CHECK_ECHOSTR, CHECK_SIGNATURE, CHECK_TIMESTAMP

    set_clock(lambda: 1411443780.0)
    q = {"encrypt_type": "aes", "msg_signature": CHECK_SIGNATURE,
         "timestamp": CHECK_TIMESTAMP, "nonce": nonce}
    body = f"<xml><Encrypt><![CDATA[{CHECK_ECHOSTR}]]></Encrypt></xml>"
    # Right nonce: the signature passes, and the decrypted echostr is not a message (400).
    # Wrong nonce: the signature fails (403).
    assert vector_client.post("/wechat/mp", params=q, content=body).status_code == status
    assert sha1_signature("123456", CHECK_TIMESTAMP, "437374425", CHECK_ECHOSTR) == CHECK_SIGNATURE


# ---------------------------------------------------------------- through the real app


def test_real_app_stores_a_safe_mode_message(
    yishi_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from yishi.api import create_app
    from yishi.core.config import get_settings

    for key, value in {"YISHI_WECHAT_TOKEN": TOKEN, "YISHI_WECHAT_AES_KEY": AES_KEY,
                       "YISHI_WECHAT_APP_ID": APP_ID}.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    settings = get_settings()
    app = create_app(settings, run_worker=False, warm_knowledge=False)
    with TestClient(app) as c:
        query, body = signer.encrypted(text_xml(content="电梯坏了", msg_id="900"), now())
        r = c.post("/wechat/mp", params=query, content=body)
        assert r.status_code == 200 and r.text == "success"
        q = signer.plain_query(now()) | {"echostr": "42"}
        assert c.get("/wechat/mp", params=q).text == "42"
    assert [(m.user_id, m.content) for m in stored(settings)] == [("wechat_mp:oUser1", "电梯坏了")]


def test_ciphers_are_built_once_not_per_request(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from yishi.bot.channels import crypto as crypto_module

    built = 0
    original = crypto_module.MessageCrypto.__init__

    def counting_init(self: crypto_module.MessageCrypto, **kwargs: object) -> None:
        nonlocal built
        built += 1
        original(self, **kwargs)  # type: ignore[arg-type]

    requests = [signer.encrypted(text_xml(msg_id=f"60{i}"), now()) for i in range(3)]
    routes._cache = None
    monkeypatch.setattr(crypto_module.MessageCrypto, "__init__", counting_init)
    for query, body in requests:
        assert client.post("/wechat/mp", params=query, content=body).status_code == 200
    assert built == 1


def test_webhook_to_reply_end_to_end_once_despite_retries(
    yishi_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WeChat POSTs (safe mode) three times → one stored message → one customer-service send."""
    from tests.fakes.wechat_server import CUSTOM_SEND, FakeWeChatServer
    from tests.fakes.wechat_server import TOKEN as TOKEN_FETCH
    from yishi.api import create_app
    from yishi.core.config import get_settings

    with FakeWeChatServer(app_id=APP_ID) as wx:
        env = {"YISHI_WECHAT_TOKEN": TOKEN, "YISHI_WECHAT_AES_KEY": AES_KEY,
               "YISHI_WECHAT_APP_ID": APP_ID, "YISHI_WECHAT_APP_SECRET": wx.app_secret,
               "YISHI_WECHAT_API_BASE_URL": wx.base_url, "YISHI_JOBS_IMMEDIATE": "true",
               "YISHI_LOAD_SAMPLE_KNOWLEDGE": "false"}
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        pipeline.reset_caches()
        settings = get_settings()
        app = create_app(settings, run_worker=False, warm_knowledge=False)
        with TestClient(app) as c:
            query, body = signer.encrypted(
                text_xml(sender="oE2E", content="帮助", msg_id="7001"), now()
            )
            for _ in range(3):  # the original and WeChat's two retries
                r = c.post("/wechat/mp", params=query, content=body)
                assert r.status_code == 200 and r.text == "success"
        sends = wx.sent(CUSTOM_SEND)
        assert len(sends) == 1
        assert sends[0]["touser"] == "oE2E" and sends[0]["text"]["content"]
        assert len(wx.calls(TOKEN_FETCH)) == 1
    assert len(stored(settings)) == 1
