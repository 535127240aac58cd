"""Prompt injection, crisp part: chat-template and role markers that no resident types by
accident, and text hidden from human readers. Instructions addressed to the assistant or the
moderator, role-play and forged notices are judged by the semantic heads (which also see
`structure.features`); encoded payloads are decoded and screened by the screener."""

from __future__ import annotations

import re

from yishi.moderation import structure
from yishi.moderation.normalise import Normalised
from yishi.moderation.schemas import Signal

_HIDDEN = re.compile(r"<!--|\[//\]:|\{\{.*\}\}")


def detect(norm: Normalised) -> list[Signal]:
    """Role markers block; hidden comments or template markup are reviewed."""
    text = norm.light.text
    signals: list[Signal] = []
    m = structure.ROLE_MARKER_RE.search(text)
    if m and not _HIDDEN.fullmatch(m.group(0)):
        start, end = norm.light.span(*m.span())
        signals.append(
            Signal(
                category="prompt_injection",
                score=0.9,
                start=start,
                end=end,
                source="injection",
                reason=f"含有对话模板或角色标记：{m.group(0).strip()}",
            )
        )
    h = _HIDDEN.search(text)
    if h:
        start, end = norm.light.span(*h.span())
        signals.append(
            Signal(
                category="prompt_injection",
                score=0.6,
                start=start,
                end=end,
                source="injection",
                reason="含有隐藏注释或模板标记",
            )
        )
    return signals
