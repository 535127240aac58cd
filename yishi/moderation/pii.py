"""Personal data detectors: resident ID (GB 11643 check digit), mobile numbers, bank cards
(Luhn), e-mail, licence plates and building/unit/room addresses next to a name.

Whose data it is decides the category: the writer's own (self_pii: allowed, redacted) or
someone else's (doxxing: held or blocked)."""

from __future__ import annotations

import re
from datetime import date

from yishi.moderation.normalise import Normalised
from yishi.moderation.schemas import Signal

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10x98765432"

# Chinese numerals written instead of digits (一三八...): mapped 1:1 so offsets stay put.
_NUMERALS = str.maketrans("零〇一二三四五六七八九幺两", "0012345678912")

_SEP = r"[\s\-—_.·]?"
MOBILE_RE = re.compile(
    r"(?<![\d])(?:\+?86[\s\-]?)?(1[3-9]\d)" + _SEP + r"(\d{4})" + _SEP + r"(\d{4})(?!\d)"
)
ID_RE = re.compile(r"(?<![\dx])(\d{6})(\d{4})(\d{2})(\d{2})(\d{3})([\dx])(?![\dx])")
# Digits spelled out one by one with a separator between each ("3 2 0 1 0 2 ...").
SPACED_RE = re.compile(r"(?<![\d])\d(?:[\s\-.·_,，]\d){10,18}(?:[\s\-.]?x)?(?![\d])")
# The tail of a number ("尾号3355", "身份证后四位是0011"): identifying with a name or a self cue.
PARTIAL_RE = re.compile(r"(?:尾号|后[四六4-6]位|末[四六4-6]位)(?:是|为|:|：)?\s?(\d{3,6})(?!\d)")
WECHAT_RE = re.compile(
    r"(?:微信号?|vx|wx|v信|wechat)\s?(?:号)?\s?[:：]?\s?([a-z][a-z0-9_\-]{3,19})"
)
CARD_RE = re.compile(r"(?<!\d)(?:\d{4}[\s\-]?){3}\d{4}(?:[\s\-]?\d{1,3})?(?!\d)")
EMAIL_RE = re.compile(r"[a-z0-9._%+\-]+@[a-z0-9.\-]+\.[a-z]{2,}")
PLATE_RE = re.compile(
    r"[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼][a-z][\s·•]?[a-z0-9]{5,6}(?![a-z0-9])"
)
_NUM = r"(?:\d{1,3}|[一二三四五六七八九十]{1,3})"
ADDRESS_RE = re.compile(
    _NUM + r"\s?(?:号楼|栋|幢|座|号)\s?(?:" + _NUM + r"\s?单元\s?)?(?:\d{3,4}\s?(?:室|号|房)?)"
    r"|" + _NUM + r"\s?单元\s?\d{3,4}\s?(?:室|号|房)?"
    r"|(?<!\d)\d{3,4}\s?(?:室|房间)"
)
# A common surname followed by one or two Han chars, or a title: a name next to an address.
_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任"
    "沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
NAME_RE = re.compile(
    r"[" + _SURNAMES + r"][\u4e00-\u9fff]{1,2}(?=[\s,，。:：的住在家是]|$)"
    r"|[" + _SURNAMES + r"](?:先生|女士|阿姨|大爷|大妈|老师|师傅|姐|哥|叔)"
    r"|姓名[:：]?\s?[\u4e00-\u9fff]{2,3}"
)

_SELF_CUES = (
    "我的",
    "我电话",
    "我手机",
    "我号码",
    "我微信",
    "联系我",
    "打我",
    "找我",
    "call我",
    "本人",
    "我家",
    "我住",
    "我是",
    "私聊我",
    "加我",
    "我的号",
    "我这边",
    "我们家",
    "我号",
    "我身份证",
    "我卡号",
    "我银行卡",
    "我邮箱",
    "我车牌",
    "我的车牌",
    "自家",
    "联系电话",
    "联系方式",
    "电话见",
    "my",
    "i'm",
    "iam",
    "me at",
    "callme",
    "textme",
    "reachme",
)
_SELF_AFTER = (
    "找我",
    "联系我",
    "打我",
    "打给我",
    "call me",
    "text me",
    "私聊我",
    "加我",
    "联系本人",
)
_EXPOSE_CUES = (
    "曝光",
    "人肉",
    "大家打",
    "都打",
    "去找他",
    "去找她",
    "这个人",
    "此人",
    "欠钱",
    "骗子",
    "打爆",
    "轰炸",
    "别放过",
    "挂出来",
    "扒出",
    "老赖",
    "这家人",
)
_CUE_WINDOW = 20


def gb11643_valid(id18: str) -> bool:
    """Is an 18-char resident ID number valid (birth date and GB 11643 check digit)?"""
    s = id18.lower()
    if len(s) != 18 or not s[:17].isdigit():
        return False
    try:
        born = date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
    except ValueError:
        return False
    if not (1900 <= born.year <= 2100):
        return False
    total = sum(int(d) * w for d, w in zip(s[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == s[17]


def luhn_valid(digits: str) -> bool:
    """Does a digit string pass the Luhn check used by bank card numbers?"""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _plausible_birth(m: re.Match[str]) -> bool:
    try:
        year = int(m.group(2))
        date(year, int(m.group(3)), int(m.group(4)))
    except ValueError:
        return False
    return 1900 <= year <= 2100


def detect(norm: Normalised, *, context: str = "message") -> list[Signal]:
    """Personal-data signals with offsets into the original text."""
    light = norm.light
    text = light.text
    digits_text = text.translate(_NUMERALS)
    if "@" not in text and not any(c.isdigit() for c in digits_text):
        return []
    found: list[tuple[int, int, str, float]] = []  # light start, end, kind, base score
    taken: list[tuple[int, int]] = []

    def free(a: int, b: int) -> bool:
        return all(b <= x or a >= y for x, y in taken)

    for m in ID_RE.finditer(digits_text):
        if gb11643_valid(m.group(0)):
            found.append((m.start(), m.end(), "id", 0.95))
            taken.append(m.span())
        elif _plausible_birth(m):
            found.append((m.start(), m.end(), "id", 0.88))
            taken.append(m.span())
    for m in CARD_RE.finditer(digits_text):
        raw = re.sub(r"\D", "", m.group(0))
        if 16 <= len(raw) <= 19 and luhn_valid(raw) and free(*m.span()):
            found.append((m.start(), m.end(), "card", 0.9))
            taken.append(m.span())
    for m in MOBILE_RE.finditer(digits_text):
        if free(*m.span()):
            found.append((m.start(), m.end(), "mobile", 0.6))
            taken.append(m.span())
    for m in SPACED_RE.finditer(digits_text):
        if not free(*m.span()):
            continue
        raw = re.sub(r"[^\dx]", "", m.group(0))
        if len(raw) == 18 and (gb11643_valid(raw) or _plausible_birth_str(raw)):
            found.append((m.start(), m.end(), "id", 0.9))
        elif 16 <= len(raw) <= 19 and luhn_valid(raw):
            found.append((m.start(), m.end(), "card", 0.9))
        elif len(raw) == 11 and raw[0] == "1" and raw[1] in "3456789":
            found.append((m.start(), m.end(), "mobile", 0.6))
        else:
            continue
        taken.append(m.span())
    for m in PARTIAL_RE.finditer(digits_text):
        if free(*m.span(1)):
            found.append((m.start(1), m.end(1), "partial", 0.3))
            taken.append(m.span(1))
    for m in WECHAT_RE.finditer(text):
        if free(*m.span(1)):
            found.append((m.start(1), m.end(1), "wechat", 0.5))
    for m in EMAIL_RE.finditer(text):
        found.append((m.start(), m.end(), "email", 0.55))
    for m in PLATE_RE.finditer(text):
        found.append((m.start(), m.end(), "plate", 0.3))
    for m in ADDRESS_RE.finditer(text):
        a, b = m.span()
        window = text[max(0, a - 10) : b + 10]
        names = NAME_RE.search(window)
        found.append((a, b, "address", 0.85 if names else 0.2))

    signals: list[Signal] = []
    named = NAME_RE.search(text) is not None
    for a, b, kind, base in found:
        before = text[max(0, a - _CUE_WINDOW) : a].replace(" ", "")
        after = text[b : b + 12]
        around = text[max(0, a - _CUE_WINDOW) : b + _CUE_WINDOW].replace(" ", "")
        is_self = (
            any(c in before for c in _SELF_CUES) or any(c in after for c in _SELF_AFTER)
        ) and not _other_owner(before)
        exposed = any(c in around for c in _EXPOSE_CUES) and not is_self
        o_start, o_end = light.span(a, b)
        label = _KIND_LABEL[kind]
        if context == "reply":
            # The bot's own replies cite public service numbers; only hard identifiers count.
            if kind in ("id", "card"):
                signals.append(_sig("doxxing", 0.9, o_start, o_end, f"回复中含{label}", True))
            continue
        if is_self:
            if kind in ("plate",):
                continue
            signals.append(_sig("self_pii", 0.5, o_start, o_end, f"本人{label}（已隐藏）", True))
            continue
        score = base
        if kind in ("mobile", "wechat", "email") and named and NAME_RE.search(before):
            score = max(score, 0.75)  # a named person's contact details
        if exposed:
            score = max(base, 0.9) if kind != "plate" else 0.7
        if kind == "address" and base < 0.5 and not exposed:
            continue
        if kind in ("plate", "partial") and not exposed:
            continue
        signals.append(_sig("doxxing", score, o_start, o_end, f"他人{label}", kind != "plate"))
    return signals


def _plausible_birth_str(id18: str) -> bool:
    try:
        year = int(id18[6:10])
        date(year, int(id18[10:12]), int(id18[12:14]))
    except ValueError:
        return False
    return 1900 <= year <= 2100


def _has_numerals(fragment: str) -> bool:
    return sum(c in "零〇一二三四五六七八九幺两" for c in fragment) >= 4


def _other_owner(before: str) -> bool:
    # "我的邻居/我朋友的电话" is someone else's number even though it starts with 我.
    return any(w in before[-8:] for w in ("邻居", "朋友", "同事", "他的", "她的", "老公", "老婆"))


_KIND_LABEL = {
    "id": "身份证号",
    "card": "银行卡号",
    "mobile": "手机号",
    "email": "邮箱",
    "plate": "车牌号",
    "address": "住址",
    "wechat": "微信号",
    "partial": "号码尾号",
}


def _sig(category: str, score: float, start: int, end: int, reason: str, redact: bool) -> Signal:
    return Signal(
        category=category,
        score=score,
        start=start,
        end=end,
        source="pii",
        reason=reason,
        redact=redact,
    )


def mask(fragment: str) -> str:
    """Mask personal data in one matched fragment, keeping a little for recognition."""
    fragment = fragment.translate(_NUMERALS) if _has_numerals(fragment) else fragment
    digits = [i for i, c in enumerate(fragment) if c.isdigit() or c in "xX"]
    if len(digits) >= 7:
        keep = set(digits[:3] + digits[-4:]) if len(digits) <= 11 else set(digits[-4:])
        return "".join(
            c if (i in keep or not (c.isdigit() or c in "xX")) else "*"
            for i, c in enumerate(fragment)
        )
    if "@" in fragment:
        name, _, domain = fragment.partition("@")
        return (name[:1] + "***@" + domain) if name else "***@" + domain
    return "".join("*" if c.isdigit() else c for c in fragment)
