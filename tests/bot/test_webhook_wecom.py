"""WeCom app callback: encrypted echostr check, CorpID inside, wechatpy's vectors, bad input."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.bot.test_crypto import (
    CHECK_ECHOSTR,
    CHECK_SIGNATURE,
    CHECK_TIMESTAMP,
    DECRYPT_NONCE,
    DECRYPT_SIGNATURE,
    DECRYPT_TIMESTAMP,
    DECRYPT_XML,
)
from tests.bot.test_webhook_mp import make_client, make_settings, stored
from tests.fakes.wechat_server import CallbackSigner, text_xml
from yishi.core.clock import set_clock
from yishi.core.config import Settings

TOKEN = "123456"
AES_KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
CORP_ID = "wx49f0ab532d5d035a"


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return make_settings(
        tmp_path,
        **({"database_url": database_url} if database_url else {}),
        wechat_token=None,
        wecom_token=TOKEN,
        wecom_aes_key=AES_KEY,
        wecom_corp_id=CORP_ID,
        wecom_agent_id="1",
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with make_client(settings) as c:
        yield c
    set_clock(None)


signer = CallbackSigner(token=TOKEN, aes_key=AES_KEY, receive_id=CORP_ID)


def test_wechatpy_check_signature_vector_answers_decrypted_echostr(client: TestClient) -> None:
    set_clock(lambda: 1411443780.0 + 5)
    q = {"msg_signature": CHECK_SIGNATURE, "timestamp": CHECK_TIMESTAMP, "nonce": "437374425",
         "echostr": CHECK_ECHOSTR}
    r = client.get("/wechat/work", params=q)
    assert r.status_code == 200
    assert r.text == "5927782489442352469"


def test_wechatpy_check_signature_vector_wrong_nonce_is_403(client: TestClient) -> None:
    set_clock(lambda: 1411443780.0)
    q = {"msg_signature": CHECK_SIGNATURE, "timestamp": CHECK_TIMESTAMP, "nonce": "437374424",
         "echostr": CHECK_ECHOSTR}
    r = client.get("/wechat/work", params=q)
    assert r.status_code == 403
    assert "5927782489442352469" not in r.text


def test_echostr_check_outside_replay_window_is_403(client: TestClient) -> None:
    q = {"msg_signature": CHECK_SIGNATURE, "timestamp": CHECK_TIMESTAMP, "nonce": "437374425",
         "echostr": CHECK_ECHOSTR}
    assert client.get("/wechat/work", params=q).status_code == 403  # real clock: 2014 is stale


def test_wechatpy_decrypt_vector_is_stored(client: TestClient, settings: Settings) -> None:
    set_clock(lambda: 1411525903.0)
    q = {"msg_signature": DECRYPT_SIGNATURE, "timestamp": DECRYPT_TIMESTAMP,
         "nonce": DECRYPT_NONCE}
    r = client.post("/wechat/work", params=q, content=DECRYPT_XML)
    assert r.status_code == 200
    assert r.text == ""
    rows = stored(settings)
    assert [(m.channel, m.sender, m.content, m.agent_id) for m in rows] == [
        ("wecom", "messense", "test", "1")
    ]
    assert rows[0].user_id == "wecom:messense"


def test_wechatpy_decrypt_vector_wrong_nonce_is_403(
    client: TestClient, settings: Settings
) -> None:
    set_clock(lambda: 1411525903.0)
    q = {"msg_signature": DECRYPT_SIGNATURE, "timestamp": DECRYPT_TIMESTAMP,
         "nonce": "461056295"}
    assert client.post("/wechat/work", params=q, content=DECRYPT_XML).status_code == 403
    assert stored(settings) == []


def test_message_for_another_corp_is_403(client: TestClient, settings: Settings) -> None:
    other = CallbackSigner(token=TOKEN, aes_key=AES_KEY, receive_id="wwSOMEONEELSE")
    query, body = other.encrypted(text_xml(msg_id="1", agent_id="1"), int(time.time()),
                                  mp=False)
    assert client.post("/wechat/work", params=query, content=body).status_code == 403
    assert stored(settings) == []


def test_plaintext_or_unsigned_post_is_refused(client: TestClient, settings: Settings) -> None:
    ts = str(int(time.time()))
    assert client.post("/wechat/work", params={"timestamp": ts, "nonce": "1"},
                       content=text_xml()).status_code == 403
    query, body = signer.encrypted(text_xml(msg_id="2"), int(time.time()), mp=False)
    query["msg_signature"] = "1" * 40
    assert client.post("/wechat/work", params=query, content=body).status_code == 403
    assert stored(settings) == []


def test_signed_message_is_stored_and_retries_deduplicated(
    client: TestClient, settings: Settings
) -> None:
    for _ in range(2):
        query, body = signer.encrypted(
            text_xml(sender="zhangsan", to=CORP_ID, content="总结一下停车收费的讨论", msg_id="77",
                     agent_id="1000002"),
            int(time.time()), mp=False,
        )
        assert client.post("/wechat/work", params=query, content=body).status_code == 200
    rows = stored(settings)
    assert [(m.user_id, m.content, m.agent_id) for m in rows] == [
        ("wecom:zhangsan", "总结一下停车收费的讨论", "1000002")
    ]


def test_billion_laughs_inside_encryption_is_400(client: TestClient, settings: Settings) -> None:
    from tests.bot.test_webhook_mp import LAUGHS

    query, body = signer.encrypted(LAUGHS, int(time.time()), mp=False)
    assert client.post("/wechat/work", params=query, content=body).status_code == 400
    assert stored(settings) == []


def test_body_over_limit_is_413(client: TestClient) -> None:
    query, _ = signer.encrypted(text_xml(), int(time.time()), mp=False)
    r = client.post("/wechat/work", params=query, content=b"<xml>" + b"a" * 70000 + b"</xml>")
    assert r.status_code == 413


def test_unencoded_plus_in_echostr_still_verifies(client: TestClient) -> None:
    set_clock(lambda: 1411443780.0)
    url = (
        f"/wechat/work?msg_signature={CHECK_SIGNATURE}&timestamp={CHECK_TIMESTAMP}"
        f"&nonce=437374425&echostr={CHECK_ECHOSTR}"  # raw "+" decodes to " "
    )
    r = client.get(url)
    assert r.status_code == 200 and r.text == "5927782489442352469"
