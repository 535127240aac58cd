"""Safe XML for WeChat callbacks: defusedxml with DTDs forbidden, then a flat dict."""

from __future__ import annotations

import re
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from yishi.bot.channels.crypto import MessageCrypto, MessageMalformed, SignatureInvalid
from yishi.bot.schemas import Channel, IncomingMessage

# WeChat's callbacks nest at most three levels (<xml><ScanCodeInfo><ScanResult>); anything
# much deeper is not WeChat's and must not reach Python's recursion limit.
MAX_DEPTH = 8


def parse_xml(data: bytes | str) -> dict[str, Any]:
    """The children of WeChat's `<xml>` root as a dict (nested elements as nested dicts).

    Any DOCTYPE, entity or external reference (XXE, billion laughs) is refused before
    anything is expanded; so is malformed XML, another root element, or nesting deeper than
    `MAX_DEPTH`.
    """
    try:
        root = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (DefusedXmlException, ParseError, ValueError) as exc:
        raise MessageMalformed(f"unsafe or malformed XML: {type(exc).__name__}") from exc
    if root.tag != "xml":
        raise MessageMalformed("the root element is not <xml>")
    return _children(root, 1)


def _children(element: Element, depth: int) -> dict[str, Any]:
    if depth > MAX_DEPTH:
        raise MessageMalformed(f"XML nested deeper than {MAX_DEPTH} levels")
    out: dict[str, Any] = {}
    for child in element:
        out[child.tag] = _children(child, depth + 1) if len(child) else (child.text or "")
    return out


_B64 = rb"([A-Za-z0-9+/=]{1,200000})"
_ENCRYPT = re.compile(
    rb"<Encrypt>\s*(?:<!\[CDATA\[" + _B64 + rb"\]\]>|" + _B64 + rb")\s*</Encrypt>"
)


def _envelope_encrypt(body: bytes) -> str | None:
    """The `Encrypt` value read without parsing the XML (so the signature is checked first)."""
    found = _ENCRYPT.search(body)
    if found is None:
        return None
    return (found.group(1) or found.group(2)).decode("ascii")


def _text(fields: dict[str, Any], name: str) -> str:
    value = fields.get(name)
    return value.strip() if isinstance(value, str) else ""


def to_incoming(fields: dict[str, Any], *, channel: Channel) -> IncomingMessage:
    """An `IncomingMessage` from a decrypted callback (voice carries WeChat's Recognition)."""
    sender = _text(fields, "FromUserName")
    if not sender:
        raise MessageMalformed("FromUserName is missing")
    msg_type = _text(fields, "MsgType").lower() or "unknown"
    create_time_text = _text(fields, "CreateTime")
    create_time = int(create_time_text) if create_time_text.isdigit() else 0
    event: str | None = None
    if msg_type == "text":
        content = fields.get("Content") or ""
    elif msg_type == "voice":
        content = _text(fields, "Recognition")
    elif msg_type == "event":
        event = _text(fields, "Event").lower() or None
        content = _text(fields, "EventKey")
    elif msg_type in ("image", "location"):
        from yishi.bot.media import content_for

        content = content_for(msg_type, fields)
    else:
        content = ""
    agent_id = _text(fields, "AgentID") or None
    return IncomingMessage(
        channel=channel,
        sender=sender,
        msg_type=msg_type,
        content=content if isinstance(content, str) else "",
        msg_id=_text(fields, "MsgId") or None,
        create_time=create_time,
        event=event,
        to_user=_text(fields, "ToUserName"),
        agent_id=agent_id,
        raw=fields,
    )


def render_text_reply(*, to_user: str, from_user: str, text: str, create_time: int) -> str:
    """A passive text reply (the XML WeChat shows to the user)."""
    return (
        "<xml>"
        f"<ToUserName>{_cdata(to_user)}</ToUserName>"
        f"<FromUserName>{_cdata(from_user)}</FromUserName>"
        f"<CreateTime>{create_time}</CreateTime>"
        "<MsgType><![CDATA[text]]></MsgType>"
        f"<Content>{_cdata(text)}</Content>"
        "</xml>"
    )


def _cdata(text: str) -> str:
    # A "]]>" inside the text would end the section early: split it across two sections.
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def open_encrypted(
    crypto: MessageCrypto,
    *,
    body: bytes,
    msg_signature: str | None,
    timestamp: str,
    nonce: str,
) -> tuple[dict[str, Any], int]:
    """Verify and decrypt an `<Encrypt>` envelope; the inner fields and the key index used."""
    if not msg_signature:
        raise SignatureInvalid("msg_signature is missing")
    # The signature covers the ciphertext: check it before parsing anything the sender wrote.
    encrypt = _envelope_encrypt(body)
    if encrypt is None:
        raise MessageMalformed("Encrypt is missing")
    if not crypto.verify(msg_signature, timestamp, nonce, encrypt):
        raise SignatureInvalid("msg_signature does not match")
    envelope = parse_xml(body)
    parsed = envelope.get("Encrypt")
    if not isinstance(parsed, str) or parsed.strip() != encrypt:
        raise MessageMalformed("Encrypt is ambiguous")
    plain, key_index = crypto.decrypt(encrypt)
    return parse_xml(plain), key_index
