"""Crypto and XML safety: wechatpy's own test vectors, key rotation, tampering, XXE."""

from __future__ import annotations

import pytest
import xmltodict
from wechatpy.work.crypto import WeChatCrypto

from yishi.bot.channels.crypto import (
    MessageCrypto,
    MessageMalformed,
    SignatureInvalid,
    signature_matches,
    timestamp_fresh,
)
from yishi.bot.channels.xmlparse import open_encrypted, parse_xml, render_text_reply, to_incoming

# Public test vectors from wechatpy's tests/test_crypto.py.
TOKEN = "123456"
AES_KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
RECEIVE_ID = "wx49f0ab532d5d035a"
CHECK_SIGNATURE = "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96"
CHECK_TIMESTAMP = "1411443780"
CHECK_NONCE = "437374425"
CHECK_ECHOSTR = (
    "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q=="
)
ENCRYPT_REPLY = """<xml>
<MsgType><![CDATA[text]]></MsgType>
<Content><![CDATA[test]]></Content>
<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>
<ToUserName><![CDATA[messense]]></ToUserName>
<AgentID>1</AgentID>
<CreateTime>1411525903</CreateTime>
</xml>"""
ENCRYPT_EXPECTED = """<xml>
<Encrypt><![CDATA[9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtObvesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3]]></Encrypt>
<MsgSignature><![CDATA[407518b7649e86ef23978113f92d27afa9296533]]></MsgSignature>
<TimeStamp>1411525903</TimeStamp>
<Nonce><![CDATA[461056294]]></Nonce>
</xml>"""
DECRYPT_XML = """<xml><ToUserName><![CDATA[wx49f0ab532d5d035a]]></ToUserName>
<Encrypt><![CDATA[RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0=]]></Encrypt>
<AgentID><![CDATA[1]]></AgentID>
</xml>"""
DECRYPT_SIGNATURE = "74d92dfeb87ba7c714f89d98870ae5eb62dff26d"
DECRYPT_TIMESTAMP = "1411525903"
DECRYPT_NONCE = "461056294"

OTHER_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def crypto(*keys: str, receive_id: str = RECEIVE_ID) -> MessageCrypto:
    return MessageCrypto(token=TOKEN, aes_keys=list(keys or [AES_KEY]), receive_id=receive_id)


def test_check_signature_vector() -> None:
    c = crypto()
    assert c.verify(CHECK_SIGNATURE, CHECK_TIMESTAMP, CHECK_NONCE, CHECK_ECHOSTR)
    plain, key_index = c.decrypt(CHECK_ECHOSTR)
    assert key_index == 0
    # wechatpy's own code agrees on the decrypted echostr
    expected = WeChatCrypto(TOKEN, AES_KEY, RECEIVE_ID).check_signature(
        CHECK_SIGNATURE, CHECK_TIMESTAMP, CHECK_NONCE, CHECK_ECHOSTR
    )
    assert plain.decode() == expected


def test_check_signature_vector_wrong_nonce_fails() -> None:
    assert not crypto().verify(CHECK_SIGNATURE, CHECK_TIMESTAMP, "437374424", CHECK_ECHOSTR)


def test_encrypt_message_vector() -> None:
    out = crypto().encrypt_reply(
        ENCRYPT_REPLY.encode(), nonce="461056294", timestamp="1411525903",
        random=b"1234567890123456",
    )
    assert out == ENCRYPT_EXPECTED


def test_decrypt_message_vector() -> None:
    fields, key_index = open_encrypted(
        crypto(), body=DECRYPT_XML.encode(), msg_signature=DECRYPT_SIGNATURE,
        timestamp=DECRYPT_TIMESTAMP, nonce=DECRYPT_NONCE,
    )
    assert key_index == 0
    assert fields["Content"] == "test"
    assert fields["FromUserName"] == "messense"


def test_decrypt_vector_with_wrong_signature_is_refused() -> None:
    with pytest.raises(SignatureInvalid):
        open_encrypted(
            crypto(), body=DECRYPT_XML.encode(), msg_signature=DECRYPT_SIGNATURE,
            timestamp=DECRYPT_TIMESTAMP, nonce="461056295",
        )


def test_previous_key_opens_message_during_rotation() -> None:
    old = crypto(AES_KEY)
    encrypted = old.encrypt(b"<xml><A>1</A></xml>")
    rotated = crypto(OTHER_KEY, AES_KEY)  # current first, previous second
    plain, key_index = rotated.decrypt(encrypted)
    assert plain == b"<xml><A>1</A></xml>"
    assert key_index == 1
    with pytest.raises((MessageMalformed, SignatureInvalid)):
        crypto(OTHER_KEY).decrypt(encrypted)


def test_reply_under_rotated_key_is_readable_by_wechatpy() -> None:
    rotated = crypto(OTHER_KEY, AES_KEY)
    envelope = rotated.encrypt_reply(b"<xml><Content>hi</Content></xml>", nonce="n1",
                                     timestamp="1411525903", key_index=1)
    parsed = xmltodict.parse(envelope)["xml"]
    plain = WeChatCrypto(TOKEN, AES_KEY, RECEIVE_ID).decrypt_message(
        envelope, parsed["MsgSignature"], "1411525903", "n1"
    )
    assert "hi" in plain


def test_other_receiver_is_refused() -> None:
    encrypted = crypto(receive_id="wxSOMEONEELSE").encrypt(b"<xml/>")
    with pytest.raises(SignatureInvalid):
        crypto().decrypt(encrypted)


@pytest.mark.parametrize("encrypt", ["not base64!!", "", "AAAA", "QUJD" * 5])
def test_garbage_encrypt_is_malformed(encrypt: str) -> None:
    with pytest.raises(MessageMalformed):
        crypto().decrypt(encrypt)


def test_tampered_ciphertext_never_opens() -> None:
    encrypted = bytearray(crypto().encrypt(b"<xml><Content>hi</Content></xml>").encode())
    encrypted[-6] = ord("A") if encrypted[-6] != ord("A") else ord("B")
    with pytest.raises((MessageMalformed, SignatureInvalid)):
        crypto().decrypt(encrypted.decode())


def test_signature_comparison_rejects_missing_and_wrong() -> None:
    assert not signature_matches(None, "a", "b")
    assert not signature_matches("", "a", "b")
    assert not signature_matches("0" * 40, "a", "b")
    assert signature_matches("da23614e02469a0d7c7bd1bdab5c9c474b1904dc", "a", "b")


def test_timestamp_window() -> None:
    assert timestamp_fresh("1000", now=1200, tolerance=300)
    assert not timestamp_fresh("1000", now=1301, tolerance=300)
    assert not timestamp_fresh("1400", now=1000, tolerance=300)
    assert not timestamp_fresh("", now=1000, tolerance=300)
    assert not timestamp_fresh("-5", now=1000, tolerance=300)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<xml><Content>&lol2;</Content></xml>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><xml><Content>&xxe;</Content></xml>"""


@pytest.mark.parametrize(
    "body",
    [BILLION_LAUGHS, XXE, b"<!DOCTYPE xml><xml/>", b"<xml><Content>", b"", b"<other/>"],
)
def test_unsafe_or_malformed_xml_is_refused(body: bytes) -> None:
    with pytest.raises(MessageMalformed):
        parse_xml(body)


def test_voice_uses_recognition_and_events_lowercased() -> None:
    voice = to_incoming(parse_xml(
        "<xml><FromUserName>o1</FromUserName><ToUserName>gh</ToUserName><MsgType>voice</MsgType>"
        "<Recognition>楼道灯坏了</Recognition><MsgId>9</MsgId><CreateTime>5</CreateTime></xml>"
    ), channel="wechat_mp")
    assert (voice.msg_type, voice.content, voice.msg_id, voice.create_time) == (
        "voice", "楼道灯坏了", "9", 5)
    event = to_incoming(parse_xml(
        "<xml><FromUserName>o1</FromUserName><MsgType>event</MsgType><Event>subscribe</Event>"
        "<CreateTime>7</CreateTime></xml>"
    ), channel="wechat_mp")
    assert (event.msg_type, event.event, event.msg_id) == ("event", "subscribe", None)


def test_reply_text_survives_cdata_terminator() -> None:
    xml = render_text_reply(to_user="o1", from_user="gh", text="a]]>b<c>", create_time=1)
    assert parse_xml(xml)["Content"] == "a]]>b<c>"
