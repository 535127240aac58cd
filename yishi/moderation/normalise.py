"""Text normalisation for screening, with an offset map from every normalised char to the original.

Three views of one message are built in a single pass:

- ``light``: NFKC, lower case, traditional → simplified, zero-width and control chars removed,
  invalid surrogates replaced. Keeps spaces and punctuation (PII and URL patterns need them).
- ``compact``: ``light`` without spaces, punctuation and symbols, with emoji substitutes and
  split characters mapped and runs of one repeated char collapsed. Lexicons match here.
- ``pinyin``: ``compact`` spelled as toneless pinyin syllables (ASCII runs kept as they are),
  for homophone and pinyin-initial matching.

Each view carries ``offsets[i]`` = index of the original char that produced char ``i``.
"""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

# Emoji commonly used in place of a character in abuse (🐴 for 妈, 🐶 for 狗, ...).
EMOJI_MAP: dict[str, str] = {
    "🐴": "妈",
    "🐎": "马",
    "🐶": "狗",
    "🐕": "狗",
    "🐷": "猪",
    "🐖": "猪",
    "💩": "屎",
    "🌿": "草",
    "🐔": "鸡",
    "🐢": "龟",
    "🐍": "蛇",
    "🐭": "鼠",
    "🐀": "鼠",
    "🔪": "刀",
    "💀": "死",
    "☠": "死",
    "🔥": "火",
    "🐮": "牛",
    "🐂": "牛",
    "🥚": "蛋",
    "🐒": "猴",
    "🐵": "猴",
    "🦍": "猩",
    "🍑": "臀",
}

# Characters written split into their components (女马 for 妈, 亻尔 for 你, ...).
SPLIT_CHARS: dict[str, str] = {
    "女马": "妈",
    "亻尔": "你",
    "弓虽": "强",
    "犭者": "猪",
    "歹匕": "死",
    "木几": "机",
    "亻也": "他",
    "女也": "她",
    "日月": "明",
    "口米": "咪",
    "扌喿": "操",
    "扌品": "操",
    "亻故": "做",
    "白勺": "的",
    "贝戋": "贱",
    "女表": "婊",
    "马帝": "骑",
    "尸从": "怂",
    "尸己": "屁",
    "禾火": "秋",
    "女干": "奸",
    "犭句": "狗",
    "口合": "哈",
}

# Look-alike letters and digits used inside otherwise Chinese abuse.
_EXTRA_CHAR_MAP: dict[str, str] = {
    "艹": "草",
    "屮": "草",
    "肏": "操",
    "糙": "操",
    "〇": "0",
}

_ZERO_WIDTH = {"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u180e", "\u00ad"}

_lock = threading.Lock()
_t2s_map: dict[str, str] | None = None


def _build_t2s() -> dict[str, str]:
    """A char-level traditional → simplified map built from OpenCC's own t2s conversion."""
    from pathlib import Path

    import opencc  # opencc-python-reimplemented

    converter = opencc.OpenCC("t2s")
    table: dict[str, str] = {}
    path = Path(opencc.__file__).parent / "dictionary" / "TSCharacters.txt"
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            key = line.split("\t", 1)[0].strip()
            if len(key) != 1:
                continue
            # Convert one char at a time so the map stays 1:1 and offsets never shift.
            out = converter.convert(key)
            if len(out) == 1 and out != key:
                table[key] = out
    return table


def t2s_map() -> dict[str, str]:
    """The traditional → simplified char map (built once per process)."""
    global _t2s_map
    if _t2s_map is None:
        with _lock:
            if _t2s_map is None:
                _t2s_map = _build_t2s()
    return _t2s_map


@lru_cache(maxsize=65536)
def char_pinyin(ch: str) -> str:
    """Toneless pinyin of one Han char (first reading), or "" if it has none."""
    from pypinyin import pinyin_dict

    raw = pinyin_dict.pinyin_dict.get(ord(ch))
    if not raw:
        return ""
    first = raw.split(",", 1)[0]
    decomposed = unicodedata.normalize("NFD", first)
    out = "".join(c for c in decomposed if not unicodedata.combining(c))
    return out.replace("ü", "v").replace("u\u0308", "v")


def _is_han(ch: str) -> bool:
    code = ord(ch)
    return 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF


@lru_cache(maxsize=32768)
def _light_char(ch: str) -> str:
    """NFKC + lower case + t2s for one original char ("" drops it)."""
    if ch in _ZERO_WIDTH:
        return ""
    code = ord(ch)
    if 0xD800 <= code <= 0xDFFF:  # a lone surrogate: keep the slot, lose the content
        return "\ufffd"
    cat = unicodedata.category(ch)
    if cat in ("Cc", "Cf") and ch not in "\n\t":
        return ""
    if ch in EMOJI_MAP:
        return ch
    out = unicodedata.normalize("NFKC", ch).lower()
    table = t2s_map()
    return "".join(_EXTRA_CHAR_MAP.get(c, table.get(c, c)) for c in out)


@lru_cache(maxsize=32768)
def _compact_keep(ch: str) -> str:
    """What a light char becomes in the compact view ("" drops spaces, punctuation, symbols)."""
    if ch in EMOJI_MAP:
        return EMOJI_MAP[ch]
    if ch.isalnum():
        return ch
    return ""


# Plain dicts in the hot loops: a dict lookup is cheaper than an lru_cache call.
_LIGHT_CACHE: dict[str, str] = {}
_KEEP_CACHE: dict[str, str] = {}
_PINYIN_CACHE: dict[str, str] = {}


@dataclass(frozen=True)
class View:
    """One normalised view of a text and the original index of each of its chars."""

    text: str
    offsets: Sequence[int]

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Original [start, end) for the view's [start, end)."""
        n = len(self.offsets)
        start, end = max(0, start), min(end, n)
        if not n or start >= end:
            return (0, 0)
        return (self.offsets[start], self.offsets[end - 1] + 1)


@dataclass(frozen=True)
class PinyinView:
    """The compact view as pinyin: text, original offsets and syllable boundaries."""

    text: str
    offsets: Sequence[int]
    starts: frozenset[int]  # indices where a syllable (or ASCII run) starts
    ends: frozenset[int]  # indices one past where a syllable (or ASCII run) ends


@dataclass(frozen=True)
class Normalised:
    """The three views of one message."""

    original: str
    light: View
    compact: View
    pinyin: PinyinView


def sanitise(text: str) -> str:
    """Replace lone surrogates (from bad decoding) so the text can be encoded; keeps length."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)


def normalise(text: str) -> Normalised:
    """Build the light, compact and pinyin views of `text` with offsets into `text`."""
    translated = text.translate(_LIGHT_TABLE)
    if len(translated) == len(text) and _NON_UNIT.isdisjoint(text):
        # Every char maps to exactly one char (the usual case): offsets are the identity.
        light = View(translated, range(len(text)))
        light_chars: list[str] = list(translated)
        light_offs: Sequence[int] = light.offsets
    else:
        light = _light_slow(text)
        light_chars = list(light.text)
        light_offs = light.offsets
    return _from_light(text, light, light_chars, light_offs)


class _LightTable(dict[int, str]):
    """A lazily filled `str.translate` table from a char to its light form."""

    def __missing__(self, code: int) -> str:
        ch = chr(code)
        if ch.isascii():
            if ch.isalnum() or ch in " \n\t":
                out = ch.lower()
            elif code < 32:
                out = ""
            else:
                out = ch
        else:
            out = _light_char(ch)
        if len(out) != 1:
            _NON_UNIT.add(ch)
        if len(self) < 100_000:
            self[code] = out
        return out


_NON_UNIT: set[str] = set()  # chars whose light form is not exactly one char
_LIGHT_TABLE = _LightTable()


def _light_slow(text: str) -> View:
    light_chars: list[str] = []
    light_offs: list[int] = []
    light_cache = _LIGHT_CACHE
    for i, ch in enumerate(text):
        if ch.isascii():
            if ch.isalnum() or ch in " \n\t":
                light_chars.append(ch.lower())
                light_offs.append(i)
                continue
            if ord(ch) < 32:
                continue
            light_chars.append(ch)
            light_offs.append(i)
            continue
        out = light_cache.get(ch)
        if out is None:
            out = _light_char(ch)
            if len(light_cache) < 100_000:
                light_cache[ch] = out
        for c in out:
            light_chars.append(c)
            light_offs.append(i)
    return View("".join(light_chars), tuple(light_offs))


def _from_light(
    text: str, light: View, light_chars: list[str], light_offs: Sequence[int]
) -> Normalised:

    comp_chars: list[str] = []
    comp_offs: list[int] = []
    keep_cache = _KEEP_CACHE
    for c, off in zip(light_chars, light_offs, strict=True):
        k = keep_cache.get(c)
        if k is None:
            k = _compact_keep(c)
            if len(keep_cache) < 100_000:
                keep_cache[c] = k
        if not k:
            continue
        if comp_chars:
            prev = comp_chars[-1]
            if k == prev:  # collapse repeats: 傻傻傻逼 → 傻逼, 滚滚滚 → 滚
                continue
            joined = SPLIT_CHARS.get(prev + k)
            if joined is not None:
                comp_chars[-1] = joined
                continue
        comp_chars.append(k)
        comp_offs.append(off)
    compact = View("".join(comp_chars), tuple(comp_offs))
    return Normalised(text, light, compact, _pinyin_view(comp_chars, comp_offs))


def _pinyin_view(chars: list[str], offs: list[int]) -> PinyinView:
    out: list[str] = []
    out_offs: list[int] = []
    starts: set[int] = set()
    ends: set[int] = set()
    pos = 0
    in_ascii = False
    for c, off in zip(chars, offs, strict=True):
        if c.isascii():
            if not in_ascii:
                starts.add(pos)
                in_ascii = True
            out.append(c)
            out_offs.append(off)
            pos += 1
            continue
        if in_ascii:
            ends.add(pos)
        in_ascii = False
        syl = _PINYIN_CACHE.get(c)
        if syl is None:
            syl = char_pinyin(c) if _is_han(c) else ""
            syl = syl or "#"  # a char without pinyin breaks matches
            if len(_PINYIN_CACHE) < 100_000:
                _PINYIN_CACHE[c] = syl
        starts.add(pos)
        out.append(syl)
        out_offs.extend([off] * len(syl))
        pos += len(syl)
        ends.add(pos)
    if in_ascii:
        ends.add(pos)
    return PinyinView("".join(out), tuple(out_offs), frozenset(starts), frozenset(ends))


@lru_cache(maxsize=8192)
def normalise_term(term: str) -> str:
    """A lexicon term in the compact view's form (so terms and texts compare alike)."""
    return normalise(term).compact.text


@lru_cache(maxsize=8192)
def term_pinyin(term: str) -> str:
    """A lexicon term spelled as toneless pinyin (ASCII kept); "" if any char lacks pinyin."""
    parts: list[str] = []
    for c in normalise_term(term):
        if c.isascii():
            parts.append(c)
            continue
        syl = char_pinyin(c) if _is_han(c) else ""
        if not syl:
            return ""
        parts.append(syl)
    return "".join(parts)
