"""Crisp structure of a message: encoded payloads, links, contact handles, money, urgency,
words addressed to the assistant and role markers.

These are facts about the form of a text, not lists of known bad phrases. They feed the learned
heads as a handful of extra features (`features`), explain decisions, and `decode_payloads`
hands the decoded text of base64 / hex / URL-encoded payloads back to the screener.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import unquote

MAX_PAYLOADS = 3  # decoded payloads screened per message
MAX_PAYLOAD_CHARS = 4000  # longer candidates are not decoded
MIN_DECODED_CHARS = 4

_B64_RE = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{12,}={0,2}(?![A-Za-z0-9+/=_-])")
_HEX_RE = re.compile(r"(?<![0-9a-fA-F])(?:[0-9a-fA-F]{2}(?:\s|\\x|0x|%)?){6,}(?![0-9a-fA-F])")
_HEX_PREFIXED_RE = re.compile(r"(?:(?:\\x|0x)[0-9a-fA-F]{2}){4,}")
_PCT_RE = re.compile(r"(?:%[0-9a-fA-F]{2}){3,}")

URL_RE = re.compile(
    r"https?://\S+|www\.\S+|\b[a-z0-9\-]{2,}\.(?:com|cn|net|top|xyz|vip|cc|me|info|io|org|shop)\b"
    r"(?:/\S*)?",
    re.IGNORECASE,
)
SHORTENER_RE = re.compile(r"t\.cn/|dwz\.cn|bit\.ly|url\.cn|suo\.im|tinyurl", re.IGNORECASE)
# A handle on another messaging app: the app's name (or its usual abbreviation) next to an id.
HANDLE_RE = re.compile(
    r"(?:微信|薇信|威信|vx|wx|v信|qq|扣扣|企鹅|tg|telegram|电报|whatsapp)\s?(?:号)?\s?[:：]?\s?"
    r"[a-z0-9_\-]{5,}"
    r"|(?:加|\+|添加|联系)\s?(?:我)?\s?(?:微信|薇信|vx|wx|v信|qq|扣扣|企鹅|tg|电报)",
    re.IGNORECASE,
)
PHONE_RE = re.compile(r"(?<!\d)1[3-9]\d[\s\-]?\d{4}[\s\-]?\d{4}(?!\d)")
MONEY_RE = re.compile(
    r"[¥￥$]\s?\d|\d+(?:\.\d+)?\s?(?:元|块|万|w\b|k\b)|(?:转账|汇款|打款|付款|收款|押金|保证金|手续费|红包)"
)
URGENT_RE = re.compile(
    r"立即|立刻|马上|尽快|速来|赶紧|限时|今天内|今日内|\d+\s?(?:小时|分钟)内|逾期|过期|截止|最后一天"
)
# Second person or the assistant's names, in Chinese and English.
ADDRESSEE_RE = re.compile(
    r"(?:你|您|助手|机器人|ai|gpt|模型|bot|assistant|chatbot|moderator|审核员?)", re.IGNORECASE
)
# Chat-template and role markers that no resident types by accident.
ROLE_MARKER_RE = re.compile(
    r"<\|?\s?(?:system|im_start|im_end|assistant|user)\s?\|?>|\[/?(?:inst|system)\]"
    r"|^\s*(?:system|assistant)\s?[:：]|###\s?(?:instruction|system|指令)|<!--|\{\{.*\}\}",
    re.IGNORECASE | re.MULTILINE,
)
# A bracketed header, the usual dress of a notice (【物业通知】, [系统消息]).
NOTICE_HEADER_RE = re.compile(r"^\s*[【\[〔][^】\]〕]{2,12}[】\]〕]")


@dataclass(frozen=True)
class Payload:
    """One decoded payload: where it was and what it says."""

    start: int
    end: int
    kind: str  # base64 | hex | url
    text: str


def _readable(raw: bytes) -> str | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    text = text.strip()
    if len(text) < MIN_DECODED_CHARS:
        return None
    ok = sum(1 for c in text if c.isprintable() or c.isspace())
    letters = sum(1 for c in text if c.isalpha())
    if ok < 0.95 * len(text) or letters < 0.4 * len(text):
        return None
    if not any(unicodedata.category(c).startswith("L") for c in text):
        return None
    return text


def _b64(candidate: str) -> str | None:
    s = candidate.replace("-", "+").replace("_", "/")
    if len(s) % 4 == 1:
        return None
    if not (any(c.isdigit() for c in s) or any(c.isupper() for c in s)):
        return None  # a plain lower-case word is not base64
    try:
        raw = base64.b64decode(s + "=" * (-len(s) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return _readable(raw)


def _hex(candidate: str) -> str | None:
    digits = re.sub(r"\\x|0x|%|\s", "", candidate)
    if len(digits) % 2 or len(digits) < 8:
        return None
    try:
        raw = bytes.fromhex(digits)
    except ValueError:
        return None
    return _readable(raw)


def decode_payloads(text: str) -> list[Payload]:
    """Base64, hex and URL-encoded stretches of `text` that decode to readable text (bounded)."""
    found: list[Payload] = []
    taken: list[tuple[int, int]] = []

    def add(m: re.Match[str], kind: str, decoded: str | None) -> None:
        if decoded is None or len(found) >= MAX_PAYLOADS:
            return
        a, b = m.span()
        if any(a < y and x < b for x, y in taken):
            return
        taken.append((a, b))
        found.append(Payload(a, b, kind, decoded))

    if len(text) > 20 * MAX_PAYLOAD_CHARS:
        text = text[: 20 * MAX_PAYLOAD_CHARS]
    for m in _PCT_RE.finditer(text):
        if len(m.group(0)) <= MAX_PAYLOAD_CHARS:
            add(m, "url", _readable(unquote(m.group(0)).encode("utf-8", "replace")))
    for m in _HEX_PREFIXED_RE.finditer(text):
        if len(m.group(0)) <= MAX_PAYLOAD_CHARS:
            add(m, "hex", _hex(m.group(0)))
    for m in _HEX_RE.finditer(text):
        if len(m.group(0)) <= MAX_PAYLOAD_CHARS:
            add(m, "hex", _hex(m.group(0)))
    for m in _B64_RE.finditer(text):
        if len(m.group(0)) <= MAX_PAYLOAD_CHARS and not re.fullmatch(r"[0-9a-fA-F]+", m.group(0)):
            add(m, "base64", _b64(m.group(0)))
    return found


FEATURES = (
    "has_url",
    "has_shortener",
    "has_handle",
    "has_phone",
    "has_money",
    "has_urgency",
    "scam_shape",  # money + urgency + a way off the platform
    "addresses_assistant",
    "role_marker",
    "notice_header",
    "encoded_payload",
    "latin_share",
)


def features(text: str) -> list[float]:
    """The structural features of one text, in the order of `FEATURES`."""
    head = text[:2000]
    url = URL_RE.search(head) is not None
    short = SHORTENER_RE.search(head) is not None
    handle = HANDLE_RE.search(head) is not None
    phone = PHONE_RE.search(head) is not None
    money = MONEY_RE.search(head) is not None
    urgent = URGENT_RE.search(head) is not None
    off_platform = url or handle or phone
    letters = [c for c in head if c.isalpha()]
    latin = sum(1 for c in letters if c.isascii()) / len(letters) if letters else 0.0
    return [
        float(url),
        float(short),
        float(handle),
        float(phone),
        float(money),
        float(urgent),
        float(money and urgent and off_platform),
        float(ADDRESSEE_RE.search(head) is not None),
        float(ROLE_MARKER_RE.search(head) is not None),
        float(NOTICE_HEADER_RE.search(head) is not None),
        float(bool(decode_payloads(head))),
        round(latin, 3),
    ]
