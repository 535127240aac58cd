"""WeChat output rules: plain text, no Markdown, citations in 《》 form, long replies split."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

# WeChat's customer-service text limit is 2048 bytes of UTF-8; stay one margin below it so a
# "(1/3)" counter added by a sender never pushes a part over.
WECHAT_TEXT_LIMIT_BYTES = 2048
_SAFE_PART_BYTES = WECHAT_TEXT_LIMIT_BYTES - 48

_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+")
_BULLET = re.compile(r"^(\s*)[*+]\s+")
_BOLD = re.compile(r"(\*\*|__)(.+?)\1")
_ITALIC = re.compile(r"(?<![*\w])\*(?!\s)([^*\n]+?)\*(?!\*)")
_CODE_FENCE = re.compile(r"^\s*```.*$")
_INLINE_CODE = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)")
_BLANKS = re.compile(r"\n{3,}")
_SENTENCE_END = "。！？!?；;\n"


def to_plain_text(text: str) -> str:
    """Strip Markdown (tables become lines, headings/bold/code lose their marks) for WeChat."""
    lines: list[str] = []
    for raw in text.replace("\r\n", "\n").split("\n"):
        if _CODE_FENCE.match(raw) or _TABLE_RULE.match(raw):
            continue
        line = raw
        stripped = line.strip()
        if stripped.startswith("|") and stripped.endswith("|") and stripped.count("|") >= 2:
            cells = [c.strip() for c in stripped.strip("|").split("|")]
            line = "，".join(c for c in cells if c)
        line = _HEADING.sub("", line)
        line = _BULLET.sub(r"\1- ", line)
        line = _BOLD.sub(r"\2", line)
        line = _ITALIC.sub(r"\1", line)
        line = _INLINE_CODE.sub(r"\1", line)
        line = _LINK.sub(r"\1 \2", line)
        lines.append(line.rstrip())
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


def format_citation(title: str, article: str | None = None) -> str:
    """A citation in WeChat form: 《标题》第X条 (title without its own book-title marks)."""
    clean = title.strip().strip("《》")
    art = (article or "").strip()
    if art and not art.startswith("第"):
        art = f"第{art}条" if art.isdigit() else art
    return f"《{clean}》{art}"


def citation_dicts(citations: Iterable[object]) -> list[dict[str, str]]:
    """Citations as `{"source", "article"}` dicts, de-duplicated, from objects or mappings."""
    seen: set[tuple[str, str]] = set()
    out: list[dict[str, str]] = []
    for c in citations:
        if isinstance(c, Mapping):
            source = str(c.get("source") or c.get("title") or "")
            article = str(c.get("article") or "")
        else:
            source = str(getattr(c, "source", "") or getattr(c, "title", "") or "")
            article = str(getattr(c, "article", "") or "")
        key = (source, article)
        if source and key not in seen:
            seen.add(key)
            out.append({"source": source, "article": article})
    return out


def _cut_point(text: str, limit: int) -> int:
    """The char index to cut `text` so its prefix is at most `limit` bytes, at a sentence end."""
    size = 0
    last_fit = 0
    best = -1
    for i, ch in enumerate(text):
        size += len(ch.encode("utf-8"))
        if size > limit:
            break
        last_fit = i + 1
        if ch in _SENTENCE_END:
            best = i + 1
    if last_fit == len(text):
        return last_fit
    # Prefer a sentence end in the second half of the part; otherwise cut hard.
    return best if best > last_fit // 2 else max(last_fit, 1)


def split_for_wechat(text: str, limit_bytes: int = _SAFE_PART_BYTES) -> list[str]:
    """Split `text` into parts of at most `limit_bytes` UTF-8 bytes, preferring sentence ends."""
    text = text.strip()
    if not text:
        return []
    parts: list[str] = []
    rest = text
    while len(rest.encode("utf-8")) > limit_bytes:
        cut = _cut_point(rest, limit_bytes)
        part, rest = rest[:cut].strip(), rest[cut:].lstrip()
        if part:
            parts.append(part)
    if rest:
        parts.append(rest)
    return parts


def finalise_reply(text: str) -> str:
    """The reply as WeChat should show it: plain text, trimmed, never empty."""
    plain = to_plain_text(text)
    return plain or "抱歉，我没有理解您的意思。您可以回复“帮助”查看我能做什么，或回复“转人工”。"
