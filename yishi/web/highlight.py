"""Highlight matched spans of a held message safely: every piece of text is escaped."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from markupsafe import Markup, escape

_CLASS_SAFE = re.compile(r"[^a-z0-9_-]")


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def normalised_spans(text: str, spans: Iterable[Mapping[str, Any]]) -> list[tuple[int, int, str]]:
    """Valid, clamped, non-overlapping (start, end, categories) spans in text order."""
    cleaned: list[tuple[int, int, str]] = []
    for span in spans:
        start, end = _as_int(span.get("start")), _as_int(span.get("end"))
        if start is None or end is None:
            continue
        start, end = max(0, start), min(len(text), end)
        if end <= start:
            continue
        cleaned.append((start, end, str(span.get("category") or "")))
    cleaned.sort()
    merged: list[tuple[int, int, str]] = []
    for start, end, category in cleaned:
        if merged and start < merged[-1][1]:
            prev_start, prev_end, prev_cats = merged[-1]
            cats = prev_cats if category in prev_cats.split("、") else f"{prev_cats}、{category}"
            merged[-1] = (prev_start, max(prev_end, end), cats.strip("、"))
        else:
            merged.append((start, end, category))
    return merged


def highlight_spans(
    text: str | None,
    spans: Iterable[Mapping[str, Any]] | None,
    labels: Mapping[str, str] | None = None,
) -> Markup:
    """`text` as HTML with each span wrapped in <mark>; the text itself is always escaped."""
    text = text or ""
    labels = labels or {}
    out: list[str] = []
    pos = 0
    for start, end, categories in normalised_spans(text, spans or ()):
        out.append(str(escape(text[pos:start])))
        names = categories.split("、")
        css = _CLASS_SAFE.sub("", names[0].lower()) or "other"
        title = "、".join(labels.get(name, name) for name in names)
        out.append(
            f'<mark class="hl hl-{css}" title="{escape(title)}">'
            f"{escape(text[start:end])}</mark>"
        )
        pos = end
    out.append(str(escape(text[pos:])))
    return Markup("".join(out))
