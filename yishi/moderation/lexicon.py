"""Lexicon matching: the project lexicon (Aho-Corasick over the compact and pinyin views),
the community allow-list, and external word lists loaded as weak signals."""

from __future__ import annotations

import gc
import re
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import ahocorasick

from yishi.moderation.normalise import Normalised, normalise_term, term_pinyin
from yishi.moderation.schemas import Signal

DATA_DIR = Path(__file__).resolve().parent / "data"
LEXICON_PATH = DATA_DIR / "lexicon.txt"
ALLOWLIST_PATH = DATA_DIR / "allowlist.txt"

# Who an insult is aimed at: terms flagged `t` count only with one of these nearby.
TARGET_MARKERS = (
    "你",
    "您",
    "他",
    "她",
    "你们",
    "他们",
    "她们",
    "这人",
    "那人",
    "这种人",
    "此人",
    "楼上",
    "楼下",
    "对门",
    "邻居",
    "这家伙",
    "这货",
    "这帮",
    "这群",
    "物业",
    "保安",
    "经理",
    "老板",
    "主任",
    "业委会",
    "管家",
    "房东",
    "租客",
    "sb",
)
_TARGET_BEFORE = 8  # compact chars before a `t` term where a target may sit
_TARGET_AFTER = 3
_COMMON_WORD_FREQ = 20  # jieba frequency at which a homophone surface is a real word
_BOUNDARY_WORD_FREQ = 3
WEAK_WEIGHT = 0.2


@dataclass(frozen=True)
class Entry:
    """One lexicon term."""

    term: str
    category: str
    weight: float
    flags: str = ""


@dataclass
class Lexicon:
    """Compiled automata for one set of entries plus an allow-list and weak terms."""

    entries: list[Entry]
    allow: list[str]
    weak: list[str] = field(default_factory=list)
    _direct: ahocorasick.Automaton | None = None
    _pinyin: ahocorasick.Automaton | None = None
    _weak: ahocorasick.Automaton | None = None
    _regexes: list[tuple[re.Pattern[str], Entry]] = field(default_factory=list)
    _ascii: dict[int, list[tuple[str, Entry]]] = field(default_factory=dict)

    def compile(self) -> Lexicon:
        """Build the automata (call once)."""
        direct = ahocorasick.Automaton()
        pinyin = ahocorasick.Automaton()
        for entry in self.entries:
            if "r" in entry.flags:
                self._regexes.append((re.compile(entry.term), entry))
                continue
            key = normalise_term(entry.term)
            if not key or (len(key) == 1 and len(entry.term) > 1):
                continue  # 逼逼 collapses to 逼, which would hit 逼迫: such terms cannot work here
            _add(direct, key, ("hit", entry, len(key)))
            raw = entry.term.lower()
            if "a" in entry.flags and raw.isalpha():
                self._ascii.setdefault(len(raw), []).append((raw, entry))
                for suffix in ("s", "es", "ed", "ing"):  # plurals and simple inflections
                    inflected = normalise_term(raw + suffix)
                    _add(direct, inflected, ("hit", entry, len(inflected)))
            if "p" in entry.flags:
                py = term_pinyin(entry.term)
                if len(py) >= 4:
                    _add(pinyin, py, ("hit", entry, len(py)))
        for word in self.allow:
            key = normalise_term(word)
            if len(key) >= 2:  # a collapsed one-char key (狗狗 → 狗) would allow everything
                _add(direct, key, ("allow", Entry(key, "allow", 0.0), len(key)))
        if len(direct):
            direct.make_automaton()
            self._direct = direct
        if len(pinyin):
            pinyin.make_automaton()
            self._pinyin = pinyin
        if self.weak:
            weak = ahocorasick.Automaton()
            for word in self.weak:
                key = normalise_term(word)
                if len(key) >= 2:
                    weak.add_word(key, key)
            if len(weak):
                weak.make_automaton()
                self._weak = weak
        return self

    def match(self, norm: Normalised, *, homophones: bool = True) -> list[Signal]:
        """Lexicon signals for a normalised text (allow-listed hits removed)."""
        comp = norm.compact
        text = comp.text
        if not text:
            return []
        hits: list[tuple[int, int, Entry, str]] = []  # compact start, end, entry, how
        allows: list[tuple[int, int]] = []
        if self._direct is not None:
            for end_idx, items in self._direct.iter(text):
                for kind, entry, key_len in items:
                    start = end_idx - key_len + 1
                    if kind == "allow":
                        allows.append((start, end_idx + 1))
                    else:
                        hits.append((start, end_idx + 1, entry, "lexicon"))
        for pattern, entry in self._regexes:
            for m in pattern.finditer(text):
                if m.end() > m.start():
                    hits.append((m.start(), m.end(), entry, "pattern"))
        if self._pinyin is not None and homophones:
            hits.extend(self._pinyin_hits(norm))
        masked = self._masked_hits(norm)
        signals: list[Signal] = []
        seen: set[tuple[int, int, str]] = set()
        for start, end, entry, how in hits:
            if how == "lexicon" and any(a < end and start < b for a, b in allows):
                continue
            if "a" in entry.flags and not (
                _ascii_bounded(norm, start, end) and _same_letters(norm, start, end, entry.term)
            ):
                continue
            weight = entry.weight
            if (
                entry.category == "insult"
                and 0.5 <= weight < 0.95
                and _PREDICATE.search(text[max(0, start - 4) : start])
            ):
                weight = min(0.95, weight + 0.1)  # 是个…/你个…: aimed squarely at someone
            if "t" in entry.flags and not _has_target(text, start, end):
                continue
            o_start, o_end = comp.span(start, end)
            key = (o_start, o_end, entry.category)
            if key in seen:
                continue
            seen.add(key)
            reason = f"{_REASON[how]}：{entry.term if how != 'pattern' else text[start:end]}"
            signals.append(
                Signal(
                    category=entry.category,
                    score=weight * (0.95 if how == "homophone" else 1.0),
                    start=o_start,
                    end=o_end,
                    source=how,
                    reason=reason,
                )
            )
        return signals + masked

    def _masked_hits(self, norm: Normalised) -> list[Signal]:
        """Latin abuse with masked or look-alike letters (b*tch, a**hole, $h1t)."""
        light = norm.light.text
        if not self._ascii or not any(c in light for c in _MASK_CHARS):
            return []
        out: list[Signal] = []
        for m in _MASKED_TOKEN.finditer(light):
            token = m.group(0)
            if not any(c in _MASK_CHARS for c in token) or sum(c.isalpha() for c in token) < 2:
                continue
            plain = token.translate(_LEET)
            for key, entry in self._ascii.get(len(plain), []):
                if all(p == k or p == "*" for p, k in zip(plain, key, strict=True)):
                    o_start, o_end = norm.light.span(*m.span())
                    out.append(
                        Signal(
                            category=entry.category,
                            score=entry.weight,
                            start=o_start,
                            end=o_end,
                            source="masked",
                            reason=f"变形词命中：{entry.term}",
                        )
                    )
                    break
        return out

    def mask_allowed(self, norm: Normalised) -> str:
        """The compact text with allow-listed words blanked (the classifier should not see 垃圾
        in 垃圾分类)."""
        text = norm.compact.text
        if self._direct is None or not text:
            return text
        chars = list(text)
        for end_idx, items in self._direct.iter(text):
            for kind, _, key_len in items:
                if kind == "allow":
                    for i in range(end_idx - key_len + 1, end_idx + 1):
                        chars[i] = "_"
        return "".join(chars)

    def weak_hits(self, norm: Normalised) -> list[str]:
        """External-lexicon words found in the text (weak signals, never decisive alone)."""
        if self._weak is None or not norm.compact.text:
            return []
        found = {word for _, word in self._weak.iter(norm.compact.text)}
        return sorted(found)[:10]

    def _pinyin_hits(self, norm: Normalised) -> list[tuple[int, int, Entry, str]]:
        assert self._pinyin is not None
        pv = norm.pinyin
        comp = norm.compact
        out: list[tuple[int, int, Entry, str]] = []
        for end_idx, items in self._pinyin.iter(pv.text):
            for _, entry, py_len in items:
                start = end_idx - py_len + 1
                end = end_idx + 1
                if start not in pv.starts or end not in pv.ends:
                    continue
                # Map back to compact indices through the original offsets.
                o_start, o_last = pv.offsets[start], pv.offsets[end - 1]
                c_start = _index_of(comp.offsets, o_start)
                c_end = _index_of(comp.offsets, o_last) + 1
                surface = comp.text[c_start:c_end]
                if surface == normalise_term(entry.term):
                    continue  # the direct automaton already has it
                if _is_common_word(comp.text, c_start, c_end):
                    continue
                out.append((c_start, c_end, entry, "homophone"))
        return out


_PREDICATE = re.compile(r"(是个|是一个|就是个|真是个|你个|你这个|你们这些|这个死|你这种)$")
_MASK_CHARS = "*#@$!0134"
_MASKED_TOKEN = re.compile(r"[a-z0-9*#@$!]{3,}")
_LEET = str.maketrans(
    {"@": "a", "$": "s", "0": "o", "1": "i", "3": "e", "4": "a", "!": "i", "#": "*"}
)

_REASON = {"lexicon": "词库命中", "pattern": "规则命中", "homophone": "谐音命中"}


def _add(automaton: ahocorasick.Automaton, key: str, value: tuple[str, Entry, int]) -> None:
    existing = automaton.get(key, None)
    automaton.add_word(key, [*(existing or []), value])


def _index_of(offsets: Sequence[int], original: int) -> int:
    import bisect

    return max(0, bisect.bisect_left(offsets, original))


def _has_target(text: str, start: int, end: int) -> bool:
    before = text[max(0, start - _TARGET_BEFORE) : start]
    after = text[end : end + _TARGET_AFTER]
    if any(c.isdigit() for c in before):  # someone named by their door number (302的...)
        return True
    return any(m in before or after.startswith(m) for m in TARGET_MARKERS)


def _ascii_bounded(norm: Normalised, start: int, end: int) -> bool:
    text = norm.compact.text
    left_ok = start == 0 or not _is_latin(text[start - 1])
    right_ok = end >= len(text) or not _is_latin(text[end])
    if left_ok and right_ok:
        return True
    # Spaces were removed in the compact view: check the original neighbours too.
    o_start, o_end = norm.compact.span(start, end)
    orig = norm.original
    left_ok = o_start == 0 or not _is_latin(orig[o_start - 1])
    right_ok = o_end >= len(orig) or not _is_latin(orig[o_end])
    return left_ok and right_ok


def _is_latin(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


def _squeeze(letters: str) -> str:
    return re.sub(r"(.)\1{2,}", r"\1\1", letters)


def _same_letters(norm: Normalised, start: int, end: int, term: str) -> bool:
    """Collapsing repeats made `mmp` and `mp` alike; the original letters must still spell it."""
    if not term.isascii():
        return True
    o_start, o_end = norm.compact.span(start, end)
    original = unicodedata.normalize("NFKC", norm.original[o_start:o_end]).lower()
    letters = re.sub(r"[^a-z]", "", original)
    wanted = re.sub(r"[^a-z]", "", term.lower())
    squeezed = _squeeze(letters)
    return squeezed == _squeeze(wanted) or any(
        squeezed == _squeeze(wanted + suffix) for suffix in ("s", "es", "ed", "ing")
    )


_jieba_lock = threading.Lock()
_freq: dict[str, int] | None = None


def _word_freq() -> dict[str, int]:
    global _freq
    if _freq is None:
        with _jieba_lock:
            if _freq is None:
                import logging

                import jieba

                jieba.setLogLevel(logging.WARNING)
                jieba.dt.check_initialized()
                _freq = jieba.dt.FREQ
                gc.freeze()  # ~350k long-lived entries: keep them out of full GC scans
    return _freq


def _is_common_word(text: str, start: int, end: int) -> bool:
    """Is a homophone surface just an ordinary word (纸张 for 智障) or part of one?"""
    freq = _word_freq()
    surface = text[start:end]
    if freq.get(surface, 0) >= _COMMON_WORD_FREQ:
        return True
    n = len(text)
    for size in (2, 3, 4):
        # Words that start before the match and end inside it (寄件人 around 件人 for 贱人)...
        for i in range(max(0, start - size + 1), start):
            j = i + size
            if start < j <= n and freq.get(text[i:j], 0) >= _BOUNDARY_WORD_FREQ:
                return True
        # ...or start inside it and end after it.
        for i in range(start + 1, end):
            j = i + size
            if end < j <= n and freq.get(text[i:j], 0) >= _BOUNDARY_WORD_FREQ:
                return True
    return False


def parse_lexicon(lines: Iterable[str]) -> list[Entry]:
    """Entries from TSV lines `term, category, weight, flags` (comments start with #)."""
    entries: list[Entry] = []
    for raw in lines:
        line = raw.rstrip("\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) < 3:
            continue
        flags = parts[3].strip() if len(parts) > 3 else ""
        for category in parts[1].split(","):  # "threat,harassment": one entry per category
            entries.append(Entry(parts[0].strip(), category.strip(), float(parts[2]), flags))
    return entries


def parse_words(lines: Iterable[str]) -> list[str]:
    """One word per line (text after a tab or space is ignored; # starts a comment)."""
    words: list[str] = []
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        words.append(re.split(r"[\t ]", line, maxsplit=1)[0])
    return words


def load_weak(paths: Iterable[Path]) -> list[str]:
    """Words from external lexicon files or folders of .txt files (missing paths are skipped)."""
    words: list[str] = []
    for path in paths:
        p = Path(path)
        files = sorted(p.rglob("*.txt")) if p.is_dir() else [p] if p.is_file() else []
        for f in files:
            if "license" in f.name.lower() or "allow" in f.name.lower():
                continue
            with f.open(encoding="utf-8", errors="replace") as fh:
                words.extend(parse_words(fh))
    return words


def build(
    *,
    extra_allow: Iterable[str] = (),
    weak_paths: Iterable[Path] = (),
    extra_entries: Iterable[Entry] = (),
) -> Lexicon:
    """Compile the packaged lexicon and allow-list plus a community's additions."""
    with LEXICON_PATH.open(encoding="utf-8") as fh:
        entries = parse_lexicon(fh)
    with ALLOWLIST_PATH.open(encoding="utf-8") as fh:
        allow = parse_words(fh)
    return Lexicon(
        entries=[*entries, *extra_entries],
        allow=[*allow, *extra_allow],
        weak=load_weak(weak_paths),
    ).compile()
