"""Chinese-aware chunking: legal articles (第X条) stay whole under their chapter headings; other
documents split on headings and sentences with overlap."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from yishi.knowledge.loaders import LoadedDocument

_NUM = "零〇一二三四五六七八九十百千两0-9０-９"
ARTICLE_RE = re.compile(rf"^\s*(第[{_NUM}]+条(?:之[{_NUM}]+)?)(?=[\s　:：，、]|$)")
# Chapter-like lines without a `#` (plain text and PDF): 第X编 / 分编 / 章 / 节.
PLAIN_HEADING_RE = re.compile(rf"^\s*(第[{_NUM}]+(?:分编|编|章|节))[\s　]*(\S.{{0,40}})?$")
_HEADING_LEVELS = {"编": 1, "分编": 2, "章": 3, "节": 4}
SENTENCE_END = "。！？；!?;"
TARGET_CHARS = 360
OVERLAP_SENTENCES = 1


@dataclass
class Chunk:
    """One retrievable passage and its place in the document."""

    source: str
    title: str
    text: str
    position: int
    article: str = ""
    chapter: str = ""
    content_hash: str = ""

    def __post_init__(self) -> None:
        if not self.content_hash:
            self.content_hash = hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def cite(title: str, article: str = "") -> str:
    """A citation like 《物业管理条例》第十条, or 《中华人民共和国民法典》物权编第二百七十八条."""
    book, _, part = title.partition("·")
    book = book.replace("《", "〈").replace("》", "〉")  # a title quoted inside a title
    return f"《{book}》{part}{article}"


def _heading(line: str) -> tuple[int, str] | None:
    stripped = line.strip()
    if stripped.startswith("#"):
        level = len(stripped) - len(stripped.lstrip("#"))
        text = re.sub(r"\s+", " ", stripped[level:].strip())
        return (level, text) if text else None
    m = PLAIN_HEADING_RE.match(stripped)
    if m:
        unit = re.sub(rf"^第[{_NUM}]+", "", m.group(1))
        text = re.sub(r"\s+", " ", stripped)
        return 10 + _HEADING_LEVELS.get(unit, 3), text
    return None


def _split_sentences(text: str) -> list[str]:
    parts = re.split(rf"(?<=[{SENTENCE_END}])|\n+", text)
    return [p.strip() for p in parts if p and p.strip()]


def _pack(sentences: list[str], target: int = TARGET_CHARS) -> list[str]:
    """Group sentences into passages of about `target` characters, overlapping by one sentence."""
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for sentence in sentences:
        while len(sentence) > target * 2:  # one enormous "sentence": cut it
            head, sentence = sentence[: target * 2], sentence[target * 2 :]
            if current:
                chunks.append("".join(current))
                current, size = [], 0
            chunks.append(head)
        if current and size + len(sentence) > target:
            chunks.append("".join(current))
            current = current[-OVERLAP_SENTENCES:] if OVERLAP_SENTENCES else []
            size = sum(len(s) for s in current)
        current.append(sentence)
        size += len(sentence)
    if current:
        chunks.append("".join(current))
    return chunks


def chunk_document(doc: LoadedDocument) -> list[Chunk]:
    """Split a document into chunks; articles whole, with their chapter heading path."""
    stack: list[tuple[int, str]] = []
    # Sections: (chapter, article, lines)
    sections: list[tuple[str, str, list[str]]] = [("", "", [])]
    for line in doc.text.split("\n"):
        heading = _heading(line)
        if heading is not None:
            level = heading[0]
            stack = [h for h in stack if h[0] < level] + [heading]
            chapter = " ".join(h[1] for h in stack)
            sections.append((chapter, "", []))
            continue
        m = ARTICLE_RE.match(line)
        if m:
            chapter = " ".join(h[1] for h in stack)
            sections.append((chapter, m.group(1), [line.strip()]))
            continue
        sections[-1][2].append(line.strip())

    chunks: list[Chunk] = []
    for chapter, article, lines in sections:
        body = "\n".join(line for line in lines if line).strip()
        if not body:
            continue
        pieces = [body] if article else _pack(_split_sentences(body))
        for piece in pieces:
            if len(piece) < 2:
                continue
            chunks.append(
                Chunk(
                    source=doc.source,
                    title=doc.title,
                    text=piece,
                    position=len(chunks),
                    article=article,
                    chapter=chapter,
                )
            )
    return chunks


def passage_text(chunk: Chunk) -> str:
    """What the embedder sees: the passage with its document title and chapter as context."""
    context = " ".join(x for x in (chunk.title.replace("·", " "), chunk.chapter) if x)
    return f"{context}\n{chunk.text}" if context else chunk.text
