"""Crisp facts about links and contact handles (no phrase lists: what an ad or a scam says is
judged by the semantic heads, which also see these facts as features).

A link shortener hides where it leads, so it is always worth a look; a link or a handle on
another app is otherwise only marked (a low score with a span), so that when the heads judge a
message an ad or a scam, the moderator sees where it tries to take people.
"""

from __future__ import annotations

from yishi.moderation import structure
from yishi.moderation.normalise import Normalised
from yishi.moderation.schemas import Signal

MARK = 0.3  # below every review threshold: explanation only


def detect(norm: Normalised) -> list[Signal]:
    """Link and contact-handle signals with offsets into the original text."""
    light = norm.light.text
    if len(norm.compact.text) < 4:
        return []
    signals: list[Signal] = []
    for m in (structure.URL_RE.search(light), structure.SHORTENER_RE.search(light)):
        if m is None:
            continue
        start, end = norm.light.span(*m.span())
        short = structure.SHORTENER_RE.search(m.group(0)) is not None
        for cat in ("spam_ad", "fraud"):
            signals.append(
                Signal(
                    category=cat,
                    score=0.55 if short and cat == "spam_ad" else MARK,
                    start=start,
                    end=end,
                    source="link",
                    reason="短链接（看不出去向）" if short else "站外链接",
                )
            )
        break
    handle = structure.HANDLE_RE.search(light)
    if handle:
        start, end = norm.light.span(*handle.span())
        for cat in ("spam_ad", "fraud", "gambling"):
            signals.append(
                Signal(
                    category=cat,
                    score=MARK,
                    start=start,
                    end=end,
                    source="contact",
                    reason="引向站外的联系方式",
                )
            )
    return signals
